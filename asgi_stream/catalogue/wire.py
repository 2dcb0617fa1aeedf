"""The wire view: each request's ASGI messages, sent live to the page that made it.

Theory of operation
===================

:class:`~asgi_stream.tracer.Tracer` writes down every message between a
server and an application. The demo page shows those messages on each card,
beside what the browser received, so they must travel from the server to one
browser tab, and to no other. Three rules shape this module.

**Only the page's own requests, and only its own page.** A page that wants to
watch opens one event stream, ``GET /wire``. Its first event hands the page a
secret: a random token (:func:`secrets.token_urlsafe`), known only to that
stream. The page adds ``?wire=TOKEN.LANE`` to the requests it makes, ``LANE``
being its own name for the request (``EventSource`` cannot set a header, but
any request can carry a query parameter). The server traces a request only if
its token belongs to a stream still open, and sends the records to that stream
alone, each labelled with ``LANE``. A request with no token, or a token nobody
holds (a page that has gone, a guess), is served untraced. Knowing someone
else's token would only let a request show itself on their page; it never
shows anyone else's requests to you.

**Nothing when nobody watches.** While no page watches, a request costs one
truth test of an empty dict: the query string is not even read. An untraced
request reaches the app with the server's own scope, ``receive`` and ``send``,
untouched. A traced one runs inside a ``Tracer`` made for it, whose sink
publishes each record, and its scope loses the ``wire`` parameter first, so
the token appears neither in the trace nor to the app.

**Nothing accumulates.** Each watching page has one queue of at most
:data:`QUEUE_SIZE` records; when a page reads too slowly the newest records
are dropped and counted, and the page is told how many. At most
:data:`MAX_WATCHERS` pages watch at once (the next gets a 503). A request's
trace lives as long as the request, and a page that leaves is forgotten with
its queue: the stream's ``finally`` removes it.

The tracer sees messages. What happens inside the app between them, such as a
generator's ``finally`` or a background task, only the app can tell: the
catalogue's endpoints pass their generators through :func:`watch_generator`
and their background tasks through :func:`background`, which report into the
current request's trace (found in a :class:`~contextvars.ContextVar` that the
wire sets for a traced request) and do nothing at all for an untraced one.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

from ..background import BackgroundTask
from ..concurrency import close_iterator
from ..exceptions import HTTPException
from ..request import Request
from ..routing import Router
from ..sse import EventSourceResponse, ServerSentEvent
from ..tracer import Tracer
from ..types import ASGIApp, Receive, Scope, Send

__all__ = [
    "MAX_WATCHERS",
    "QUEUE_SIZE",
    "Trace",
    "Watcher",
    "Wire",
    "background",
    "watch_generator",
]

#: The query parameter that asks for a trace: ``wire=TOKEN.LANE``.
PARAMETER = b"wire"
#: The most pages that may watch at once.
MAX_WATCHERS = 32
#: The most records waiting for one page.
QUEUE_SIZE = 2000
#: How many bytes of each body a page is shown.
PREVIEW_BYTES = 48

# A page's name for one of its requests: short and plain, since it is echoed back.
_LANE = re.compile(r"[A-Za-z0-9_-]{1,32}")

_current: ContextVar[Trace | None] = ContextVar("asgi_stream_wire_trace", default=None)


class Watcher:
    """One page watching the wire: its secret token and its queue of records."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(16)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0
        self.watching = True

    def publish(self, record: dict[str, Any]) -> None:
        if not self.watching:
            return
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1


class Trace:
    """One traced request: its records go to one watcher, labelled with the page's lane."""

    def __init__(self, watcher: Watcher, lane: str) -> None:
        self.watcher: Watcher | None = watcher
        self.lane = lane
        self.started = time.perf_counter()

    def record(self, record: dict[str, Any]) -> None:
        """A tracer record (the tracer's sink)."""
        if record["event"] == "scope":  # the tracer's clock starts here: so does ours
            self.started = time.perf_counter() - record["time"]
        if self.watcher is not None:
            self.watcher.publish({**record, "lane": self.lane})

    def report(self, what: str, detail: str) -> None:
        """Something the app did between messages, such as ``"generator finally"``."""
        elapsed = round(time.perf_counter() - self.started, 6)
        self.record({"time": elapsed, "event": "app", "type": what, "detail": detail})

    def end(self) -> None:
        # A task started by the request may outlive it and still hold the
        # context: from now on its reports go nowhere.
        self.watcher = None


