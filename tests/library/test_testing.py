"""asgi_stream.testing and its httpx transport: endless streams tested in-process.

Every app here is a real one (FastAPI with sse-starlette, Starlette with our
twin, our Router, raw ASGI callables), and every wait is for the event
itself, bounded: nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import litestar
import litestar.response
import pytest
import sse_starlette
from fastapi import FastAPI
from httpx_sse import aconnect_sse, connect_sse
from starlette.applications import Starlette
from starlette.routing import Route as StarletteRoute

from asgi_stream import EventSourceResponse, Request, Router, StreamingResponse
from asgi_stream import starlette as twins
from asgi_stream.testing import (
    AppStillRunning,
    EventStreamParser,
    IncompleteResponse,
    LifespanFailed,
    MessageEvent,
    ReadTimeout,
    StreamedResponse,
    http_scope,
    lifespan,
    parse_event_stream,
    stream,
)
from asgi_stream.testing_httpx import StreamingTransport
from asgi_stream.types import Receive, Scope, Send

URL = "http://testserver/events"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Ticker:
    """An endless event generator that records its steps and whether its ``finally`` ran."""

    def __init__(self) -> None:
        self.finally_ran = False
        self.sent = 0

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                yield {"data": f"tick {self.sent}", "id": str(self.sent)}
                self.sent += 1
                await asyncio.sleep(0.001)
        finally:
            self.finally_ran = True


def fastapi_app(ticker: Ticker) -> Any:
    app = FastAPI()

    @app.get("/events")
    async def events() -> sse_starlette.EventSourceResponse:
        return sse_starlette.EventSourceResponse(ticker.events())

    return app


def starlette_app(ticker: Ticker) -> Any:
    async def events(request: Any) -> Any:
        return twins.EventSourceResponse(ticker.events())

    return Starlette(routes=[StarletteRoute("/events", events)])


def router_app(ticker: Ticker) -> Any:
    async def events(request: Request) -> EventSourceResponse:
        return EventSourceResponse(ticker.events())

    router = Router()
    router.add("/events", events, ["GET"])
    return router


def litestar_app(ticker: Ticker) -> Any:
    @litestar.get("/events")
    async def events() -> litestar.response.ServerSentEvent:
        return litestar.response.ServerSentEvent(ticker.events())

    return litestar.Litestar([events])


APPS = {
    "fastapi+sse-starlette": fastapi_app,
    "starlette+twin": starlette_app,
    "router": router_app,
    "litestar": litestar_app,
}


@pytest.mark.parametrize("make_app", APPS.values(), ids=APPS.keys())
async def test_three_events_from_an_endless_stream_with_an_async_client(
    make_app: Callable[[Ticker], Any],
) -> None:
    ticker = Ticker()
    async with httpx.AsyncClient(transport=StreamingTransport(make_app(ticker))) as client:
        async with aconnect_sse(client, "GET", URL) as source:
            assert source.response.status_code == 200
            events = []
            async for event in source.aiter_sse():
                events.append(event.data)
                if len(events) == 3:
                    break
        assert ticker.finally_ran
    assert events == ["tick 0", "tick 1", "tick 2"]


@pytest.mark.parametrize("make_app", APPS.values(), ids=APPS.keys())
def test_three_events_from_an_endless_stream_with_a_sync_client(
    make_app: Callable[[Ticker], Any],
) -> None:
    ticker = Ticker()
    app = make_app(ticker)  # Litestar starts a logging thread of its own here
    threads = threading.active_count()
    with httpx.Client(transport=StreamingTransport(app)) as client:
        with connect_sse(client, "GET", URL) as source:
            events = []
            for event in source.iter_sse():
                events.append(event.data)
                if len(events) == 3:
                    break
        assert ticker.finally_ran
    assert events == ["tick 0", "tick 1", "tick 2"]
    assert threading.active_count() == threads  # the app's thread is gone with the client


@pytest.mark.parametrize("make_app", APPS.values(), ids=APPS.keys())
async def test_the_core_reads_events_and_leaves(make_app: Callable[[Ticker], Any]) -> None:
    ticker = Ticker()
    async with stream(make_app(ticker), "GET", "/events") as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        async for event in response.aiter_events():
            events.append(event)
            if len(events) == 3:
                break
        assert not ticker.finally_ran
    assert ticker.finally_ran
    assert events[2] == MessageEvent("message", "tick 2", "2")
    assert not response.complete


async def test_the_app_is_at_most_one_message_ahead_of_the_reader() -> None:
    sent = 0

    async def firehose() -> AsyncIterator[bytes]:  # never waits for anything but its reader
        nonlocal sent
        while True:
            sent += 1
            yield b"x"

    async with stream(StreamingResponse(firehose())) as response:
        await response.read_chunk()
        for _ in range(200):  # unbounded, the app would send a chunk on every turn
            await asyncio.sleep(0)
        # One read, one waiting in the buffer, one whose send() waits, one the generator holds.
        assert sent <= 4


# Errors


class Boom(Exception):
    pass


async def fails_before_the_start(scope: Scope, receive: Receive, send: Send) -> None:
    raise Boom("before")


async def fails_after_a_chunk(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"one", "more_body": True})
    raise Boom("after")


async def returns_midway(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"one", "more_body": True})


async def test_an_error_before_the_start_is_raised_as_itself() -> None:
    with pytest.raises(Boom, match="before"):
        async with stream(fails_before_the_start):
            pass
    async with httpx.AsyncClient(transport=StreamingTransport(fails_before_the_start)) as client:
        with pytest.raises(Boom, match="before"):
            await client.get("http://testserver/")


async def test_an_error_after_the_start_is_raised_from_the_read_and_the_body_is_incomplete() -> (
    None
):
    async with stream(fails_after_a_chunk) as response:
        assert response.status == 200
        assert await response.read_chunk() == b"one"
        with pytest.raises(Boom, match="after"):
            await response.read_chunk()
    assert not response.complete


def test_an_error_after_the_start_reaches_a_sync_client_from_its_read() -> None:
    client = httpx.Client(transport=StreamingTransport(fails_after_a_chunk))
    with client, client.stream("GET", "http://testserver/") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"one"
        with pytest.raises(Boom, match="after"):
            next(chunks)


async def test_an_app_that_returns_midway_leaves_the_body_incomplete() -> None:
    async with stream(returns_midway) as response:
        with pytest.raises(IncompleteResponse, match="without completing"):
            await response.read()
    assert not response.complete


async def test_a_finished_body_is_complete() -> None:
    async with stream(StreamingResponse([b"a", b"b"])) as response:
        assert await response.read() == b"ab"
    assert response.complete


async def test_an_error_after_the_client_left_is_raised_on_leaving() -> None:
    async def fails_on_leaving(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"
        raise Boom("on leaving")

    with pytest.raises(Boom, match="on leaving"):
        async with stream(fails_on_leaving):
            pass


async def test_a_closed_response_cannot_be_read_or_sent_again() -> None:
    async with stream(router_app(Ticker()), "GET", "/events") as response:
        await response.read_chunk()
    with pytest.raises(RuntimeError, match="closed"):
        await response.read_chunk()
    with pytest.raises(RuntimeError, match="already sent"):
        await response.start()


# Timeouts


async def starts_then_stalls(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while (await receive())["type"] != "http.disconnect":
        pass


async def test_a_read_timeout_fires() -> None:
    async with stream(starts_then_stalls, read_timeout=0.05) as response:
        with pytest.raises(ReadTimeout, match="starts_then_stalls"):
            await response.read_chunk()


async def test_a_read_timeout_is_httpx_s_own_through_the_transport() -> None:
    transport = StreamingTransport(starts_then_stalls)
    client = httpx.AsyncClient(transport=transport, timeout=0.05)
    async with client, client.stream("GET", "http://testserver/") as response:
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()


async def test_an_app_that_ignores_the_disconnect_is_named_and_cancelled() -> None:
    cancelled = asyncio.Event()

    async def deaf(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(AppStillRunning, match="deaf"):
        async with stream(deaf, close_timeout=0.05):
            pass
    assert cancelled.is_set()


async def test_an_app_that_sends_on_after_the_client_left_cannot_hang_the_test() -> None:
    async def sends_regardless(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b"x", "more_body": True})

    with pytest.raises(AppStillRunning, match="sends_regardless"):
        async with stream(sends_regardless, close_timeout=0.05) as response:
            await response.read_chunk()


# The request


async def test_a_streamed_request_body_reaches_the_generator_piece_by_piece() -> None:
    async def echo(request: Request) -> StreamingResponse:
        return StreamingResponse(request.stream())

    echoed: asyncio.Queue[bytes] = asyncio.Queue()

    async def upload() -> AsyncIterator[bytes]:
        for piece in (b"one", b"two", b"three"):
            yield piece
            # The next piece goes only once this one came back: the body streams.
            assert await asyncio.wait_for(echoed.get(), 5) == piece

    router = Router()
    router.add("/echo", echo, ["POST"])
    async with stream(router, "POST", "/echo", body=upload()) as response:
        async for chunk in response.aiter_bytes():
            echoed.put_nowait(chunk)
    assert response.complete


def test_a_sync_client_sends_a_whole_body() -> None:
    async def echo(request: Request) -> Any:
        from asgi_stream import JSONResponse

        return JSONResponse({"got": (await request.body()).decode()})

    router = Router()
    router.add("/echo", echo, ["POST"])
    with httpx.Client(transport=StreamingTransport(router)) as client:
        assert client.post("http://testserver/echo", content=b"hello").json() == {"got": "hello"}


async def test_the_scope_is_a_servers() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await StreamingResponse([b"ok"])(scope, receive, send)

    transport = StreamingTransport(app, root_path="/api")
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://example.org:8080/a%20b?x=1", headers={"X-Thing": "Yes"})
    scope = seen[0]
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["http_version"] == "1.1"
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/a b", b"/a%20b", b"x=1")
    assert scope["root_path"] == "/api"
    assert scope["server"] == ("example.org", 8080)
    assert scope["client"] == ("127.0.0.1", 50000)
    assert (b"x-thing", b"Yes") in scope["headers"]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert set(scope["extensions"]) == {"http.response.trailers", "http.response.pathsend"}


def test_http_scope_refuses_a_query_given_twice() -> None:
    with pytest.raises(ValueError, match="not both"):
        http_scope("GET", "/?a=1", b"b=2")


async def test_contextvars_do_not_cross_between_the_test_and_the_app() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(var.get())
        var.set("the app's")
        await StreamingResponse([b"ok"])(scope, receive, send)

    var.set("the test's")
    async with httpx.AsyncClient(transport=StreamingTransport(app)) as client:
        await client.get("http://testserver/")
    async with stream(app) as response:
        await response.read()
    assert seen == ["unset", "unset"]
    assert var.get() == "the test's"


# HEAD, trailers, pathsend


async def test_head_gets_the_headers_and_no_body() -> None:
    ticker = Ticker()
    async with stream(router_app(ticker), "HEAD", "/events") as response:
        assert response.status == 200
        assert await response.read() == b""

    async def sends_a_body_anyway(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"dropped, as a server drops it"})

    async with stream(sends_a_body_anyway, "HEAD") as response:
        assert await response.read() == b""
    assert response.complete


async def test_trailers_are_read_after_the_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "http.response.trailers" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"body"})
        await send(
            {"type": "http.response.trailers", "headers": [(b"x-a", b"1")], "more_trailers": True}
        )
        await send({"type": "http.response.trailers", "headers": [(b"x-b", b"2")]})

    async with stream(app, headers={"te": "trailers"}) as response:
        assert await response.read() == b"body"
    assert response.complete
    assert dict(response.trailers) == {"x-a": "1", "x-b": "2"}


async def test_pathsend_reads_the_file_as_the_body(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"x" * 100_000)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(path)})

    async with stream(app) as response:
        assert await response.read() == path.read_bytes()
    assert response.complete


# Lifespan


async def test_lifespan_runs_startup_and_shutdown_and_its_state_reaches_the_request() -> None:
    log = []

    @asynccontextmanager
    async def life(app: Any) -> AsyncIterator[dict[str, Any]]:
        log.append("startup")
        yield {"greeting": "hello"}
        log.append("shutdown")

    async def hello(request: Any) -> Any:
        return twins.StreamingResponse(iter([request.state.greeting.encode()]))

    app = Starlette(routes=[StarletteRoute("/", hello)], lifespan=life)
    async with lifespan(app) as state:
        assert log == ["startup"]
        async with httpx.AsyncClient(transport=StreamingTransport(app, state=state)) as client:
            assert (await client.get("http://testserver/")).text == "hello"
    assert log == ["startup", "shutdown"]


async def test_a_failed_startup_is_raised() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(LifespanFailed, match="no database"):
        async with lifespan(app):
            pass


# Nothing left behind


def live(cls: type) -> int:
    gc.collect()
    return sum(isinstance(thing, cls) for thing in gc.get_objects())


async def test_a_thousand_streams_leave_no_task_thread_or_object_behind() -> None:
    ticker = Ticker()
    app = router_app(ticker)
    tasks, threads = len(asyncio.all_tasks()), threading.active_count()
    for _ in range(1000):
        async with stream(app, "GET", "/events") as response:
            await response.read_chunk()
    del response
    assert len(asyncio.all_tasks()) == tasks
    assert threading.active_count() == threads
    assert live(StreamedResponse) == 0
    assert ticker.finally_ran


def test_a_thousand_streams_through_a_sync_client_leave_no_thread_behind() -> None:
    app = router_app(Ticker())
    threads = threading.active_count()
    with httpx.Client(transport=StreamingTransport(app)) as client:
        for _ in range(1000):
            with client.stream("GET", URL) as response:
                next(response.iter_raw())
        del response
        assert threading.active_count() == threads + 1  # the app's one thread
    assert threading.active_count() == threads
    assert live(StreamedResponse) == 0


# The event-stream parser


def test_the_parser_follows_the_whatwg_rules() -> None:
    parsed = parse_event_stream(
        "\ufeffdata: one\r\ndata:two\r\rid: 7\nevent: custom\ndata\n\n"
        ": a comment\nid: bad\0id\nretry: 1x\nretry: 250\ndata:  spaced\n\n"
        "data: no data line ends\n\nid: 9\n\n"
        "data: unterminated"
    )
    assert parsed.events == [
        MessageEvent("message", "one\ntwo", ""),
        MessageEvent("custom", "", "7"),
        MessageEvent("message", " spaced", "7"),
        MessageEvent("message", "no data line ends", "7"),
    ]
    assert parsed.retry == 250
    assert ("", " a comment") in parsed.fields


def test_the_parser_joins_a_crlf_split_between_two_pieces() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\ndata: b\n\n") == [
        MessageEvent("message", "a", ""),
        MessageEvent("message", "b", ""),
    ]


def test_the_parser_decodes_utf8_split_between_pieces() -> None:
    parser = EventStreamParser()
    encoded = "data: é\n\n".encode()
    assert parser.feed(encoded[:7]) == []
    assert parser.feed(encoded[7:]) == [MessageEvent("message", "é", "")]


async def test_lines_are_read_across_pieces() -> None:
    async with stream(StreamingResponse([b"a\r", b"\nb\nc", b"\rd"])) as response:
        assert [line async for line in response.aiter_lines()] == ["a", "b", "c", "d"]


def test_two_app_tasks_reading_the_body_at_once_each_get_the_next_piece() -> None:
    """As from a socket: a framework's reader beside a disconnect listener."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        first, second = await asyncio.gather(receive(), receive())
        pieces = sorted([first["body"], second["body"]])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b",".join(pieces)})

    async def body() -> Any:
        yield b"a"
        yield b"b"

    async def main() -> bytes:
        async with stream(app, "POST", "/", body=body()) as response:
            return await response.read()

    assert asyncio.run(main()) == b"a,b"
