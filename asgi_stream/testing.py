"""Testing a stream in-process: the app driven as a server drives it, chunk by chunk.

**Theory of operation.** A test of an endless stream needs what a server
gives a client and most test clients do not: the response as soon as its
headers are sent, then its body one piece at a time, for as long as the test
wants, then a way to leave. (httpx's ``ASGITransport`` runs the app to its end
before it returns, so it waits forever on an endless stream.) :func:`stream`
runs the app in a task of its own, in a fresh ``contextvars`` context as a
server's connection task would be, and stands between it and the test as the
server and the socket would:

=============  ==========================================================
State          What has happened, and what the test sees
=============  ==========================================================
starting       The app runs; ``async with stream(...)`` waits for
               ``http.response.start`` (at most ``read_timeout``).
streaming      The status and headers are known; each read takes the next
               ``http.response.body`` the app sent. The app may be one
               message ahead of the reader, no more: its ``send()`` waits
               until the test reads, as on a socket whose buffer is full.
complete       The last body message (``more_body`` false) was read, or a
               file the app sent with ``http.response.pathsend``; then its
               trailers, if the app announced them.
failed         The app raised, or returned without completing its body.
               An exception before the start leaves ``async with`` as
               itself; one after it is raised from the read that reaches
               it, and :attr:`StreamedResponse.complete` stays false.
closed         The test left: the app's ``receive()`` answers
               ``http.disconnect`` (and its ``send()`` drops what it is
               given, as uvicorn does), and leaving waits for the app to
               return, so a generator's ``finally`` has run when the
               ``async with`` block ends.
=============  ==========================================================

Every wait is bounded: a read waits at most ``read_timeout`` for the next
piece (:class:`ReadTimeout`), and leaving waits at most ``close_timeout`` for
the app to return (:class:`AppStillRunning`, naming the app; it is cancelled
then). A test never hangs.

The scope is a server's (ASGI 3.0, spec version 2.3, HTTP/1.1, a client and
a server address, lowercase header names, ``raw_path`` and ``root_path``), and
it advertises the ``http.response.trailers`` and ``http.response.pathsend``
extensions, which the reader honours. HEAD is asked as HEAD; whatever body an
app sends to it is dropped, as a server drops it. :func:`lifespan` runs an
app's startup and shutdown around the block it opens.

Server-Sent Events are parsed by :class:`EventStreamParser`, written from the
WHATWG HTML standard (§9.2.6) and independent of the library's encoder, so
that a test never reads our output with our own assumptions;
:meth:`StreamedResponse.aiter_events` reads a response with it.

The httpx transport built on this module, for ``httpx.AsyncClient`` and
``httpx.Client`` (and so httpx-sse), is :mod:`asgi_stream.testing_httpx`.

The names: :func:`stream`, :class:`StreamedResponse`, :func:`lifespan`,
:func:`http_scope`, :class:`EventStreamParser`, :class:`MessageEvent`,
:func:`parse_event_stream` (its :class:`ParsedEventStream`), :class:`ReadTimeout`,
:class:`AppStillRunning`, :class:`IncompleteResponse`, :class:`LifespanFailed`.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextvars
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from .headers import Headers
from .types import ASGIApp, Message, Scope

__all__ = [
    "AppStillRunning",
    "EventStreamParser",
    "IncompleteResponse",
    "LifespanFailed",
    "MessageEvent",
    "ParsedEventStream",
    "ReadTimeout",
    "StreamedResponse",
    "http_scope",
    "lifespan",
    "parse_event_stream",
    "stream",
]

#: What the scope says of the server: ASGI 3.0, the HTTP spec version uvicorn states.
ASGI = {"version": "3.0", "spec_version": "2.3"}
#: The extensions a server advertises when it supports them, as it does here.
EXTENSIONS = ("http.response.trailers", "http.response.pathsend")
#: Messages the app may send before its ``send()`` waits for the reader: a socket's small buffer.
BUFFERED = 1
#: How much of a file sent with ``http.response.pathsend`` one read returns.
FILE_CHUNK = 64 * 1024

Body = bytes | Iterable[bytes] | AsyncIterable[bytes]
HeaderPairs = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


class ReadTimeout(TimeoutError):
    """The app sent nothing for ``read_timeout`` seconds while the test waited to read."""


class AppStillRunning(TimeoutError):
    """The app had not returned ``close_timeout`` seconds after its client left."""


class IncompleteResponse(Exception):
    """The app returned without sending the end of its body (``more_body`` false)."""


class LifespanFailed(Exception):
    """The app answered ``lifespan.startup.failed`` (or ``shutdown.failed``); its message."""


def http_scope(
    method: str = "GET",
    path: str = "/",
    query_string: bytes = b"",
    headers: HeaderPairs | None = None,
    *,
    scheme: str = "http",
    root_path: str = "",
    client: tuple[str, int] = ("127.0.0.1", 50000),
    server: tuple[str, int] = ("127.0.0.1", 8000),
    state: Mapping[str, Any] | None = None,
) -> Scope:
    """The scope a server builds for an HTTP/1.1 request (``path`` may carry ``?query``).

    ``headers`` default to ``host: testserver``; names are lowercased and
    everything is encoded to bytes as on the wire (latin-1). ``path`` is the
    percent-decoded form of ``raw_path``. ``state`` is the lifespan's: each
    request gets a shallow copy of it, as uvicorn and hypercorn give.
    """
    raw, _, query = path.partition("?")
    if query:
        if query_string:
            raise ValueError("give the query in path or in query_string, not both")
        query_string = query.encode("latin-1")
    raw_path = raw.encode("utf-8")
    scope: Scope = {
        "type": "http",
        "asgi": dict(ASGI),
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": scheme,
        "path": unquote(raw),
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": encode_headers([("host", "testserver")] if headers is None else headers),
        "client": client,
        "server": server,
        "extensions": {name: {} for name in EXTENSIONS},
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


def encode_headers(headers: HeaderPairs) -> list[tuple[bytes, bytes]]:
    """Request headers as ASGI pairs: lowercase bytes names, bytes values."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(_latin1(name).lower(), _latin1(value)) for name, value in pairs]


