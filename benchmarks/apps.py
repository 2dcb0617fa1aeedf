"""The candidates: the same two endpoints, written the way a user of each would write them.

Every candidate is one ASGI application, served alone by one server process:

``/stream?n=N``
    N small events, ``data: i``, from a generator that never awaits. This is the
    hardest case for a server: nothing in the generator gives the event loop a
    turn, so whatever the response does per event shows up as time, and a
    response that never yields starves every other connection (measurement (c)).
``/idle``
    An SSE stream whose source has nothing to say: a subscriber waiting for
    news that never comes (all of them on one shared ``asyncio.Event``, so the
    source itself costs each stream as little as it can). A heartbeat comment
    goes out every 15 s, so proxies and browsers keep the connection. This is
    measurement (d): what an open but quiet stream costs in memory and CPU.

``bare`` is the floor: a hand-written ASGI callable with one ``send()`` per
event and no generator, no task, no check. Each other candidate differs from it
only by the framework's response. The raw candidates (``bare``, the two
asgi-stream ones, ``starlette``, ``sse_starlette``) are plain ASGI callables that
dispatch on the path; the two FastAPI candidates are FastAPI apps with routes,
because that is how FastAPI is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs

import fastapi
import fastapi.responses
import fastapi.sse
import sse_starlette
import starlette.responses

from asgi_stream import EventSourceResponse, StreamingResponse
from asgi_stream.streams import heartbeat
from asgi_stream.types import Receive, Scope, Send

#: Seconds between heartbeat comments on an idle stream.
HEARTBEAT = 15.0
PING = b": ping\n\n"
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]


def event_count(scope: Scope) -> int:
    """The ``n`` of ``/stream?n=N`` (1 when missing)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("n", ["1"])
    return int(values[0])


async def event_bytes(n: int) -> AsyncIterator[bytes]:
    """The events already encoded, as a user with bytes in hand would yield them."""
    for i in range(n):
        yield b"data: %d\n\n" % i


async def event_texts(n: int) -> AsyncIterator[str]:
    """The events' data as text, for SSE responses that do the encoding."""
    for i in range(n):
        yield str(i)


#: The news every idle stream waits for, and that never comes: one event shared by
#: all subscribers (a broadcast), so the source costs each stream only its waiter.
NEWS = asyncio.Event()


async def quiet_source() -> AsyncIterator[bytes]:
    """A subscriber's feed that never produces: it waits for news that never comes."""
    while True:
        await NEWS.wait()
        yield b"data: news\n\n"


async def hand_heartbeat() -> AsyncIterator[bytes]:
    """The same feed with a heartbeat written by hand, the usual way: wait at most 15 s."""
    while True:
        try:
            await asyncio.wait_for(NEWS.wait(), HEARTBEAT)
        except TimeoutError:
            yield PING
        else:
            yield b"data: news\n\n"


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown, so every server treats the app alike."""
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


def raw_app(stream: Endpoint, idle: Endpoint) -> Endpoint:
    """An ASGI app with ``/stream`` and ``/idle``, and no framework around them."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
        elif scope["path"] == "/idle":
            await idle(scope, receive, send)
        else:
            await stream(scope, receive, send)

    return app


# -- bare: the floor -----------------------------------------------------------------------------


