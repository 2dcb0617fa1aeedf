"""The event log on a Redis Cluster (issue 27): every event once, in order, through its faults.

Against a real cluster of 3 masters and 3 replicas
(:class:`~asgi_stream.tools.redis_servers.RedisCluster`, one per module), the
log opened as an application opens it: ``open_event_log("redis+cluster://...")``.
It keeps the single-node log's semantics (:mod:`asgi_stream.redis_eventlog`);
the faults here are the cluster's own:

- a hash slot moves to another master while events are appended and
  followed: the log's commands meet ``TRYAGAIN``, ``ASK`` and ``MOVED``;
- a master is killed and its replica promoted (a second or two in which the
  whole cluster answers ``CLUSTERDOWN``);
- a master is killed and started again from its append-only file;
- a master is paused (SIGSTOP) until its replica has been promoted, then
  resumed: woken, it acknowledges what it had received, and loses it.

Publishers retry what :class:`~asgi_stream.EventLogUnavailable` refused, as a
careful one does; followers resume after the last event they were handed when
the log cuts them, as a client does with ``Last-Event-ID``. A follower must get
every acknowledged event once, in order, and never a reset: a fault of Redis is
a delay, never a lost, duplicated or skipped event. Each test puts the cluster
back together afterwards (every node running, the cluster ok); every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import (
    Event,
    EventLog,
    EventLogUnavailable,
    ResumableEventSourceResponse,
    open_event_log,
)
from asgi_stream.testing import parse_event_stream
from asgi_stream.tools.redis_servers import RedisCluster, RedisServer, slot_of
from tests.asgi import body_of, http_scope
from tests.asgi import request as exchange
from tests.library.test_fanout import collect
from tests.library.test_redis_faults import append, receive_until, run, unique
from tests.waiting import until

pytestmark = pytest.mark.server

#: The bound on a wait that spans a failover (about 2 s here) or a slot move.
FAULT_BOUND = 30.0


@pytest.fixture(scope="module")
def whole_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster(whole_cluster: RedisCluster) -> Iterator[RedisCluster]:
    """The module's cluster, put back together after the test: every node running, all ok."""
    yield whole_cluster
    for node in whole_cluster.nodes:
        node.resume()
        if not node.running:
            whole_cluster.start(node)
    whole_cluster.wait_ok()


def master_of_stream(cluster: RedisCluster, log: EventLog, stream: str) -> RedisServer:
    """The master that holds ``stream`` now."""
    return cluster.master_of(slot_of(log.key(stream)))


async def follow(
    log: EventLog, stream: str, after: str | None = None, cuts: list[str] | None = None
) -> list[Event]:
    """The events of ``stream`` after ``after``, up to one of type ``done``.

    When the log cuts the follower (:class:`~asgi_stream.EventLogUnavailable`),
    it follows again after the last event it got, as an SSE client resumes
    with ``Last-Event-ID``; each cut is noted in ``cuts``. A reset
    (:class:`~asgi_stream.EventIDNotFound`: the log cannot place that ID any
    more) fails the test.
    """
    got: list[Event] = []
    while True:
        try:
            async with contextlib.aclosing(log.read(stream, after)) as events:
                async for event in events:
                    got.append(event)
                    after = event.id
                    if event.event == "done":
                        return got
            raise AssertionError(f"the log ended {stream!r} before its last event: {got}")
        except EventLogUnavailable as exc:
            if cuts is not None:
                cuts.append(f"{stream}: {exc}")
            await asyncio.sleep(0.1)


class Publisher:
    """Appends ``0``, ``1``, ... to a stream until stopped, then ``end`` (type ``done``).

    ``ids`` are the IDs acknowledged, in the order they were, which is the
    stream's order: one append at a time.
    """

    def __init__(self, log: EventLog, stream: str) -> None:
        self.log = log
        self.stream = stream
        self.ids: list[str] = []
        self.data: list[str] = []
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            data = str(len(self.ids))
            self.ids.append(await append(self.log, self.stream, data))
            self.data.append(data)
            await asyncio.sleep(0.005)

    async def appended(self, count: int) -> None:
        """Return once ``count`` more events are acknowledged than now."""
        target = len(self.ids) + count
        await until(lambda: len(self.ids) >= target or self._task.done(), FAULT_BOUND)
        if self._task.done():
            self._task.result()  # its error, if it failed

    async def finish(self) -> list[str]:
        """Stop, append the final event; every ID acknowledged."""
        self._stop.set()
        await asyncio.wait_for(self._task, FAULT_BOUND)
        self.ids.append(await append(self.log, self.stream, "end", "done"))
        self.data.append("end")
        return self.ids


