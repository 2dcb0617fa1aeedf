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

``/stream?n=N&wait=1``
    The same events from a generator that awaits (``asyncio.sleep(0)``) before
    each one, as a real generator awaits a queue or a socket: every per-event
    cost of the response is paid here, and a fairness yield is pure overhead.
``/stream?n=N&empty=K``
    N chunks from a generator that never awaits, all of them empty (``b""``)
    but one event in every K (``K=0``: no event at all): a generator that
    polls something and yields ``b""`` while it has nothing to say. An empty
    chunk writes nothing, so a response that counts only what it sends never
    finds it owes the event loop a turn, and starves every other connection
    (measurement (c), again). Only the candidates that yield bytes to a
    ``StreamingResponse`` serve this shape; the others ignore ``empty``.
``/subscribe`` and ``/publish?seconds=S&rate=R``
    Fan-out, the shape real SSE servers live in: each ``/subscribe`` is a
    subscriber; ``/publish`` runs one producer for ``S`` seconds that
    broadcasts ``R`` events a second to every subscriber, each event's data
    being the producer's ``time.monotonic()`` (the client, on the same
    machine, subtracts it from its own clock), then answers how many it
    published. Each candidate delivers the way its users would: a queue per
    subscriber (:class:`Hub`), or the library's broadcast helper.

``bare`` is the floor: a hand-written ASGI callable with one ``send()`` per
event and no generator, no task, no check. Each other candidate differs from it
only by the framework's response. The raw candidates (``bare``, the two
asgi-stream ones, ``starlette``, ``sse_starlette``) are plain ASGI callables that
dispatch on the path; the two FastAPI candidates are FastAPI apps with routes,
because that is how FastAPI is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import fastapi
import fastapi.responses
import fastapi.sse
import sse_starlette
import starlette.responses

from asgi_stream import Broadcast, EventSourceResponse, ServerSentEvent, StreamingResponse
from asgi_stream.types import Receive, Scope, Send

#: Seconds between heartbeat comments on an idle stream.
HEARTBEAT = 15.0
PING = b": ping\n\n"
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]


def query(scope: Scope, name: str, default: str) -> str:
    """The value of ``name`` in the query string (``default`` when missing)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name, [default])
    return values[0]


def event_count(scope: Scope) -> int:
    """The ``n`` of ``/stream?n=N`` (1 when missing)."""
    return int(query(scope, "n", "1"))


def awaits(scope: Scope) -> bool:
    """Whether ``/stream`` was asked for a generator that awaits (``wait=1``)."""
    return query(scope, "wait", "0") == "1"


def empty_every(scope: Scope) -> int | None:
    """The ``K`` of ``/stream?empty=K`` (one event in every K chunks), or None."""
    value = query(scope, "empty", "")
    return int(value) if value else None


async def event_bytes(n: int) -> AsyncIterator[bytes]:
    """The events already encoded, as a user with bytes in hand would yield them."""
    for i in range(n):
        yield b"data: %d\n\n" % i


async def event_bytes_awaiting(n: int) -> AsyncIterator[bytes]:
    """:func:`event_bytes` from a generator that awaits before each event."""
    for i in range(n):
        await asyncio.sleep(0)
        yield b"data: %d\n\n" % i


async def mostly_empty(n: int, every: int) -> AsyncIterator[bytes]:
    """N chunks that never await: ``b""``, but for one event in every ``every`` (0: none)."""
    for i in range(n):
        yield b"data: %d\n\n" % i if every and i % every == every - 1 else b""


async def event_texts(n: int) -> AsyncIterator[str]:
    """The events' data as text, for SSE responses that do the encoding."""
    for i in range(n):
        yield str(i)


async def event_texts_awaiting(n: int) -> AsyncIterator[str]:
    """:func:`event_texts` from a generator that awaits before each event."""
    for i in range(n):
        await asyncio.sleep(0)
        yield str(i)


async def event_objects(n: int) -> AsyncIterator[ServerSentEvent]:
    """The events as :class:`ServerSentEvent` objects, made one per event."""
    for i in range(n):
        yield ServerSentEvent(data=str(i))


async def event_objects_awaiting(n: int) -> AsyncIterator[ServerSentEvent]:
    """:func:`event_objects` from a generator that awaits before each event."""
    for i in range(n):
        await asyncio.sleep(0)
        yield ServerSentEvent(data=str(i))


