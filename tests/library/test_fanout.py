"""The event log's fan-out in one process: one reader shared by every subscriber.

Against a real redis-server (and the in-memory log where the behaviour is
shared): hundreds of followers on redis-py's default pool, a stream quiet for
longer than the socket timeout, clients that leave, resumes that race the
live events, a Redis that is down, killed or paused. Followers are
:class:`~asgi_stream.ResumableEventSourceResponse`\\s driven by asgiref's
``ApplicationCommunicator`` or bare subscriptions.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.testing import ApplicationCommunicator

from asgi_stream import (
    EventLog,
    EventLogUnavailable,
    LogSubscription,
    MemoryEventLog,
    RedisEventLog,
    ResumableEventSourceResponse,
)
from asgi_stream.broadcast import Frame
from asgi_stream.fanout import StreamFanout
from asgi_stream.testing import parse_event_stream
from asgi_stream.tools.process import free_port
from asgi_stream.tools.redis_servers import RedisServer
from tests.asgi import body_of, http_scope
from tests.asgi import request as exchange

pytestmark = pytest.mark.server

MakeLog = Callable[..., EventLog]


@pytest.fixture(params=["memory", "redis", "redis-resp3"])
def make_log(request: pytest.FixtureRequest) -> MakeLog:
    """A factory ``(**options) -> EventLog``; call it inside the test's event loop."""
    if request.param == "memory":
        return MemoryEventLog
    url = request.getfixturevalue("redis_url")
    if request.param == "redis-resp3":
        url += "?protocol=3"
    return lambda **options: RedisEventLog(url, **options)


def unique(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "-").replace("]", "")