def assert_once_in_order(got: list[Event], publisher: Publisher, start: int = 0) -> None:
    """``got`` is what ``publisher`` had acknowledged from index ``start`` on, nothing else."""
    assert [e.id for e in got] == publisher.ids[start:]
    assert [e.data for e in got] == publisher.data[start:]


@dataclasses.dataclass
class Followed:
    """One stream appended through one log and followed through another, three times."""

    publisher_log: EventLog
    publisher: Publisher
    cuts: list[str]  # a live follower is delayed by a fault, never cut


@contextlib.asynccontextmanager
async def followed_through_a_fault(cluster: RedisCluster, name: str) -> AsyncIterator[Followed]:
    """Ten events of ``name`` appended and followed; then the fault the block makes.

    Then ten more, the last one; every follower must have got every event
    acknowledged, once, in order, and never have been cut.
    """
    async with (
        contextlib.aclosing(open_event_log(cluster.url)) as publisher_log,
        contextlib.aclosing(open_event_log(cluster.url)) as reader,
    ):
        publisher = Publisher(publisher_log, name)
        cuts: list[str] = []
        followers = [asyncio.ensure_future(follow(reader, name, cuts=cuts)) for _ in range(3)]
        await publisher.appended(10)
        yield Followed(publisher_log, publisher, cuts)
        await publisher.appended(10)
        await publisher.finish()
        for follower in followers:
            assert_once_in_order(await asyncio.wait_for(follower, FAULT_BOUND), publisher)
        assert cuts == []


