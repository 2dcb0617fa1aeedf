"""A disconnect storm: 2,000 clients leave endless streams at random points, and nothing leaks.

Each client is a raw asyncio connection (:mod:`asgi_stream.tools.soak`), so it can
leave at any byte: in the middle of its request headers, just after the
response headers, or somewhere in the body, with a polite FIN or a TCP reset.
A tenth of the streams are sync generators, each on a thread of its own.

Before the storm, a warm-up holds more sync streams open at once than the
shared thread pool has threads (each has its own, and each must end with its
stream), then runs a first storm: the memory allocator keeps what it once took, so only a second
storm shows whether streams leave something behind. After the storm the
server must answer at once, its tasks, descriptors and running generators
must come back to the baseline, its threads must not exceed it, its memory
must stay within 8 MiB of it (measured: under 0.1 MiB on uvicorn, 2.6 MiB on
hypercorn), and nothing may be logged at error level.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from asgi_stream.concurrency import MAX_THREADS
from asgi_stream.tools.rawhttp import abort, connect, fetch, read_body, read_head, request_bytes
from tests.reliability import errors_logged, poll_until, serve_test_app, stats

pytestmark = [pytest.mark.server, pytest.mark.slow]

CLIENTS = 2000
AT_ONCE = 500  # clients in flight at a time
WARM_UP = CLIENTS  # a smaller storm leaves hypercorn short of its high-water mark
MODES = ("request headers", "response headers", "body")
# After the warm-up, 2,000 streams that each leaked 4 KiB would not fit in this.
RSS_SLACK_KIB = 8 * 1024


def path(rng: random.Random) -> str:
    kind = "/endless-sync" if rng.random() < 0.1 else "/endless"
    return f"{kind}?interval=0.02"


async def client(port: int, mode: str, rng: random.Random) -> None:
    reader, writer = await connect(port)
    try:
        request = request_bytes("GET", path(rng))
        if mode == "request headers":
            writer.write(request[: rng.randint(1, len(request) - 2)])
            await writer.drain()
            await asyncio.sleep(rng.uniform(0, 0.02))
            return
        writer.write(request)
        status, headers = await read_head(reader)
        assert status == 200
        if mode == "body":
            body, _ = await read_body(reader, headers, limit=rng.randint(1, 200))
            assert body.startswith(b"data: 0\n\n")
    finally:
        if rng.random() < 0.5:
            abort(writer)
        else:
            writer.close()


async def hold_sync_streams(port: int, count: int) -> None:
    """Hold ``count`` sync streams open at once until each has sent an event, then leave."""
    all_open = asyncio.Barrier(count)

    async def one() -> None:
        reader, writer = await connect(port)
        try:
            writer.write(request_bytes("GET", "/endless-sync?interval=0.05"))
            _, headers = await read_head(reader)
            await read_body(reader, headers, limit=20)
            await asyncio.wait_for(all_open.wait(), 60)  # every stream has sent an event
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))


async def drop_all(port: int, clients: int, seed: int) -> None:
    """``clients`` clients, :data:`AT_ONCE` at a time, each leaving at a random point."""
    rng = random.Random(seed)
    slots = asyncio.Semaphore(AT_ONCE)
    failures = []

    async def limited(number: int) -> None:
        async with slots:
            try:
                await client(port, MODES[number % 3], random.Random(rng.random()))
            except Exception as exc:  # collected, so that one failure shows them all
                failures.append(repr(exc))

    await asyncio.gather(*(limited(number) for number in range(clients)))
    assert not failures, failures[:5]


async def settled_stats(port: int, baseline: dict[str, int]) -> dict[str, int]:
    """The stats once no stream runs and tasks and descriptors are back (bounded wait)."""

    def settled(now: dict[str, int]) -> bool:
        return (
            now["open_streams"] == 0
            and now["tasks"] <= baseline["tasks"]
            and now["fds"] <= baseline["fds"]
            and now["threads"] <= baseline["threads"]
        )

    return await poll_until(lambda: stats(port), settled)


async def storm(port: int) -> tuple[dict[str, int], dict[str, int], dict[str, int], bool]:
    # The warm-up: more sync streams than pool threads, and a smaller storm at full concurrency,
    # which takes the allocator to its high-water mark.
    fresh = await stats(port)
    await hold_sync_streams(port, MAX_THREADS + 20)
    await drop_all(port, WARM_UP, seed=1)
    # hypercorn takes a few seconds to let go of its connections' tasks.
    baseline = await settled_stats(port, fresh)

    await drop_all(port, CLIENTS, seed=7)
    # A new request is answered at once (bounded by the client's own timeout).
    reply = await asyncio.wait_for(fetch(port, "GET", "/stream"), 5)
    answered = reply.status == 200 and reply.complete
    after = await settled_stats(port, baseline)
    return fresh, baseline, after, answered


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn"])
def test_two_thousand_clients_leave_at_random_points_and_nothing_leaks(
    tmp_path: Path, server_name: str
) -> None:
    with serve_test_app(tmp_path, server_name) as server:
        fresh, baseline, after, answered = asyncio.run(storm(server.port))
        output = server.output()
    assert answered, "the server did not answer a new request right after the storm"
    assert baseline["threads"] <= fresh["threads"], "a sync stream's thread outlived it"
    assert after["open_streams"] == 0, "a generator's finally did not run"
    assert after["tasks"] <= baseline["tasks"], (baseline, after)
    assert after["fds"] <= baseline["fds"], (baseline, after)
    assert after["threads"] <= baseline["threads"], (baseline, after)
    assert after["rss_kib"] - baseline["rss_kib"] < RSS_SLACK_KIB, (baseline, after)
    # Every client that saw a body saw a running generator; each of those ran its finally.
    assert output.count("finally ran") >= CLIENTS // 3
    assert errors_logged(output) == []