class Wire:
    """The pages that watch, and the requests traced for them.

    :meth:`serve` stands between the server and the app for every request;
    :meth:`install` adds the ``GET /wire`` stream that a page watches.
    """

    def __init__(self, path: str = "/wire") -> None:
        self.path = path
        self.watchers: dict[str, Watcher] = {}
        self.traces: set[Trace] = set()

    async def serve(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Run ``app`` for one request, traced if its token belongs to a watching page."""
        if not self.watchers:  # nobody watches: nothing to look at, nothing to pay
            await app(scope, receive, send)
            return
        found = self.watched(scope)
        if found is None:
            await app(scope, receive, send)
            return
        watcher, lane, query_string = found
        trace = Trace(watcher, lane)
        self.traces.add(trace)
        context = _current.set(trace)
        try:
            tracer = Tracer(app, text=None, sink=trace.record, preview_bytes=PREVIEW_BYTES)
            await tracer({**scope, "query_string": query_string}, receive, send)
        finally:
            _current.reset(context)
            trace.end()
            self.traces.discard(trace)

    def watched(self, scope: Scope) -> tuple[Watcher, str, bytes] | None:
        """The watcher and lane a request names, and its query string without them."""
        if scope["path"] == self.path:
            return None  # the wire's own stream, traced, would feed on itself
        parts = scope.get("query_string", b"").split(b"&")
        values = [part.partition(b"=")[2] for part in parts if part.partition(b"=")[0] == PARAMETER]
        if len(values) != 1:
            return None
        token, _, lane = values[0].decode("latin-1").partition(".")
        watcher = self.watchers.get(token)
        if watcher is None or not _LANE.fullmatch(lane):
            return None
        rest = b"&".join(part for part in parts if part.partition(b"=")[0] != PARAMETER)
        return watcher, lane, rest

    async def stream(self, request: Request) -> EventSourceResponse:
        """``GET /wire``: a token, then the records of the requests that carry it."""
        if len(self.watchers) >= MAX_WATCHERS:
            raise HTTPException(503, "Too many pages are watching the wire; try again later")
        return EventSourceResponse(self._records(), headers={"Cache-Control": "no-store"})

    async def _records(self) -> AsyncIterator[ServerSentEvent]:
        # The watcher exists only while this generator runs: a HEAD, which
        # never starts it, or a client that left, leaves nothing behind.
        watcher = Watcher()
        self.watchers[watcher.token] = watcher
        try:
            yield ServerSentEvent(watcher.token, event="token")
            while True:
                record = await watcher.queue.get()
                if watcher.dropped:
                    yield ServerSentEvent(str(watcher.dropped), event="dropped")
                    watcher.dropped = 0
                yield ServerSentEvent.from_json(record)
        finally:
            watcher.watching = False
            del self.watchers[watcher.token]

    def install(self, router: Router) -> None:
        router.add(self.path, self.stream)


def watch_generator(content: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``content``, reporting its end to the current request's trace; itself if untraced."""
    trace = _current.get()
    return content if trace is None else _reporting(content, trace)


async def _reporting(content: AsyncIterator[bytes], trace: Trace) -> AsyncIterator[bytes]:
    how = "closed before its end: the response stopped it"
    try:
        async for chunk in content:
            yield chunk
        how = "ran to its end"
    except asyncio.CancelledError:
        how = "cancelled: the response stopped it"
        raise
    except Exception as exc:
        how = f"raised {exc!r}"
        raise
    finally:
        await close_iterator(content)  # the generator's own finally runs now
        trace.report("generator finally", how)


def background(func: Callable[..., Any], *args: Any) -> BackgroundTask:
    """``BackgroundTask(func, *args)``, reporting its start and end when traced."""
    task = BackgroundTask(func, *args)
    trace = _current.get()
    if trace is None:
        return task
    return BackgroundTask(_reported, task, trace)


async def _reported(task: BackgroundTask, trace: Trace) -> None:
    trace.report("background start", getattr(task.func, "__name__", repr(task.func)))
    try:
        await task()
    finally:
        trace.report("background end", "")