def test_a_cluster_url_opens_a_cluster_log_that_appends_follows_and_expires(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """The single-node log's API, on the cluster: append, subscribe, last, exists, expire."""
    from asgi_stream import RedisClusterEventLog

    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(open_event_log(cluster.url)) as log:
            assert isinstance(log, RedisClusterEventLog)
            assert not await log.exists(name)
            assert await log.last(name) is None
            follower = asyncio.ensure_future(follow(log, name))
            subscription = log.subscribe(name, start="live", final_events=["done"])
            live = asyncio.ensure_future(collect(subscription))
            await until(lambda: subscription.live_from is not None)
            ids = [await log.append(name, str(i)) for i in range(5)]
            ids.append(await log.append(name, "end", "done"))
            got = await asyncio.wait_for(follower, 10)
            assert [(e.id, e.data, e.event) for e in got] == [
                *((ids[i], str(i), None) for i in range(5)),
                (ids[5], "end", "done"),
            ]
            assert [event_id for event_id, _ in await asyncio.wait_for(live, 10)] == ids
            assert [e.id for e in await asyncio.wait_for(follow(log, name, ids[2]), 10)] == ids[3:]
            assert await log.exists(name)
            assert await log.last(name) == Event(ids[5], "end", "done")
            key = log.key(name)
            with cluster.client(cluster.master_of(slot_of(key))) as node:
                assert node.xlen(key) == 6  # the stream is the key the log names, on its master
            await log.expire(name, 0.3)
            for _ in range(100):
                if not await log.exists(name):
                    break
                await asyncio.sleep(0.1)
            assert not await log.exists(name)
            assert await log.last(name) is None

    run(test, 30)


def test_streams_spread_over_every_master_and_each_reaches_its_own_followers(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """30 streams hash to slots of all 3 masters; one log follows them all at once."""
    name = unique(request)
    streams = [f"{name}-{i}" for i in range(30)]

    async def test() -> None:
        async with (
            contextlib.aclosing(open_event_log(cluster.url)) as publisher,
            contextlib.aclosing(open_event_log(cluster.url)) as reader,
        ):
            holders = {master_of_stream(cluster, publisher, s).port for s in streams}
            assert holders == {master.port for master in cluster.masters()}
            followers = [asyncio.ensure_future(follow(reader, s)) for s in streams]
            ids = {
                s: [await publisher.append(s, s), await publisher.append(s, "end", "done")]
                for s in streams
            }
            for stream, follower in zip(streams, followers, strict=True):
                got = await asyncio.wait_for(follower, 10)
                assert [(e.id, e.data) for e in got] == list(
                    zip(ids[stream], [stream, "end"], strict=True)
                )
            for stream in streams:
                key = publisher.key(stream)
                with cluster.client(cluster.master_of(slot_of(key))) as node:
                    assert node.xlen(key) == 2

    run(test, 60)


def test_every_event_arrives_once_in_order_while_its_slot_moves_to_another_master(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """The stream's slot migrates (held half a second in each half: TRYAGAIN, then ASK,
    then MOVED) while one log appends and another follows; followers that resume by ID
    during the move replay through the redirections too."""
    name = unique(request)

    async def test() -> None:
        async with (
            contextlib.aclosing(open_event_log(cluster.url)) as publisher_log,
            contextlib.aclosing(open_event_log(cluster.url)) as reader,
        ):
            slot = slot_of(publisher_log.key(name))
            source = cluster.master_of(slot)
            target = next(m for m in cluster.masters() if m is not source)
            publisher = Publisher(publisher_log, name)
            await publisher.appended(10)
            cuts: list[str] = []  # a live follower is delayed, never cut
            followers = [asyncio.ensure_future(follow(reader, name, cuts=cuts)) for _ in range(3)]
            moving = asyncio.ensure_future(asyncio.to_thread(cluster.move_slot, slot, target, 0.5))
            late: list[tuple[int, asyncio.Future[list[Event]]]] = []
            while not moving.done():  # followers that resume mid-move, from an ID each
                start = len(publisher.ids) // 2
                late.append(
                    (start + 1, asyncio.ensure_future(follow(reader, name, publisher.ids[start])))
                )
                await asyncio.sleep(0.2)
            await moving
            assert cluster.master_of(slot) is target
            await publisher.appended(10)
            await publisher.finish()
            for follower in followers:
                assert_once_in_order(await asyncio.wait_for(follower, FAULT_BOUND), publisher)
            assert len(late) >= 3
            for start, follower in late:
                assert_once_in_order(
                    await asyncio.wait_for(follower, FAULT_BOUND), publisher, start
                )
            assert cuts == []
            with cluster.client(target) as node:
                assert node.xlen(publisher_log.key(name)) == len(publisher.ids)

    run(test, 90)


def test_every_event_arrives_once_in_order_through_a_master_failover(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """A master is SIGKILLed while streams on every master are appended and followed;
    its replica is promoted. Streams on the other masters are only delayed."""
    name = unique(request)

    async def test() -> None:
        async with (
            contextlib.aclosing(open_event_log(cluster.url)) as publisher_log,
            contextlib.aclosing(open_event_log(cluster.url)) as reader,
        ):
            streams = one_stream_per_master(cluster, publisher_log, name)
            victim = master_of_stream(cluster, publisher_log, streams[0])
            publishers = [Publisher(publisher_log, s) for s in streams]
            cuts: list[str] = []  # a live follower is delayed, never cut
            followers = [
                [asyncio.ensure_future(follow(reader, s, cuts=cuts)) for _ in range(3)]
                for s in streams
            ]
            for publisher in publishers:
                await publisher.appended(10)
            promoted = await asyncio.to_thread(cluster.fail_over, victim)
            assert master_of_stream(cluster, publisher_log, streams[0]) is promoted
            for publisher in publishers:
                await publisher.appended(10)
            late = [asyncio.ensure_future(follow(reader, s)) for s in streams]  # after it all
            for publisher, own, last in zip(publishers, followers, late, strict=True):
                await publisher.finish()
                for follower in [*own, last]:
                    assert_once_in_order(await asyncio.wait_for(follower, FAULT_BOUND), publisher)
            assert cuts == []

    run(test, 90)


def test_every_event_arrives_once_in_order_through_a_master_restart(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """A master is SIGKILLed and started again at once, from its append-only file,
    while its stream is appended and followed; then one of the replicas."""
    name = unique(request)

    async def test() -> None:
        async with followed_through_a_fault(cluster, name) as followed:
            master = master_of_stream(cluster, followed.publisher_log, name)
            await asyncio.to_thread(master.kill_and_restart)
            await asyncio.to_thread(cluster.wait_ok)
            await followed.publisher.appended(10)
            replica = cluster.replica_of(master_of_stream(cluster, followed.publisher_log, name))
            await asyncio.to_thread(replica.kill_and_restart)
            await asyncio.to_thread(cluster.wait_ok)

    run(test, 90)


def test_every_event_arrives_once_in_order_through_a_master_paused_past_its_failover(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """SIGSTOP on the stream's master until its replica has been promoted, then SIGCONT.

    Woken, the old master first answers what it had received, as the master it
    no longer is: a write it acknowledges then is gone once it learns that it
    is a replica now and copies its successor. Only what the new master holds
    may have been acknowledged; the followers get exactly that.
    """
    name = unique(request)

    async def test() -> None:
        async with followed_through_a_fault(cluster, name) as followed:
            master = master_of_stream(cluster, followed.publisher_log, name)
            replica = cluster.replica_of(master)
            cluster.pause(master)
            try:
                await asyncio.to_thread(cluster.wait_promoted, replica)
            finally:
                cluster.resume(master)
            await asyncio.to_thread(cluster.wait_ok)
            assert master_of_stream(cluster, followed.publisher_log, name) is replica
        with cluster.client(replica) as node:
            assert node.xlen(followed.publisher_log.key(name)) == len(followed.publisher.ids)

    run(test, 90)


def one_stream_per_master(cluster: RedisCluster, log: EventLog, prefix: str) -> list[str]:
    """A stream name held by each master, in the order of :meth:`RedisCluster.masters`."""
    found: dict[int, str] = {}
    for i in range(1000):
        stream = f"{prefix}-{i}"
        found.setdefault(master_of_stream(cluster, log, stream).port, stream)
        if len(found) == 3:
            return [found[master.port] for master in cluster.masters()]
    raise AssertionError("1,000 stream names and not one on each master")


def test_a_client_resumes_by_last_event_id_across_a_failover_of_its_streams_master(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """An SSE client reads 5 events and leaves; the stream's master dies and its replica
    takes over; 5 more are appended through another log (another process). The client
    comes back with the last ID it got: the 5 it missed, once, no reset."""
    name = unique(request)

    async def test() -> None:
        async with (
            contextlib.aclosing(open_event_log(cluster.url)) as first,
            contextlib.aclosing(open_event_log(cluster.url)) as second,
        ):
            ids = [await first.append(name, str(i)) for i in range(5)]
            comm = ApplicationCommunicator(
                ResumableEventSourceResponse(first, name, final_events=["done"]), http_scope()
            )
            await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
            assert (await comm.receive_output(10))["status"] == 200
            body = await receive_until(comm, "data: 4\n")
            await comm.send_input({"type": "http.disconnect"})
            await comm.wait(10)
            last_id = parse_event_stream(body).events[-1].last_event_id
            assert last_id == ids[4]

            await asyncio.to_thread(cluster.fail_over, master_of_stream(cluster, first, name))
            ids += [await append(second, name, str(i)) for i in range(5, 10)]
            ids.append(await append(second, name, "end", "done"))

            for log in (first, second):  # resumed in the process it left, or in another
                response = ResumableEventSourceResponse(log, name, last_id, final_events=["done"])
                messages = await exchange(response, http_scope(), timeout=FAULT_BOUND)
                assert messages[0]["status"] == 200
                events = parse_event_stream(body_of(messages).decode()).events
                assert [e.data for e in events if e.type == "reset"] == []
                assert [(e.last_event_id, e.data) for e in events] == list(
                    zip(ids[5:], [*map(str, range(5, 10)), "end"], strict=True)
                )

    run(test, 90)


def test_a_follower_handed_an_entry_that_a_failover_lost_is_told_to_reset(
    cluster: RedisCluster, request: pytest.FixtureRequest
) -> None:
    """With ``replicas=0`` an appended entry reaches the follower but not the replica; the
    master dies and the replica is promoted; another append lands before the reader looks.
    The stream's newest entry is then newer than the follower's last (written straight
    into the promoted replica, before the reader's backoff ends), yet that one is gone:
    the follower must get a reset (``EventIDNotFound``), never go on past a silent gap."""
    from asgi_stream import EventIDNotFound, RedisClusterEventLog

    name = unique(request)

    async def test() -> None:
        async with (
            contextlib.aclosing(RedisClusterEventLog(cluster.url, replicas=0)) as reader,
            contextlib.aclosing(RedisClusterEventLog(cluster.url, replicas=0)) as publisher,
        ):
            master = master_of_stream(cluster, reader, name)
            replica = cluster.replica_of(master)
            await publisher.append(name, "kept")
            got: list[str] = []

            async def follow_until_reset() -> None:
                async with contextlib.aclosing(reader.read(name)) as events:
                    async for event in events:
                        got.append(event.data)

            follower = asyncio.ensure_future(follow_until_reset())
            await until(lambda: got == ["kept"])
            cluster.pause(replica)  # so that it cannot copy what comes next
            with cluster.client(master) as node:
                node.execute_command("CLIENT", "KILL", "TYPE", "replica")
            await publisher.append(name, "lost")
            await until(lambda: got == ["kept", "lost"])
            cluster.kill(master)
            cluster.resume(replica)
            await asyncio.to_thread(cluster.wait_promoted, replica)
            with cluster.client(replica) as node:  # a newer entry, before the reader looks
                node.xadd(reader.key(name), {"data": "after"})
            with pytest.raises(EventIDNotFound):
                await asyncio.wait_for(follower, FAULT_BOUND)
            assert got == ["kept", "lost"]  # and not "after" as if nothing was lost

    run(test, 90)