def _latin1(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1")


class _Ended:
    """Put in the mailbox when the app's coroutine has ended (its exception is kept apart)."""


class _Mailbox:
    """Messages from the app to the test, with a bound: the app's ``put`` waits when it is full."""

    def __init__(self, bound: int) -> None:
        self._items: collections.deque[Message | _Ended] = collections.deque()
        self._bound = bound
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()
        self.closed = False  # the reader has gone: nothing waits for room any more

    async def put(self, item: Message) -> None:
        self.put_nowait(item)
        while len(self._items) > self._bound and not self.closed:
            self._taken.clear()
            await self._taken.wait()

    def put_nowait(self, item: Message | _Ended) -> None:
        self._items.append(item)
        self._arrived.set()

    async def get(self, timeout: float) -> Message | _Ended:
        async with asyncio.timeout(timeout):
            while not self._items:
                self._arrived.clear()
                await self._arrived.wait()
        self._taken.set()
        return self._items.popleft()

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._taken.set()


class StreamedResponse:
    """One request's response, read as it arrives; :func:`stream` makes it.

    :attr:`status` and :attr:`headers` are known from the start. The body is
    read with :meth:`read_chunk`, :meth:`aiter_bytes`, :meth:`aiter_lines`,
    :meth:`aiter_events` or :meth:`read`, as far as the test likes, and
    :meth:`aclose` (or leaving ``async with``) is the client leaving.
    """

    status: int
    """The status code of ``http.response.start``."""
    headers: Headers
    """The response headers of ``http.response.start``."""
    trailers: Headers
    """The trailers, once the body is complete (empty if the app sent none)."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        body: Body = b"",
        *,
        read_timeout: float = 5.0,
        close_timeout: float = 5.0,
    ) -> None:
        self.app = app
        self.scope = scope
        self.read_timeout = read_timeout
        self.close_timeout = close_timeout
        self.trailers = Headers()
        self.complete = False
        """Whether the whole body (and its trailers) was read: false if the app failed midway."""
        self._body = body
        self._body_iterator: Any = None
        self._request_done = False
        # One caller at a time takes a piece of the body, as from a server's socket.
        self._body_lock = asyncio.Lock()
        self._disconnected = asyncio.Event()
        self._mailbox = _Mailbox(BUFFERED)
        self._task: asyncio.Task[None] | None = None
        self._error: Exception | None = None  # what the app raised
        self._raised = False  # whether the test has been given it
        self._started = False
        self._wants_trailers = False
        self._sent_all = False  # the app has sent its last message
        self._left = False  # the client has gone
        self._pending: list[bytes] = []  # a file's pieces (pathsend), read one at a time

    def __repr__(self) -> str:
        return f"<StreamedResponse {self.scope['method']} {self.scope['path']} from {self.app!r}>"

    # The app's side: what a server does with receive() and send().

    async def _receive(self) -> Message:
        async with self._body_lock:
            if not self._request_done and not self._disconnected.is_set():
                chunk, more = await self._next_body_chunk()
                self._request_done = not more
                return {"type": "http.request", "body": chunk, "more_body": more}
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    async def _next_body_chunk(self) -> tuple[bytes, bool]:
        if isinstance(self._body, bytes):
            return self._body, False
        if self._body_iterator is None:
            if isinstance(self._body, AsyncIterable):
                self._body_iterator = aiter(self._body)
            else:
                self._body_iterator = iter(self._body)
        try:
            if isinstance(self._body, AsyncIterable):
                return bytes(await anext(self._body_iterator)), True
            return bytes(next(self._body_iterator)), True
        except (StopIteration, StopAsyncIteration):
            return b"", False

    async def _send(self, message: Message) -> None:
        if self._left:
            # The client has gone: a server drops what comes after (uvicorn does).
            # It yields too, so that an app sending on regardless cannot starve the
            # loop, and the wait for it to return can end.
            await asyncio.sleep(0)
            return
        kind = message.get("type")
        if self._sent_all:
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the response completed")
        if not self._started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start' first, but got {kind!r}")
            self._started = True
            self._wants_trailers = bool(message.get("trailers", False))
        elif kind not in {"http.response.body", "http.response.pathsend", "http.response.trailers"}:
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the response started")
        self._sent_all = self._ends_response(message)
        if self._sent_all:
            self._disconnected.set()  # as uvicorn: once the response is sent, receive() says so
        await self._mailbox.put(message)

    def _ends_response(self, message: Message) -> bool:
        """Whether ``message`` is the response's last: its body's end, or its last trailers."""
        kind = message["type"]
        if kind == "http.response.trailers":
            return not message.get("more_trailers", False)
        if kind == "http.response.pathsend" or (
            kind == "http.response.body" and not message.get("more_body", False)
        ):
            return not self._wants_trailers
        return False

    async def _run_app(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        except Exception as exc:  # the test is given it (a read, or leaving): the task ends quietly
            self._error = exc
        finally:
            self._mailbox.put_nowait(_Ended())

    # The test's side.

    async def start(self) -> StreamedResponse:
        """Send the request: run the app until it sends ``http.response.start``.

        Raises what the app raised before that, :class:`ReadTimeout` if it sent
        nothing for ``read_timeout``, :class:`IncompleteResponse` if it
        returned without a response; the app has finished then.
        """
        if self._task is not None or self._left:
            raise RuntimeError(f"{self!r} was already sent")
        # An empty context, as a server's connection task has: a contextvar the
        # test set is not the app's, and what the app sets stays the app's.
        self._task = asyncio.get_running_loop().create_task(
            self._run_app(), context=contextvars.Context()
        )
        try:
            start = await self._next_message()
        except BaseException:
            await self.aclose()
            raise
        self.status = int(start["status"])
        self.headers = Headers(start.get("headers", ()))
        return self

    async def _next_message(self) -> Message:
        """The app's next message; its exception, or :class:`IncompleteResponse`, if it ended."""
        try:
            item = await self._mailbox.get(self.read_timeout)
        except TimeoutError:
            state = "the body" if self._started else "http.response.start"
            raise ReadTimeout(
                f"{self.app!r} sent nothing for {self.read_timeout} s while the test waited "
                f"for {state}"
            ) from None
        if isinstance(item, _Ended):
            self._mailbox.put_nowait(item)  # every later read ends the same way
            if self._error is not None:
                self._raised = True
                raise self._error
            if not self._started:
                raise IncompleteResponse(f"{self.app!r} returned without starting a response")
            raise IncompleteResponse(f"{self.app!r} returned without completing its body")
        return item

    async def read_chunk(self) -> bytes:
        """The next piece of body as the app sent it; ``b""`` once the body is complete.

        Raises what the app raised, :class:`IncompleteResponse` if it returned
        midway, :class:`ReadTimeout` if it sent nothing for ``read_timeout``.
        """
        if self._left and not self.complete:
            raise RuntimeError(f"{self!r} is closed: the client has left")
        while not self.complete:
            if self._pending:
                return self._pending.pop(0)
            message = await self._next_message()
            self.complete = self._ends_response(message)
            kind = message["type"]
            if kind == "http.response.pathsend":
                if self.scope["method"] != "HEAD":
                    self._pending = _read_file(message["path"])
            elif kind == "http.response.trailers":
                self.trailers = Headers([*self.trailers.raw, *message.get("headers", ())])
            elif kind == "http.response.body":
                chunk = bytes(message.get("body", b""))
                if chunk and self.scope["method"] != "HEAD":
                    return chunk
        return self._pending.pop(0) if self._pending else b""

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Each piece of the body, as the app sent it, until it is complete."""
        while chunk := await self.read_chunk():
            yield chunk

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body as lines of UTF-8 text, without their ends (``\\n``, ``\\r\\n`` or ``\\r``)."""
        lines = _Lines()
        async for chunk in self.aiter_bytes():
            for line in lines.feed(chunk):
                yield line
        for line in lines.end():
            yield line

    async def aiter_events(self) -> AsyncIterator[MessageEvent]:
        """The body as Server-Sent Events, each as soon as its blank line arrives."""
        parser = EventStreamParser()
        async for chunk in self.aiter_bytes():
            for event in parser.feed(chunk):
                yield event
        for event in parser.close():
            yield event

    async def read(self) -> bytes:
        """The rest of the body, to its end (never returns from an endless stream: it times out)."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        """The client leaves: ``http.disconnect``, then wait (bounded) for the app to return.

        Raises :class:`AppStillRunning` if the app outlives ``close_timeout``
        (it is cancelled then), and an exception the app raised that no read
        has raised yet.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._left = True
        self._disconnected.set()
        self._mailbox.close()  # frees a send() waiting for room
        if not task.done():
            await asyncio.wait({task}, timeout=self.close_timeout)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=self.close_timeout)
            raise AppStillRunning(
                f"{self.app!r} was still running {self.close_timeout} s after its client left "
                f"({self.scope['method']} {self.scope['path']}); it was cancelled"
            )
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    async def __aenter__(self) -> StreamedResponse:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


