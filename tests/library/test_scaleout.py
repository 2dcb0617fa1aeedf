"""Live fan-out across workers and hosts: real servers, one Redis, real SSE clients.

Each "host" is a uvicorn process on its own loopback address (``127.0.0.1``
with two workers, ``127.0.0.2`` with one), serving :mod:`tests.fanout_app`
on the same Redis. Clients are httpx-sse, resuming with ``Last-Event-ID``
like a browser does; a publisher retries what a 503 refused. Then the faults:
a Redis SIGKILL + restart and SIGSTOP/SIGCONT mid-stream, and a worker
SIGKILLed, whose clients move to another host.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from asgi_stream.tools.redis_servers import RedisServer
from tests.serving import ServerProcess, serve

pytestmark = pytest.mark.server

Received = list[tuple[str, str]]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def hosts(tmp_path: Path, redis: RedisServer) -> Iterator[list[ServerProcess]]:
    """Two hosts on one Redis: 127.0.0.1 with two workers, 127.0.0.2 with one."""
    env = {"ASGI_STREAM_EVENT_LOG": redis.url}
    with ExitStack() as stack:
        servers = []
        for address, workers in (("127.0.0.1", "2"), ("127.0.0.2", "1")):
            argv = ["-m", "uvicorn", "tests.fanout_app:app", "--host", address]
            argv += ["--workers", workers, "--log-level", "warning"]
            servers.append(stack.enter_context(serve(argv, tmp_path, env=env, host=address)))
        yield servers


async def follow(
    client: httpx.AsyncClient,
    urls: list[str],
    stream: str,
    workers: set[str],
    received: Received | None = None,
) -> Received:
    """Follow ``stream`` until ``done``, resuming with the last ID; the next URL on a failure.

    The events go into ``received`` as they come (a new list by default), so
    that a test can see how far a follower has got.
    """
    received = [] if received is None else received
    last_id = ""
    for url in itertools.chain(urls, itertools.repeat(urls[-1])):
        while True:
            headers = {"last-event-id": last_id} if last_id else {}
            try:
                async with aconnect_sse(
                    client, "GET", f"{url}/events", params={"stream": stream}, headers=headers
                ) as source:
                    assert source.response.status_code == 200
                    workers.add(source.response.headers["x-worker"])
                    async for event in source.aiter_sse():
                        assert event.event != "reset", event.data
                        if not event.data:
                            continue  # the retry field alone
                        last_id = event.id
                        received.append((event.id, event.data))
                        if event.event == "done":
                            return received
            except httpx.TransportError:
                break  # this host is gone: the next one
            await asyncio.sleep(0.1)  # a clean end: come back after retry, as EventSource does


async def publish(
    client: httpx.AsyncClient, url: str, stream: str, data: str, event: str = ""
) -> str:
    """Append one event through ``url``, again while it answers 503."""
    params = {"stream": stream, "data": data} | ({"event": event} if event else {})
    for _ in range(200):
        response = await client.post(f"{url}/publish", params=params)
        if response.status_code != 503:
            assert response.status_code == 200, response.text
            event_id: str = response.json()["id"]
            return event_id
        await asyncio.sleep(0.1)
    raise AssertionError("Redis did not come back")


def assert_quiet(*servers: ServerProcess) -> None:
    for server in servers:
        output = server.output()
        assert "Traceback" not in output and "ERROR" not in output, output


def test_an_event_published_on_either_host_reaches_every_subscriber_once_in_order(
    hosts: list[ServerProcess],
) -> None:
    a, b = hosts

    async def main() -> None:
        workers: set[str] = set()
        async with httpx.AsyncClient(timeout=10) as client:
            followers = [
                asyncio.ensure_future(follow(client, [server.url], "news", workers))
                for server in (a, b) * 10
            ]
            ids = []
            for i in range(30):
                ids.append(await publish(client, (a, b)[i % 2].url, "news", str(i)))
            ids.append(await publish(client, a.url, "news", "end", "done"))
            for follower in followers:
                got = await asyncio.wait_for(follower, 20)
                assert [event_id for event_id, _ in got] == ids
        assert len(workers) >= 2  # the subscribers were spread over processes

    asyncio.run(main())
    assert_quiet(a, b)


def test_redis_killed_and_paused_mid_stream_gives_no_gap_no_duplicate_no_500(
    hosts: list[ServerProcess], redis: RedisServer
) -> None:
    a, b = hosts

    async def main() -> None:
        workers: set[str] = set()
        async with httpx.AsyncClient(timeout=30) as client:
            followers = [
                asyncio.ensure_future(follow(client, [server.url], "faults", workers))
                for server in (a, b) * 5
            ]
            ids = [await publish(client, a.url, "faults", str(i)) for i in range(10)]
            await asyncio.sleep(0.3)
            await asyncio.to_thread(redis.kill_and_restart)
            ids += [await publish(client, b.url, "faults", str(i)) for i in range(10, 20)]
            await asyncio.sleep(0.3)
            redis.pause()
            await asyncio.sleep(3.0)
            redis.resume()
            ids += [await publish(client, a.url, "faults", str(i)) for i in range(20, 30)]
            ids.append(await publish(client, b.url, "faults", "end", "done"))
            for follower in followers:
                got = await asyncio.wait_for(follower, 30)
                assert [event_id for event_id, _ in got] == ids

    asyncio.run(main())
    assert_quiet(a, b)


def test_the_clients_of_a_worker_killed_with_sigkill_resume_on_another_host(
    hosts: list[ServerProcess],
) -> None:
    a, b = hosts

    async def main() -> None:
        workers: set[str] = set()
        async with httpx.AsyncClient(timeout=10) as client:
            followers = [
                asyncio.ensure_future(follow(client, [b.url, a.url], "moving", workers))
                for _ in range(10)
            ]
            ids = [await publish(client, a.url, "moving", str(i)) for i in range(10)]
            await asyncio.sleep(0.3)
            b.stop(signal.SIGKILL)
            ids += [await publish(client, a.url, "moving", str(i)) for i in range(10, 20)]
            ids.append(await publish(client, a.url, "moving", "end", "done"))
            for follower in followers:
                got = await asyncio.wait_for(follower, 20)
                assert [event_id for event_id, _ in got] == ids

    asyncio.run(main())
    assert_quiet(a)
