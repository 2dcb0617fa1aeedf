"""The event log's contract, for both backends: in memory, and Redis Streams (real redis-server)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from asgi_stream import Event, EventIDNotFound, EventLog, MemoryEventLog, open_event_log

pytestmark = pytest.mark.server

MakeLog = Callable[[int], EventLog]


@pytest.fixture(params=["memory", "redis", "redis-resp3"])
def make_log(request: pytest.FixtureRequest) -> MakeLog:
    """A factory ``maxlen -> EventLog``; call it inside the test's event loop."""
    if request.param == "memory":
        return MemoryEventLog
    url = request.getfixturevalue("redis_url")
    if request.param == "redis-resp3":  # replies are shaped differently in RESP3
        url += "?protocol=3"
    return lambda maxlen: open_event_log(url, maxlen)


def run(make_log: MakeLog, test: Callable[[EventLog], Awaitable[None]], maxlen: int = 1000) -> None:
    async def main() -> None:
        log = make_log(maxlen)
        try:
            await asyncio.wait_for(test(log), 10)
        finally:
            await log.aclose()

    asyncio.run(main())


async def take(events: AsyncIterator[Event], n: int) -> list[Event]:
    return [await anext(events) for _ in range(n)]


def stream_name(request: pytest.FixtureRequest) -> str:
    return request.node.name  # unique per test and backend, so one Redis serves all


def test_read_replays_the_backlog_then_follows_live(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    name = stream_name(request)

    async def test(log: EventLog) -> None:
        ids = [await log.append(name, f"old {i}") for i in range(3)]
        assert len(set(ids)) == 3
        async with contextlib.aclosing(log.read(name)) as events:
            assert [e.data for e in await take(events, 3)] == ["old 0", "old 1", "old 2"]
            waiting = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.05)
            assert not waiting.done()  # caught up: it waits for the next append
            new_id = await log.append(name, "new", event="done")
            assert await waiting == Event(new_id, "new", "done")
        assert await log.last(name) == Event(new_id, "new", "done")
        assert await log.exists(name)
        assert not await log.exists(name + "-never")

    run(make_log, test)


def test_resume_after_an_id_while_appends_race_gives_no_gap_and_no_duplicate(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    """A reader resumes while the writer is appending: it gets exactly the rest, in order."""
    name = stream_name(request)

    async def test(log: EventLog) -> None:
        first = [await log.append(name, str(i)) for i in range(20)]

        async def write() -> None:
            for i in range(20, 300):
                await log.append(name, str(i))
                if i % 7 == 0:
                    await asyncio.sleep(0)

        writer = asyncio.ensure_future(write())
        async with contextlib.aclosing(log.read(name, first[9])) as events:
            received = [e.data for e in await take(events, 290)]
        await writer
        assert received == [str(i) for i in range(10, 300)]

    run(make_log, test)


@pytest.mark.parametrize(
    "bad", ["nonsense", "999999", "99999999999999-0", "99999999999999999999-0", "", "1\n2"]
)
def test_an_unknown_id_is_reported_not_guessed(
    make_log: MakeLog, request: pytest.FixtureRequest, bad: str
) -> None:
    name = stream_name(request)

    async def test(log: EventLog) -> None:
        await log.append(name, "x")
        with pytest.raises(EventIDNotFound) as caught:
            await anext(log.read(name, bad))
        assert caught.value.trimmed is False
        assert caught.value.event_id == bad

    run(make_log, test)


def test_a_trimmed_id_is_reported_as_trimmed(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    name = stream_name(request)

    async def test(log: EventLog) -> None:
        first = await log.append(name, "0")
        for i in range(1, 500):  # Redis trims whole nodes of 100 entries: go well past
            await log.append(name, str(i))
        with pytest.raises(EventIDNotFound) as caught:
            await anext(log.read(name, first))
        assert caught.value.trimmed is True
        # Reading from the start gives what is held: the newest events, in order.
        async with contextlib.aclosing(log.read(name)) as events:
            held = [int((await anext(events)).data)]
            while held[-1] != 499:
                held.append(int((await anext(events)).data))
        assert 10 <= len(held) < 500
        assert held == list(range(500 - len(held), 500))

    run(make_log, test, maxlen=10)


def test_a_reader_that_falls_behind_the_trimming_is_told(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    name = stream_name(request)

    async def test(log: EventLog) -> None:
        await log.append(name, "0")
        async with contextlib.aclosing(log.read(name)) as events:
            assert (await anext(events)).data == "0"
            for i in range(1, 500):
                await log.append(name, str(i))
            with pytest.raises(EventIDNotFound) as caught:
                await anext(events)
        assert caught.value.trimmed is True

    run(make_log, test, maxlen=10)


def test_a_live_reader_follows_a_stream_that_expired_and_was_created_again(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    """As Redis XREAD does: the reader waits through the expiry, then gets the new stream."""
    name = stream_name(request)

    async def test(log: EventLog) -> None:
        await log.append(name, "old")
        await log.expire(name, 1)  # Redis expires in whole seconds
        async with contextlib.aclosing(log.read(name)) as events:
            assert (await anext(events)).data == "old"
            waiting = asyncio.ensure_future(anext(events))
            # The stream expires while the reader waits (polled, bounded: Redis
            # expires keys a little after their time, never before).
            async with asyncio.timeout(10):
                while await log.exists(name):
                    await asyncio.sleep(0.05)
            assert not waiting.done()
            await log.append(name, "new 0")  # a new stream of the same name
            await log.append(name, "new 1")
            assert (await asyncio.wait_for(waiting, 2)).data == "new 0"
            assert (await anext(events)).data == "new 1"

    run(make_log, test)


def test_memory_log_is_bounded_and_forgets_expired_streams() -> None:
    async def main() -> None:
        log = MemoryEventLog(maxlen=3)
        ids = [await log.append("a", str(i)) for i in range(10)]
        # The last three are held; the ID right before them still resumes exactly.
        async with contextlib.aclosing(log.read("a", ids[6])) as events:
            assert [e.id for e in await take(events, 3)] == ids[7:]
        with pytest.raises(EventIDNotFound):
            await anext(log.read("a", ids[5]))
        await log.expire("a", 0)
        assert not await log.exists("a")
        await log.append("b", "x")
        assert set(log._streams) == {"b"}
        # A reader of a stream nobody writes to leaves nothing behind.
        reader = log.read("nobody")
        waiting = asyncio.ensure_future(anext(reader))
        await asyncio.sleep(0)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await reader.aclose()
        assert set(log._streams) == {"b"}

    asyncio.run(main())


def test_redis_log_sets_the_expiry_in_redis(redis_url: str) -> None:
    async def main() -> None:
        log = open_event_log(redis_url)
        await log.append("expiring", "x")
        await log.expire("expiring", 30)
        ttl = await log.redis.ttl(log.key("expiring"))  # type: ignore[attr-defined]
        await log.aclose()
        assert 0 < ttl <= 30

    asyncio.run(main())


def test_open_event_log_refuses_an_unknown_url() -> None:
    with pytest.raises(ValueError, match="unknown event log"):
        open_event_log("postgres://x")


def test_importing_the_library_never_imports_redis() -> None:
    code = (
        "import sys, asgi_stream, asgi_stream.eventlog, asgi_stream.redis_eventlog, "
        "asgi_stream.resumable, asgi_stream.catalogue.jobs; print('redis' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parent.parent.parent,
    )
    assert result.stdout.strip() == "False", result.stderr