def run(test: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(test(), timeout)

    return asyncio.run(main())


async def collect(subscription: LogSubscription) -> list[tuple[str, str]]:
    """Every ``(id, data)`` the subscription yields, until it ends."""
    text = b""
    async with contextlib.aclosing(subscription):
        async for chunk in subscription:
            text += chunk
    return [(e.last_event_id, e.data) for e in parse_event_stream(text.decode()).events]


def redis_clients(url: str) -> list[dict[str, Any]]:
    """The connections Redis has open now, as ``CLIENT LIST`` shows them."""
    with redis.Redis.from_url(url) as client:
        return list(client.client_list())


def test_every_subscriber_gets_every_event_once_in_order_while_others_join_and_resume(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    """Subscribers join at random moments, some resuming after an ID, while events are appended."""
    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(make_log()) as log:
            ids: list[str] = []
            followers: list[tuple[int, asyncio.Task[list[tuple[str, str]]]]] = []
            for i in range(60):
                ids.append(await log.append(name, str(i)))
                if i % 4 == 0:
                    resume = random.randrange(len(ids))  # after the event number `resume`
                    subscription = log.subscribe(name, ids[resume], final_events=["done"])
                    followers.append((resume + 1, asyncio.ensure_future(collect(subscription))))
                    if i % 8 == 0:
                        await asyncio.sleep(0.01)  # let some of them reach the live phase
            ids.append(await log.append(name, "end", event="done"))
            for first, follower in followers:
                got = await asyncio.wait_for(follower, 10)
                assert [event_id for event_id, _ in got] == ids[first:]
            assert log.subscribers == 0

    run(test)


def test_500_followers_in_one_process_share_one_reader_on_the_default_pool(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    """redis-py's pool allows 100 connections; followers hold none, so 500 all get everything."""
    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(RedisEventLog(redis_url)) as log:
            subscriptions = [log.subscribe(name, final_events=["done"]) for _ in range(500)]
            followers = [asyncio.ensure_future(collect(s)) for s in subscriptions]
            ids = [await log.append(name, f"event {i}") for i in range(20)]
            await asyncio.sleep(0.1)
            # Redis sees this process's reader (its blocking XREAD, and its pipelines),
            # its publisher, and a pool connection or two: not 500.
            connections = [c for c in redis_clients(redis_url) if c["cmd"] != "client|list"]
            names = collections.Counter(c["name"] for c in connections)
            assert names["asgi-stream-reader"] <= 2, connections
            assert names["asgi-stream-publisher"] <= 1, connections
            assert names["asgi-stream-commands"] <= 2, connections
            assert len(connections) <= 5, connections
            ids.append(await log.append(name, "end", event="done"))
            for follower in followers:
                got = await asyncio.wait_for(follower, 10)
                assert [event_id for event_id, _ in got] == ids

    run(test)


def test_many_tasks_append_through_one_connection_in_the_order_they_called(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    """300 appends at once: one pipelined publishing connection, IDs in call order."""
    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(RedisEventLog(redis_url)) as log:
            ids = await asyncio.gather(*(log.append(name, str(i)) for i in range(300)))
            assert ids == sorted(ids, key=RedisEventLog.position)
            assert len(set(ids)) == 300
            xadds = [c for c in redis_clients(redis_url) if c["cmd"] in ("xadd", "exec")]
            assert len(xadds) <= 1, xadds  # the publisher's connection, and no other
            got = [(e.id, e.data) for e in await collect_events(log, name, 300)]
            assert got == [(event_id, str(i)) for i, event_id in enumerate(ids)]

    run(test)


async def collect_events(log: EventLog, stream: str, count: int) -> list[Any]:
    async with contextlib.aclosing(log.read(stream)) as events:
        return [await anext(events) for _ in range(count)]


def test_the_first_subscriber_of_each_new_stream_is_served_without_waiting_for_the_block(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    """New streams, one after another: each first subscriber wakes the blocked reader.

    The reader blocks 4 s here; each subscriber must get its event well before,
    which it does only if its wake-up reaches the reader (none is spent on a
    stream already resolved, and none is skipped).
    """
    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(
            RedisEventLog(redis_url, block_ms=4000, socket_timeout=8)
        ) as log:
            for i in range(3):
                stream = f"{name}-{i}"
                await log.append(stream, "hello")
                subscription = log.subscribe(stream)
                assert b"data: hello" in await asyncio.wait_for(anext(subscription), 2)
                await subscription.aclose()

    run(test)


def test_a_stream_quiet_for_longer_than_the_socket_timeout_does_not_break(
    redis_url: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """Quiet for 4 socket timeouts (0.5 s here, 15 s by default): same connection, nothing logged.

    The reader's ``XREAD BLOCK`` must be shorter than the socket timeout, or
    each quiet period ends in a timeout and a reconnection.
    """
    name = unique(request)
    caplog.set_level(logging.WARNING)

    def reader_ids() -> list[int]:
        return [c["id"] for c in redis_clients(redis_url) if c["cmd"] == "xread"]

    async def test() -> None:
        async with contextlib.aclosing(
            RedisEventLog(redis_url, block_ms=200, socket_timeout=0.5)
        ) as log:
            follower = asyncio.ensure_future(collect(log.subscribe(name, final_events=["done"])))
            first = await log.append(name, "before")
            while not reader_ids():
                await asyncio.sleep(0.05)
            before = reader_ids()
            await asyncio.sleep(2.0)  # quiet
            assert reader_ids() == before  # the same connection: it never broke
            last = await log.append(name, "after", event="done")
            assert await asyncio.wait_for(follower, 5) == [(first, "before"), (last, "after")]

    run(test)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_block_must_be_shorter_than_the_socket_timeout(redis_url: str) -> None:
    with pytest.raises(ValueError, match="socket_timeout"):
        RedisEventLog(redis_url, block_ms=5000, socket_timeout=5)


def test_a_client_that_leaves_is_forgotten_at_once_and_leaves_no_task(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    """Twenty clients leave after their first event: their tasks end, nothing stays subscribed."""
    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(make_log()) as log:
            await log.append(name, "first")
            comms = []
            for _ in range(20):
                response = ResumableEventSourceResponse(log, name)
                comm = ApplicationCommunicator(response, http_scope())
                await comm.send_input({"type": "http.request", "body": b""})
                assert (await comm.receive_output(5))["status"] == 200
                assert b"data: first" in (await comm.receive_output(5))["body"]
                comms.append(comm)
            assert log.subscribers == 20
            await asyncio.sleep(0.1)  # each waits on its buffer (the Redis one, on the reader)
            for comm in comms:
                await comm.send_input({"type": "http.disconnect"})
            for comm in comms:
                await comm.wait(5)
                assert comm.future.done() and not comm.future.cancelled()
            assert log.subscribers == 0

    run(test)


def test_a_slow_subscriber_is_disconnected_and_counted_and_read_resumes_it(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(make_log(max_pending=3)) as log:
            slow = log.subscribe(name, start="live")
            reader = log.read(name)
            first = await log.append(name, "0")
            assert (await anext(reader)).id == first  # the reader is live now, then lags
            for i in range(1, 10):
                await log.append(name, str(i))
            await asyncio.sleep(0.2)  # the Redis reader hands them out
            assert slow.dropped
            with pytest.raises(StopAsyncIteration):
                await anext(slow)
            assert log.disconnected >= 2  # the slow one, and the reader's first subscription
            # read() resubscribes after the last event it gave out: nothing lost.
            assert [(await anext(reader)).data for _ in range(9)] == [str(i) for i in range(1, 10)]
            await reader.aclose()

    run(test)


def test_redis_down_when_a_client_connects_gets_retry_and_a_clean_end() -> None:
    """Nothing listens on the port: the answer is a 200 stream that EventSource retries."""
    url = f"redis://127.0.0.1:{free_port()}/0"

    async def test() -> None:
        async with contextlib.aclosing(RedisEventLog(url)) as log:
            for last_id in (None, "1-0"):  # a new client, and one that resumes
                response = ResumableEventSourceResponse(log, "s", last_id, final_events=["done"])
                messages = await exchange(response, http_scope())
                assert messages[0]["status"] == 200
                assert parse_event_stream(body_of(messages).decode()).retry == 1000
                assert messages[-1]["more_body"] is False
            with pytest.raises(EventLogUnavailable):
                await log.append("s", "x")

    run(test)


def test_a_subscriber_ahead_of_the_shared_reader_skips_what_it_has_seen(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    """A client resumes with an ID this process has not handed out yet (it saw it elsewhere)."""
    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(RedisEventLog(redis_url)) as log:
            ids = [await log.append(name, str(i)) for i in range(5)]
            early = log.subscribe(name, ids[0], final_events=["done"])
            assert (await anext(early)).count(b"data:") == 4  # the shared reader now reads it
            # Make this process's fan-out look two events behind, as if its
            # reader had not yet handed out what another worker already sent.
            log._cursors[name] = ids[2]
            ahead = log.subscribe(name, ids[4], final_events=["done"])
            assert ahead.live_from == ids[2]
            task = asyncio.ensure_future(collect(ahead))
            end = await log.append(name, "end", event="done")
            assert await asyncio.wait_for(task, 5) == [(end, "end")]  # not 3 and 4 again
            await early.aclose()

    run(test)


def test_followers_see_a_delay_not_a_gap_through_a_redis_kill_and_a_pause(
    tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL + restart (append-only file), then SIGSTOP/SIGCONT, while events are appended.

    Every follower gets every event once, in order; the reader logs a warning
    per fault (not a storm, and no ERROR); a publisher retries what failed.
    """
    caplog.set_level(logging.WARNING)

    async def append(log: EventLog, data: str, event: str | None = None) -> str:
        while True:
            try:
                return await log.append("s", data, event)
            except EventLogUnavailable:
                await asyncio.sleep(0.1)  # Redis is restarting: try again

    with RedisServer(tmp_path) as server:

        async def test() -> None:
            async with contextlib.aclosing(
                RedisEventLog(server.url, block_ms=500, socket_timeout=1.0)
            ) as log:
                followers = [
                    asyncio.ensure_future(collect(log.subscribe("s", final_events=["done"])))
                    for _ in range(5)
                ]
                ids = [await append(log, str(i)) for i in range(10)]
                await asyncio.sleep(0.2)
                await asyncio.to_thread(server.kill_and_restart)
                ids += [await append(log, str(i)) for i in range(10, 20)]
                await asyncio.sleep(0.2)
                server.pause()
                await asyncio.sleep(2.0)  # twice the socket timeout
                server.resume()
                ids += [await append(log, str(i)) for i in range(20, 30)]
                ids.append(await append(log, "end", "done"))
                for follower in followers:
                    got = await asyncio.wait_for(follower, 15)
                    assert [event_id for event_id, _ in got] == ids

        run(test, 60)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if r.name.startswith("asgi_stream.redis")]
    assert len(warnings) <= 6, [r.getMessage() for r in warnings]  # down and back, per fault


def test_idle_timeout_ends_a_quiet_stream_cleanly(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    """No event for ``idle_timeout`` seconds: a clean end, which ``EventSource`` reconnects."""
    name = unique(request)

    async def test() -> None:
        async with contextlib.aclosing(make_log()) as log:
            await log.append(name, "only")
            response = ResumableEventSourceResponse(log, name, retry=50, idle_timeout=0.2)
            messages = await exchange(response, http_scope())
            assert [e.data for e in parse_event_stream(body_of(messages).decode()).events] == [
                "only"
            ]
            assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
            assert log.subscribers == 0

    run(test)


@pytest.mark.parametrize("bad", [0, -1.0])
def test_idle_timeout_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        ResumableEventSourceResponse(MemoryEventLog(), "s", idle_timeout=bad)


class _KnownSource:
    """A :class:`~asgi_stream.fanout.SubscriptionSource` with nothing to replay: IDs are ints."""

    disconnected = 0

    async def wait_live_from(self, subscription: LogSubscription) -> None:
        pass

    async def replay_page(
        self, stream: str, after: str | None, upto: str, check: bool
    ) -> list[Frame]:
        return []

    def position(self, event_id: str) -> tuple[int, int]:
        return (int(event_id), 0)

    def leave(self, subscription: LogSubscription) -> None:
        pass


@pytest.mark.parametrize("events_before", [0, 1])
def test_a_live_follower_waiting_for_its_next_event_gets_the_error_its_log_ends_it_with(
    events_before: int,
) -> None:
    # A follower with nothing to replay waits in the subscription's short step;
    # when its log fails it meanwhile (the reader gave up, the log went back),
    # the error comes out of that wait, never a quiet end of the stream.
    async def scenario() -> None:
        fanout = StreamFanout(8)
        subscription = LogSubscription(_KnownSource(), "s", fanout, None, "live", frozenset())
        fanout.attach(subscription)
        subscription.live_from = "0"
        for i in range(1, events_before + 1):
            fanout.deliver(Frame(b"data: %d\n\n" % i, str(i), str(i), None, (i, 0)))
            assert await anext(subscription) == b"data: %d\n\n" % i
        waiting = asyncio.ensure_future(anext(subscription))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.done()  # it waits for the next event
        fanout.fail(EventLogUnavailable("the reader failed"))
        with pytest.raises(EventLogUnavailable, match="the reader failed"):
            await asyncio.wait_for(waiting, 5)

    run(scenario)