_LINE_END = re.compile(r"\r\n|\r|\n")


class _Lines:
    """UTF-8 pieces in, whole lines out: a line ends at CRLF, LF or CR, as HTTP and SSE say.

    A CR that ends a piece may be the first half of a CRLF, so its line waits
    for the next piece; a line still open at the end is given by :meth:`end`.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        lines = _LINE_END.split(self._pending + self._decoder.decode(chunk))
        self._pending = lines.pop()
        if self._pending == "" and lines and chunk.endswith(b"\r"):
            self._pending = lines.pop() + "\r"
        return lines

    def flush(self) -> list[str]:
        """The line a CR at the very end ended, when the stream has ended there."""
        if not self._pending.endswith("\r"):
            return []
        line, self._pending = self._pending[:-1], ""
        return [line]

    def end(self) -> list[str]:
        """Every line still held when the stream ends, an unterminated last one included."""
        lines = self.flush()
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [*lines, rest] if rest else lines


def _read_file(path: str) -> list[bytes]:
    """A file sent with ``http.response.pathsend``, in pieces, as a server would send it."""
    with open(path, "rb") as file:
        return list(iter(lambda: file.read(FILE_CHUNK), b""))


def stream(
    app: ASGIApp,
    method: str = "GET",
    path: str = "/",
    *,
    headers: HeaderPairs | None = None,
    body: Body = b"",
    scope: Mapping[str, Any] | None = None,
    read_timeout: float = 5.0,
    close_timeout: float = 5.0,
) -> StreamedResponse:
    """One request to ``app``; ``async with`` it for the response, once its headers are sent::

        async with stream(app, "GET", "/events") as response:
            assert response.status == 200
            async for event in response.aiter_events():
                ...

    ``headers`` are the request's (``host: testserver`` is added if absent,
    and ``content-length`` for a ``bytes`` body). ``body`` is bytes, or an
    iterable or async iterable of bytes, which the app receives piece by
    piece (``more_body``) as it asks. ``scope`` overrides keys of the
    :func:`http_scope` made from the rest (``root_path``, ``state``...).
    Without ``async with``, ``await response.start()`` sends the request, and
    :meth:`StreamedResponse.aclose` leaves.
    """
    pairs = encode_headers(() if headers is None else headers)
    names = {name for name, _ in pairs}
    if b"host" not in names:
        pairs.insert(0, (b"host", b"testserver"))
    if isinstance(body, bytes) and body and b"content-length" not in names:
        pairs.append((b"content-length", str(len(body)).encode()))
    elif not isinstance(body, bytes) and b"transfer-encoding" not in names:
        pairs.append((b"transfer-encoding", b"chunked"))
    built = {**http_scope(method, path, headers=pairs), **(scope or {})}
    return StreamedResponse(
        app, built, body, read_timeout=read_timeout, close_timeout=close_timeout
    )


@asynccontextmanager
async def lifespan(app: ASGIApp, *, timeout: float = 5.0) -> AsyncIterator[dict[str, Any]]:
    """Run the app's lifespan startup, the block, then its shutdown; yields its ``state``.

    Pass the state to :func:`stream` (``scope={"state": dict(state)}``) or to
    the httpx transport (``state=``), as a server copies it into each request.
    An app that fails its startup raises :class:`LifespanFailed`; one that
    raises instead (it has no lifespan), its exception.
    """
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    mailbox = _Mailbox(bound=1)
    errors: list[Exception] = []

    async def run() -> None:
        try:
            await app({"type": "lifespan", "asgi": dict(ASGI), "state": state}, inbox.get, send)
        except Exception as exc:
            errors.append(exc)
        finally:
            mailbox.put_nowait(_Ended())

    async def send(message: Message) -> None:
        mailbox.put_nowait(message)

    async def phase(name: str) -> None:
        inbox.put_nowait({"type": f"lifespan.{name}"})
        try:
            reply = await mailbox.get(timeout)
        except TimeoutError:
            raise AppStillRunning(
                f"{app!r} did not answer lifespan.{name} in {timeout} s"
            ) from None
        if isinstance(reply, _Ended):
            raise errors[0] if errors else LifespanFailed(f"{app!r} returned at lifespan.{name}")
        if reply["type"] == f"lifespan.{name}.failed":
            raise LifespanFailed(reply.get("message", ""))
        if reply["type"] != f"lifespan.{name}.complete":
            raise RuntimeError(f"unexpected ASGI message {reply['type']!r} at lifespan.{name}")

    task = asyncio.get_running_loop().create_task(run(), context=contextvars.Context())
    try:
        await phase("startup")
        yield state
        await phase("shutdown")
        await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=timeout)


# Server-Sent Events, by the WHATWG rules (HTML §9.2.6, "Interpreting an event stream").


@dataclass(frozen=True)
class MessageEvent:
    """One dispatched event, as a browser's ``EventSource`` hands it to a listener."""

    type: str
    """The ``event`` field, ``"message"`` when none was sent."""
    data: str
    """The ``data`` fields, joined with ``\\n``."""
    last_event_id: str
    """The last ``id`` received so far (ids persist from event to event)."""