def byte_events(scope: Scope) -> AsyncIterator[bytes]:
    """The ``/stream`` generator of pre-encoded events that ``scope`` asks for."""
    n = event_count(scope)
    every = empty_every(scope)
    if every is not None:
        return mostly_empty(n, every)
    return event_bytes_awaiting(n) if awaits(scope) else event_bytes(n)


def text_events(scope: Scope) -> AsyncIterator[str]:
    """The ``/stream`` generator of event data that ``scope`` asks for."""
    n = event_count(scope)
    return event_texts_awaiting(n) if awaits(scope) else event_texts(n)


def object_events(scope: Scope) -> AsyncIterator[ServerSentEvent]:
    """The ``/stream`` generator of :class:`ServerSentEvent` objects that ``scope`` asks for."""
    n = event_count(scope)
    return event_objects_awaiting(n) if awaits(scope) else event_objects(n)


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


# -- fan-out -------------------------------------------------------------------------------------


class Hub:
    """The subscribers of one server, a queue each: the fan-out that users write by hand.

    ``encode`` turns the published text into what the subscribers' queues
    hold, once per event (a user with a byte stream encodes in the producer;
    an SSE response is given the text and encodes per subscriber).
    """

    def __init__(self, encode: Callable[[str], Any] = str) -> None:
        self.encode = encode
        self.queues: set[asyncio.Queue[Any]] = set()

    def publish(self, text: str) -> None:
        item = self.encode(text)
        for queue in self.queues:
            queue.put_nowait(item)

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[Any]]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield queue
        finally:
            self.queues.discard(queue)

    async def feed(self) -> AsyncIterator[Any]:
        """A subscriber's items, for as long as it is subscribed."""
        with self.subscription() as queue:
            while True:
                yield await queue.get()


def sse_bytes(text: str) -> bytes:
    return ("data: " + text + "\n\n").encode()


