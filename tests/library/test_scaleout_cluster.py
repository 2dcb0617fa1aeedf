"""Live fan-out on a Redis Cluster (issue 27): 1,000 SSE subscribers through a master failover.

uvicorn with two workers serves :mod:`tests.fanout_app` on a cluster of 3
masters and 3 replicas (:class:`~asgi_stream.tools.redis_servers.RedisCluster`):
``ASGI_STREAM_EVENT_LOG`` is the cluster's ``redis+cluster://`` URL. 1,000
httpx-sse clients follow 20 streams spread over the three masters; a
publisher appends through the server, again while it answers 503. Halfway,
the master of some of the streams is SIGKILLed while events are still
published, and its replica is promoted. A client that the server cuts comes
back with ``Last-Event-ID``, as a browser does. Every subscriber must get
every event of its stream once, in order, and never a reset.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asgi_stream import EventLog, open_event_log
from asgi_stream.tools.process import raise_open_files_limit
from asgi_stream.tools.redis_servers import RedisCluster, RedisServer, slot_of
from tests.library.test_scaleout import Received, assert_quiet, follow, publish
from tests.serving import ServerProcess, serve
from tests.waiting import until

pytestmark = [pytest.mark.server, pytest.mark.slow]

SUBSCRIBERS = 1000
STREAMS = 20
#: The bound on every wait here: a failover takes about 2 s, 1,000 clients a few more.
BOUND = 60.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path / "cluster") as cluster:
        yield cluster


@pytest.fixture
def host(tmp_path: Path, cluster: RedisCluster) -> Iterator[ServerProcess]:
    """uvicorn, two workers, on the cluster."""
    raise_open_files_limit()  # for this process's 1,000 clients; the workers inherit it
    argv = ["-m", "uvicorn", "tests.fanout_app:app", "--host", "127.0.0.1"]
    argv += ["--workers", "2", "--log-level", "warning"]
    with serve(argv, tmp_path, env={"ASGI_STREAM_EVENT_LOG": cluster.url}) as server:
        yield server


def streams_on_every_master(cluster: RedisCluster, log: EventLog) -> dict[str, RedisServer]:
    """``STREAMS`` stream names, at least 6 on each master: each one's master."""
    found: dict[str, RedisServer] = {}
    per_master: collections.Counter[int] = collections.Counter()
    for i in range(10_000):
        stream = f"news-{i}"
        master = cluster.master_of(slot_of(log.key(stream)))
        if per_master[master.port] < 7:
            per_master[master.port] += 1
            found[stream] = master
        if len(found) == STREAMS:
            return found
    raise AssertionError("10,000 stream names and not 6 on each master")


def test_a_failover_under_1000_subscribers_over_two_workers_loses_and_repeats_nothing(
    cluster: RedisCluster, host: ServerProcess
) -> None:
    async def main() -> None:
        async with contextlib.aclosing(open_event_log(cluster.url)) as log:  # for its keys
            await fan_out(cluster, host, log)

    asyncio.run(main())
    assert_quiet(host)


async def fan_out(cluster: RedisCluster, host: ServerProcess, log: EventLog) -> None:
    """The scenario of the test above, ``log`` naming the streams' keys."""
    masters = streams_on_every_master(cluster, log)
    streams = list(masters)
    victim = masters[streams[0]]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=BOUND, limits=limits) as client:
        workers: set[str] = set()
        received: list[Received] = [[] for _ in range(SUBSCRIBERS)]
        followers = [
            asyncio.ensure_future(
                follow(client, [host.url], streams[i % STREAMS], workers, received[i])
            )
            for i in range(SUBSCRIBERS)
        ]
        ids: dict[str, list[str]] = {stream: [] for stream in streams}

        async def publish_all(first: int, count: int, pause: float = 0.0) -> None:
            async def one_stream(stream: str) -> None:
                for n in range(first, first + count):
                    ids[stream].append(await publish(client, host.url, stream, str(n)))
                    await asyncio.sleep(pause)

            await asyncio.gather(*(one_stream(stream) for stream in streams))

        def settled_or_failed(count: int) -> bool:
            done = all(len(r) >= count for r in received)
            return done or any(follower.done() for follower in followers)

        await publish_all(0, 5)
        await until(lambda: settled_or_failed(5), BOUND)  # all 1,000 live
        during = asyncio.ensure_future(publish_all(5, 10, pause=0.2))  # through the failover
        promoted = await asyncio.to_thread(cluster.fail_over, victim)
        await asyncio.wait_for(during, BOUND)
        assert cluster.master_of(slot_of(log.key(streams[0]))) is promoted
        await publish_all(15, 3)
        for stream in streams:
            ids[stream].append(await publish(client, host.url, stream, "end", "done"))
        for i, follower in enumerate(followers):
            got = await asyncio.wait_for(follower, BOUND)
            stream = streams[i % STREAMS]
            assert [event_id for event_id, _ in got] == ids[stream], (i, stream)
            assert [data for _, data in got] == [*map(str, range(18)), "end"], (i, stream)
    assert len(workers) == 2  # the subscribers were spread over both processes