class EventStreamParser:
    """An incremental event-stream parser: :meth:`feed` it text, get the events it completes.

    It follows the standard to the letter: a line ends at CR, LF or CRLF (a
    CR at the end of a piece may be half of a CRLF, so it waits); a leading
    BOM is dropped; a comment (``:``) dispatches nothing; one space after the
    colon is removed; an event with no ``data`` is not dispatched; an ``id``
    containing NUL is ignored; ``retry`` counts only as ASCII digits. With
    ``keep_fields``, every line's ``(name, value)`` is kept in :attr:`fields`
    (a comment as ``("", text)``), so that a test can check that nothing
    produced a field it did not ask for.
    """

    def __init__(self, *, keep_fields: bool = False) -> None:
        self.retry: int | None = None
        """The last valid ``retry`` received, in milliseconds."""
        self.last_event_id = ""
        """The last ``id`` received (an event carries the one in force when it was dispatched)."""
        self.fields: list[tuple[str, str]] | None = [] if keep_fields else None
        """Every field line so far, with ``keep_fields``; else ``None``."""
        self._data: list[str] = []
        self._type = ""
        self._lines = _Lines()
        self._first = True  # a BOM may open the stream

    def feed(self, chunk: bytes) -> list[MessageEvent]:
        """Parse ``chunk``, the next bytes of the stream (UTF-8); the events it completed."""
        events = []
        for line in self._lines.feed(chunk):
            if self._first:
                self._first = False
                line = line.removeprefix("\ufeff")
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[MessageEvent]:
        """The stream has ended: the events a last CR completes (an unfinished line is dropped)."""
        events = []
        for line in self._lines.flush():
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> MessageEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):  # a comment: kept as written, space and all
            if self.fields is not None:
                self.fields.append(("", line[1:]))
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if self.fields is not None:
            self.fields.append((name, value))
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> MessageEvent | None:
        data, event_type = self._data, self._type
        self._data, self._type = [], ""
        if not data:
            return None
        return MessageEvent(event_type or "message", "\n".join(data), self.last_event_id)


@dataclass
class ParsedEventStream:
    """A whole event stream, parsed: what :func:`parse_event_stream` returns."""

    events: list[MessageEvent] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    retry: int | None = None


def parse_event_stream(text: str | bytes) -> ParsedEventStream:
    """Every event in a whole stream, every field line, and the last ``retry``.

    A last line with no line end is not processed, as the standard says.
    """
    parser = EventStreamParser(keep_fields=True)
    events = parser.feed(text.encode() if isinstance(text, str) else text)
    events += parser.close()
    return ParsedEventStream(events, parser.fields or [], parser.retry)