async def publish(
    scope: Scope, receive: Receive, send: Send, broadcast: Callable[[str], Any]
) -> None:
    """``/publish?seconds=S&rate=R``: broadcast R timestamps a second for S seconds."""
    seconds, rate = float(query(scope, "seconds", "1")), float(query(scope, "rate", "10"))
    loop = asyncio.get_running_loop()
    start, count = loop.time(), round(seconds * rate)
    for k in range(count):
        # On a schedule, not sleep(1 / rate) after each: a slow broadcast does not slow the rate.
        await asyncio.sleep(max(0.0, start + k / rate - loop.time()))
        published = broadcast(f"{time.monotonic():.6f}")
        if inspect.isawaitable(published):  # a publisher that goes through Redis
            await published
    body = b"%d" % count
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown, so every server treats the app alike."""
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


def raw_app(
    stream: Endpoint,
    idle: Endpoint,
    subscribe: Endpoint | None = None,
    broadcast: Callable[[str], Any] | None = None,
) -> Endpoint:
    """An ASGI app with ``/stream``, ``/idle`` and, given ``subscribe`` and
    ``broadcast`` (the producer's call), ``/subscribe`` and ``/publish``; no framework."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
        elif scope["path"] == "/idle":
            await idle(scope, receive, send)
        elif scope["path"] == "/subscribe" and subscribe is not None:
            await subscribe(scope, receive, send)
        elif scope["path"] == "/publish" and broadcast is not None:
            await publish(scope, receive, send, broadcast)
        else:
            await stream(scope, receive, send)

    return app


# -- bare: the floor -----------------------------------------------------------------------------


async def bare_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    body = "http.response.body"
    if awaits(scope):
        for i in range(event_count(scope)):
            await asyncio.sleep(0)
            await send({"type": body, "body": b"data: %d\n\n" % i, "more_body": True})
    else:
        for i in range(event_count(scope)):
            await send({"type": body, "body": b"data: %d\n\n" % i, "more_body": True})
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


BARE_HUB = Hub(sse_bytes)


async def bare_subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    # The floor: no disconnect watch (the benchmark's subscribers stay to the end).
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    with BARE_HUB.subscription() as queue:
        while True:
            await send({"type": "http.response.body", "body": await queue.get(), "more_body": True})


bare = raw_app(bare_stream, bare_idle, bare_subscribe, BARE_HUB.publish)


# -- asgi-stream ---------------------------------------------------------------------------------


async def asgi_stream_bytes_stream(scope: Scope, receive: Receive, send: Send) -> None:
    response = StreamingResponse(byte_events(scope), media_type="text/event-stream")
    await response(scope, receive, send)


async def asgi_stream_uncoalesced_stream(scope: Scope, receive: Receive, send: Send) -> None:
    response = StreamingResponse(byte_events(scope), media_type="text/event-stream", coalesce=False)
    await response(scope, receive, send)


async def asgi_stream_coalesced_stream(scope: Scope, receive: Receive, send: Send) -> None:
    response = StreamingResponse(byte_events(scope), media_type="text/event-stream", coalesce=True)
    await response(scope, receive, send)


async def asgi_stream_sse_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await EventSourceResponse(text_events(scope))(scope, receive, send)


async def asgi_stream_sse_objects_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await EventSourceResponse(object_events(scope))(scope, receive, send)


async def asgi_stream_idle(scope: Scope, receive: Receive, send: Send) -> None:
    await EventSourceResponse(quiet_source(), ping=HEARTBEAT)(scope, receive, send)


ASGI_STREAM_HUB = Hub()


async def asgi_stream_subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    await EventSourceResponse(ASGI_STREAM_HUB.feed())(scope, receive, send)


asgi_stream_bytes = raw_app(asgi_stream_bytes_stream, asgi_stream_idle)
asgi_stream_sse = raw_app(
    asgi_stream_sse_stream, asgi_stream_idle, asgi_stream_subscribe, ASGI_STREAM_HUB.publish
)
asgi_stream_sse_objects = raw_app(asgi_stream_sse_objects_stream, asgi_stream_idle)

BROADCAST = Broadcast()


async def asgi_stream_broadcast_subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    await EventSourceResponse(BROADCAST.subscribe())(scope, receive, send)


asgi_stream_broadcast = raw_app(
    asgi_stream_sse_stream, asgi_stream_idle, asgi_stream_broadcast_subscribe, BROADCAST.publish
)
asgi_stream_coalesced = raw_app(asgi_stream_coalesced_stream, asgi_stream_idle)
asgi_stream_uncoalesced = raw_app(asgi_stream_uncoalesced_stream, asgi_stream_idle)


# -- Starlette and sse-starlette -----------------------------------------------------------------


async def starlette_stream(scope: Scope, receive: Receive, send: Send) -> None:
    response = starlette.responses.StreamingResponse(
        byte_events(scope), media_type="text/event-stream"
    )
    await response(scope, receive, send)


async def starlette_idle(scope: Scope, receive: Receive, send: Send) -> None:
    response = starlette.responses.StreamingResponse(
        hand_heartbeat(), media_type="text/event-stream"
    )
    await response(scope, receive, send)


async def sse_starlette_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await sse_starlette.EventSourceResponse(text_events(scope))(scope, receive, send)


async def sse_starlette_idle(scope: Scope, receive: Receive, send: Send) -> None:
    response = sse_starlette.EventSourceResponse(quiet_source(), ping=HEARTBEAT)
    await response(scope, receive, send)


STARLETTE_HUB = Hub(sse_bytes)
SSE_STARLETTE_HUB = Hub()


async def starlette_subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    response = starlette.responses.StreamingResponse(
        STARLETTE_HUB.feed(), media_type="text/event-stream"
    )
    await response(scope, receive, send)


async def sse_starlette_subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    response = sse_starlette.EventSourceResponse(SSE_STARLETTE_HUB.feed(), ping=HEARTBEAT)
    await response(scope, receive, send)


starlette_app = raw_app(
    starlette_stream, starlette_idle, starlette_subscribe, STARLETTE_HUB.publish
)
sse_starlette_app = raw_app(
    sse_starlette_stream, sse_starlette_idle, sse_starlette_subscribe, SSE_STARLETTE_HUB.publish
)


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
    "asgi-stream SSE objects": (
        "asgi_stream_sse_objects",
        "asgi_stream.EventSourceResponse, ServerSentEvent items",
    ),
    "asgi-stream one per chunk": (
        "asgi_stream_uncoalesced",
        "asgi_stream.StreamingResponse(coalesce=False), bytes items: one message per chunk",
    ),
    "asgi-stream coalesce": (
        "asgi_stream_coalesced",
        "asgi_stream.StreamingResponse(coalesce=True), bytes items",
    ),
    "asgi-stream broadcast": (
        "asgi_stream_broadcast",
        "asgi_stream.Broadcast, a subscription per EventSourceResponse (fan-out only)",
    ),
    "starlette": ("starlette_app", "starlette.responses.StreamingResponse, bytes items"),
    "fastapi": ("fastapi_streaming", "FastAPI route returning StreamingResponse"),
    "sse-starlette": ("sse_starlette_app", "sse_starlette.EventSourceResponse, str items"),
    "fastapi SSE": ("fastapi_sse", "FastAPI response_class=EventSourceResponse, int items"),
}
