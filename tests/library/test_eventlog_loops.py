"""One event log, used from one event loop after another (issue 24, item 7).

A log opened at module level, as docs/resumable.rst shows, outlives the event
loop of each test: one ``asyncio.run()`` after another, or one Starlette
``TestClient`` per test, each with its loop. Whatever the log binds to a loop
(connections, tasks, waiters) is made again in the next one; a log used from
two loops *at once* is refused with an error that says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import pytest

from asgi_stream import EventLog, MemoryEventLog, RedisEventLog, ResumableEventSourceResponse

pytestmark = pytest.mark.server


@pytest.fixture(params=["memory", "redis"])
def log(request: pytest.FixtureRequest) -> EventLog:
    """A log made outside any event loop, as a module-level one is."""
    if request.param == "memory":
        return MemoryEventLog()
    return RedisEventLog(request.getfixturevalue("redis_url"), block_ms=500, socket_timeout=2.0)


def one_round(log: EventLog, stream: str, data: str) -> list[str]:
    """In a fresh event loop: a live subscriber, an append, the event it receives."""

    async def main() -> list[str]:
        async with contextlib.aclosing(log.read(stream)) as events:
            await log.append(stream, data)
            return [(await asyncio.wait_for(anext(events), 10)).data]

    return asyncio.run(main())


def test_a_log_serves_one_asyncio_run_after_another(
    log: EventLog, request: pytest.FixtureRequest
) -> None:
    stream = request.node.name
    try:
        assert one_round(log, stream, "first") == ["first"]
        got = one_round(log, stream, "second")
        assert got == ["first"]  # read() replays from the beginning: the first is held
        assert asyncio.run(asyncio.wait_for(log.append(stream, "third"), 10))
    finally:
        asyncio.run(log.aclose())


def test_a_log_serves_one_starlette_test_client_after_another(
    log: EventLog, request: pytest.FixtureRequest
) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    stream = request.node.name

    async def feed(request: Request) -> ResumableEventSourceResponse:
        return ResumableEventSourceResponse(log, stream, final_events=["done"])

    async def publish(request: Request) -> JSONResponse:
        data = request.query_params["data"]
        event = request.query_params.get("event")
        return JSONResponse({"id": await log.append(stream, data, event)})

    app = Starlette(routes=[Route("/feed", feed), Route("/publish", publish, methods=["POST"])])

    def a_test(data: str) -> str:
        with TestClient(app) as client:  # a loop of its own, as each test has
            assert client.post("/publish", params={"data": data}).status_code == 200
            done = client.post("/publish", params={"data": "end", "event": "done"})
            assert done.status_code == 200
            with client.stream("GET", "/feed", timeout=10) as response:
                return response.read().decode()

    try:
        assert "data: one" in a_test("one")
        body = a_test("two")
        assert "data: one" in body  # the stream replays from its beginning ...
        assert body.count("event: done") == 1  # ... and ends at its first final event
    finally:
        asyncio.run(log.aclose())


def test_a_log_in_use_by_a_running_loop_refuses_another_loop_with_advice(
    log: EventLog, request: pytest.FixtureRequest
) -> None:
    stream = request.node.name
    started = threading.Event()
    release: Callable[[], None] | None = None

    async def hold() -> None:
        nonlocal release
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        release = lambda: loop.call_soon_threadsafe(stop.set_result, None)  # noqa: E731
        await log.append(stream, "held")
        started.set()
        await stop

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert started.wait(10)
        with pytest.raises(RuntimeError, match=r"one event loop at a time.*lifespan"):
            asyncio.run(log.append(stream, "elsewhere"))
    finally:
        assert release is not None
        release()
        thread.join(10)
    assert asyncio.run(asyncio.wait_for(log.append(stream, "after"), 10))
    asyncio.run(log.aclose())