async def bare_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    for i in range(event_count(scope)):
        await send({"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def bare_idle(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    while True:
        try:
            message = await asyncio.wait_for(receive(), HEARTBEAT)
        except TimeoutError:
            await send({"type": "http.response.body", "body": PING, "more_body": True})
        else:
            if message["type"] == "http.disconnect":
                return


bare = raw_app(bare_stream, bare_idle)


# -- asgi-stream ---------------------------------------------------------------------------------


async def asgi_stream_bytes_stream(scope: Scope, receive: Receive, send: Send) -> None:
    response = StreamingResponse(event_bytes(event_count(scope)), media_type="text/event-stream")
    await response(scope, receive, send)


async def asgi_stream_coalesced_stream(scope: Scope, receive: Receive, send: Send) -> None:
    response = StreamingResponse(
        event_bytes(event_count(scope)), media_type="text/event-stream", coalesce=True
    )
    await response(scope, receive, send)


async def asgi_stream_sse_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await EventSourceResponse(event_texts(event_count(scope)))(scope, receive, send)


async def asgi_stream_idle(scope: Scope, receive: Receive, send: Send) -> None:
    await EventSourceResponse(heartbeat(quiet_source(), HEARTBEAT))(scope, receive, send)


asgi_stream_bytes = raw_app(asgi_stream_bytes_stream, asgi_stream_idle)
asgi_stream_sse = raw_app(asgi_stream_sse_stream, asgi_stream_idle)
asgi_stream_coalesced = raw_app(asgi_stream_coalesced_stream, asgi_stream_idle)


# -- Starlette and sse-starlette -----------------------------------------------------------------


async def starlette_stream(scope: Scope, receive: Receive, send: Send) -> None:
    response = starlette.responses.StreamingResponse(
        event_bytes(event_count(scope)), media_type="text/event-stream"
    )
    await response(scope, receive, send)


async def starlette_idle(scope: Scope, receive: Receive, send: Send) -> None:
    response = starlette.responses.StreamingResponse(
        hand_heartbeat(), media_type="text/event-stream"
    )
    await response(scope, receive, send)


async def sse_starlette_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await sse_starlette.EventSourceResponse(event_texts(event_count(scope)))(scope, receive, send)


async def sse_starlette_idle(scope: Scope, receive: Receive, send: Send) -> None:
    response = sse_starlette.EventSourceResponse(quiet_source(), ping=HEARTBEAT)
    await response(scope, receive, send)


starlette_app = raw_app(starlette_stream, starlette_idle)
sse_starlette_app = raw_app(sse_starlette_stream, sse_starlette_idle)


# -- FastAPI -------------------------------------------------------------------------------------

fastapi_streaming = fastapi.FastAPI()


@fastapi_streaming.get("/stream")
async def fastapi_streaming_stream(n: int = 1) -> fastapi.responses.StreamingResponse:
    return fastapi.responses.StreamingResponse(event_bytes(n), media_type="text/event-stream")


@fastapi_streaming.get("/idle")
async def fastapi_streaming_idle() -> fastapi.responses.StreamingResponse:
    return fastapi.responses.StreamingResponse(hand_heartbeat(), media_type="text/event-stream")


fastapi_sse = fastapi.FastAPI()


@fastapi_sse.get("/stream", response_class=fastapi.sse.EventSourceResponse)
async def fastapi_sse_stream(n: int = 1) -> AsyncIterator[int]:
    # FastAPI serialises each item as JSON into one data line: 7 -> "data: 7".
    for i in range(n):
        yield i


@fastapi_sse.get("/idle", response_class=fastapi.sse.EventSourceResponse)
async def fastapi_sse_idle() -> AsyncIterator[bytes]:
    # FastAPI's own keep-alive sends ": ping" after 15 s without an item.
    async for item in quiet_source():
        yield item


#: Candidate name (as in the results) -> (attribute of this module, description).
CANDIDATES: dict[str, tuple[str, str]] = {
    "bare": ("bare", "hand-written ASGI loop, one send() per event"),
    "asgi-stream": ("asgi_stream_bytes", "asgi_stream.StreamingResponse, bytes items"),
    "asgi-stream SSE": ("asgi_stream_sse", "asgi_stream.EventSourceResponse, str items"),
    "asgi-stream coalesce": (
        "asgi_stream_coalesced",
        "asgi_stream.StreamingResponse(coalesce=True), bytes items",
    ),
    "starlette": ("starlette_app", "starlette.responses.StreamingResponse, bytes items"),
    "fastapi": ("fastapi_streaming", "FastAPI route returning StreamingResponse"),
    "sse-starlette": ("sse_starlette_app", "sse_starlette.EventSourceResponse, str items"),
    "fastapi SSE": ("fastapi_sse", "FastAPI response_class=EventSourceResponse, int items"),
}
