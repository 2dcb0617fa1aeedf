"""Responses that speak ASGI themselves.

Theory of operation
===================

An ASGI server runs an application as ``await app(scope, receive, send)``.
``scope`` describes the request. ``receive()`` hands the application what the
client sends: the body in ``http.request`` messages and, once the client has
gone, ``http.disconnect``. ``send()`` takes what goes back to the client. A
*response* is simply an ASGI application that makes this sequence of sends::

    {"type": "http.response.start", "status": 200, "headers": [...]}
    {"type": "http.response.body", "body": b"...", "more_body": True}   # any number
    {"type": "http.response.body", "body": b"", "more_body": False}     # once, last

The first message is the status line and the headers. Each body message is
written to the socket as it is sent; without a ``Content-Length``, HTTP/1.1
frames each one as a chunk. The final ``more_body: False`` is not decoration:
it becomes the zero-length chunk (on HTTP/2, the END_STREAM flag) that tells
the client the body is *complete*. A response that stops without it makes the
server abort the connection, and the client reports an error instead of
quietly accepting half a body.

A streaming response takes those body messages from an iterator, usually a
generator. Sending them is the easy part: ``async for chunk in body: await
send(...)``. Everything else in this module is about how a stream *ends*,
because a real stream ends badly as often as it ends well:

1. **The client leaves.** Nothing in the send loop notices: current servers
   silently discard sends to a closed connection. The only dependable signal
   is ``http.disconnect`` from ``receive()``, so the body is sent from a task
   of its own while the server's task waits on ``receive()`` (why that way
   round: see *Sending fast*). When the client goes, it cancels the sending
   task. The cancellation lands wherever that task is suspended: in
   the generator's own ``await`` (so the generator's ``finally`` runs there),
   or in our ``send()``. Either way we then ``aclose()`` the generator, so its
   ``finally`` runs *now*, not at some later garbage collection. ASGI 2.4 adds
   a second signal, an ``OSError`` from ``send()``; we honour it the same way.
   A generator that reads the request body while it streams (an upload,
   transformed and sent back) may be first to hear of it, as
   :class:`~asgi_stream.exceptions.ClientDisconnect`: the same ending again.
   (The watcher and that generator must not both call the server's
   ``receive()``, or each would take messages meant for the other; the router
   gives the response :meth:`Request.receive
   <asgi_stream.request.Request.receive>`, which never hands out the body.)
2. **The generator raises** after the headers are out. The status line can no
   longer change, so we do the one honest thing left: stop *without* the final
   message and re-raise. The server logs the error and aborts the connection.
3. **HEAD** wants the headers only. We never start the generator (an endless
   stream would otherwise run forever for nobody) and close it unstarted.
4. **The client stops reading** but stays connected. A server's ``send()``
   waits while the socket's buffers are full (that flow control is what
   keeps memory bounded while a generator outpaces its client), so a frozen
   client would hold its stream, and the generator's resources, for ever.
   With ``send_timeout=N``, a ``send()`` that waits longer than N seconds
   ends the stream as if the client had left: we close the generator, so its
   ``finally`` runs, and stop without the final message, so the server
   aborts the connection. The option costs nothing when unset: the plain
   ``send`` is used, not a wrapper.
5. **Blocking.** A sync generator runs in a worker thread, one ``next()`` at a
   time (see :mod:`asgi_stream.concurrency`). An async generator that never
   awaits, though, would hold the event loop: a server's ``send()`` does not
   yield while the socket accepts data. No other connection would be served,
   and not even our disconnect watcher could run. So every 16 chunks or
   64 KiB, whichever comes first, we look whether the event loop has had a
   turn since we last looked (a callback scheduled then has run, or not:
   :class:`_LoopTurns`). A generator that awaits has given it one, and
   nothing more is done: for it, a yield would be pure overhead. One that
   never awaits has not, and from then on its chunks are *coalesced* (see
   *Sending fast*), which takes turns with the event loop by design; with
   ``coalesce=False``, the loop yields to the event loop once instead. (With
   50 such streams, a new connection's first byte came within about 10 ms at
   p99, against seconds for Starlette's loop, which never yields: measured
   with ``python3 -m benchmarks``.)

In every ending, the background task (:mod:`asgi_stream.background`) runs
last, after the response is over.

Sending fast
============

A server writes each body message with its own system call, and wakes the
client for each: for a small event, that costs more than everything else the
response does. So a generator that makes chunks faster than they can be sent
(a backlog replayed, rows computed in a loop: 5. finds that it made 16
chunks without letting the loop run) has the rest of its chunks coalesced
(:mod:`asgi_stream.coalesce`): it moves into a producer task, and whenever
the response is free to send, it sends everything made meanwhile as one
message. No chunk waits for company: one that could go out now goes out now.
A generator that awaits between chunks never switches, so each of its chunks
is still one message, just as FastAPI sends it (the catalogue's endpoints are
all of this kind). ``coalesce=True`` coalesces from the first chunk;
``coalesce=False`` never does.

The other cost is per event, in the generator's own awaits. Each time a
generator suspends, the suspension travels through every coroutine between
it and its task, and back again when it resumes. In the server's task those
are the server's frames, its middleware's, the app's, the endpoint's and
ours; in a task of its own, one. So the body is sent from a task of its own
(the disconnect watcher needed one anyway; now the server's task watches).

Measured with ``python3 -m benchmarks`` (uvicorn with httptools, one worker;
ratios to a bare ASGI loop that sends one message per event, in the same
run; ``benchmarks/results/results.md``), one stream of 100,000 small events
from a generator that never awaits went 4.3 times as fast as the bare loop
with a batched reader and 5 to 11 times with an eager one (the bare loop's
own eager rate varies that much from run to run here), at a quarter of its
CPU time per event or less; ``coalesce=False`` gives 0.8 to 1.0 times. With
1,000 such streams at once, the server's capacity did not fall. What it
costs: the first 16 chunks of a stream go one per message; a generator that
awaits pays one loop callback per 16 chunks, less than the yield it no longer
pays; a generator that begins to await only after it was switched (a
backlog, then live events) keeps its producer task, a task switch more per
chunk. The task of its own saved 0.24 µs per event in-process for a
generator that awaits between events (2.11 to 1.87 µs, with four frames
above the response, as on a server; a bare loop: 1.64 µs). On the server,
with 200 and 1,000 such streams, the CPU time per event came within 3 to 16 %
of the bare loop's, which has no generator at all, and 5 to 16 % below
Starlette's (two runs).

**One response, one request.** A streaming response is used up by sending
it: its generator can run only once. A second use (a module-level response,
say) raises :class:`RuntimeError` before anything is sent, and its background
task does not run again. A complete-body :class:`Response` may be sent any
number of times, as in Starlette: the same bytes each time (and its background
task each time). Either way, ``response.headers`` can no longer be changed
once the response has started sending.

:class:`Response` is the plain case, a complete body with a
``Content-Length``; :class:`JSONResponse` renders one from data.
:class:`StreamingResponse` is the subject of this module.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterable, Iterable
from typing import Any

from .background import BackgroundTask, BackgroundTasks
from .coalesce import coalesce_ready
from .concurrency import aiterate, close_iterator
from .exceptions import ClientDisconnect
from .headers import HeadersInput, MutableHeaders, encode_header, encode_response_headers
from .serverstop import end_at_server_stop
from .types import Message, Receive, Scope, Send

__all__ = ["END_OF_BODY", "Content", "JSONResponse", "Response", "StreamingResponse"]

#: What a streaming response may iterate over: chunks of str, bytes or memoryview.
Content = AsyncIterable[Any] | Iterable[Any]

#: The last message of every response: "the body is complete".
END_OF_BODY: Message = {"type": "http.response.body", "body": b"", "more_body": False}

# Statuses that never have a body, so never a Content-Length (RFC 9110 §8.6).
_NO_BODY_STATUSES = frozenset({204, 304})

# The fairness budget: each chunk costs its size plus a fixed 4 KiB, and the
# stream yields to the event loop when it has spent 64 KiB. That is "every 16
# chunks or 64 KiB, whichever comes first" in one counter.
_CHUNK_COST = 4 * 1024
_YIELD_BUDGET = 64 * 1024


def _checked_status(status_code: int) -> int:
    """``status_code``, refused where it is given unless it is an int from 100 to 599."""
    if isinstance(status_code, bool) or not isinstance(status_code, int):
        raise TypeError(f"status_code must be an int, not {type(status_code).__name__}")
    if not 100 <= status_code <= 599:
        raise ValueError(f"status_code must be from 100 to 599, not {status_code}")
    return status_code


def _checked_timeout(seconds: float | None) -> float | None:
    """``send_timeout``, refused unless it is ``None`` or a positive, finite number."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"send_timeout must be a number of seconds, not {type(seconds).__name__}")
    if not 0 < seconds < float("inf"):  # NaN too
        raise ValueError(f"send_timeout must be positive and finite, not {seconds}")
    return seconds


class Response:
    """A complete response: status, headers and a body known in advance.

    ``content`` may be ``bytes``, ``bytearray``, ``memoryview``, ``str``
    (encoded in :attr:`charset`) or ``None``; anything else is a
    :class:`TypeError` (``bytes(5)`` would be five NUL bytes). The
    ``Content-Length`` is set for you. ``media_type`` becomes the
    ``Content-Type``; ``text/*`` types get ``; charset=utf-8`` unless they name
    a charset. Header names and values, the ``Content-Type`` included, are
    validated as the response is built (see :mod:`asgi_stream.headers`), so a
    bad header fails in your code, not on the wire. :attr:`headers` changes
    them afterwards, validated in the same way.
    """

    media_type: str | None = None
    charset = "utf-8"
    #: Headers this class always sends, unless the caller gives one of the same name.
    default_headers: tuple[tuple[bytes, bytes], ...] = ()
    #: Whether one object may answer several requests (see the module's docstring).
    reusable = True
    _sent = False

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: HeadersInput | None = None,
        media_type: str | None = None,
        background: BackgroundTask | BackgroundTasks | None = None,
    ) -> None:
        self.status_code = _checked_status(status_code)
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        self.body = self.render(content)
        self.raw_headers = self.init_headers(headers, content_length=len(self.body))

    def render(self, content: Any) -> bytes:
        """Turn ``content`` into the body's bytes."""
        if content is None:
            return b""
        if isinstance(content, str):
            return content.encode(self.charset)
        if isinstance(content, bytes | bytearray | memoryview):
            return bytes(content)
        raise TypeError(
            f"a response body must be bytes, bytearray, memoryview, str or None, "
            f"not {type(content).__name__}"
        )

    def init_headers(
        self, headers: HeadersInput | None, content_length: int | None
    ) -> list[tuple[bytes, bytes]]:
        """The ASGI header list: the caller's headers, then what we add."""
        raw = encode_response_headers(headers)
        given = {name for name, _ in raw}
        raw.extend(pair for pair in self.default_headers if pair[0] not in given)
        if (
            content_length is not None
            and b"content-length" not in given
            and self.status_code >= 200
            and self.status_code not in _NO_BODY_STATUSES
        ):
            raw.append((b"content-length", str(content_length).encode("ascii")))
        if self.media_type is not None and b"content-type" not in given:
            raw.append(encode_header("content-type", self.content_type()))
        return raw

    def content_type(self) -> str:
        """The ``Content-Type`` value: the media type, with a charset for text."""
        media_type = self.media_type or ""
        if media_type.startswith("text/") and "charset=" not in media_type.lower():
            try:
                codecs.lookup(self.charset)  # or every str chunk would fail, after the headers
            except (LookupError, TypeError, ValueError):
                raise ValueError(f"unknown charset {self.charset!r}") from None
            return f"{media_type}; charset={self.charset}"
        return media_type

    @property
    def headers(self) -> MutableHeaders:
        """The headers to send, as a case-insensitive mutable mapping over :attr:`raw_headers`.

        ``response.headers["x-request-id"] = "42"`` works as in Starlette;
        see :class:`~asgi_stream.headers.MutableHeaders`. A change once the
        response has started sending raises :class:`RuntimeError`.
        """
        return MutableHeaders(self.raw_headers, self._check_not_sent)

    def _check_not_sent(self) -> None:
        if self._sent:
            raise RuntimeError("the headers of a response cannot change once it has been sent")

    def _mark_sent(self) -> None:
        """Record that the response is being sent; refuse a second use unless :attr:`reusable`."""
        if self._sent and not self.reusable:
            raise RuntimeError(
                f"this {type(self).__name__} has already been sent: its body can be sent "
                "only once, so create one response per request"
            )
        self._sent = True

    def start_message(self) -> Message:
        """The ``http.response.start`` message: status and headers."""
        return {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._mark_sent()
        body = b"" if scope.get("method") == "HEAD" else self.body
        try:
            await send(self.start_message())
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except OSError:
            pass  # ASGI 2.4: the client is gone. There is nothing left to tell it.
        finally:
            if self.background is not None:
                await self.background()


class JSONResponse(Response):
    """A complete JSON body, rendered compactly as UTF-8 (like Starlette's)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


class StreamingResponse(Response):
    """A response whose body is produced while it is sent.

    ``content`` is an async iterable (an async generator, most often) or a sync
    iterable, which is iterated in a worker thread. Each chunk may be ``bytes``,
    ``memoryview`` or ``str`` (encoded in :attr:`charset`); empty chunks are
    skipped. There is no ``Content-Length`` unless you set one.

    The signature is Starlette's, so code written for FastAPI moves here by
    changing one import. Unlike Starlette's, the object can be sent only once
    (a second use is a :class:`RuntimeError`: its generator is spent). What
    happens at each possible ending of the stream is described at the top of
    this module. ``send_timeout`` (seconds, positive; default none) ends the stream
    when the client stops reading for that long.
    ``coalesce`` chooses how chunks become messages (see *Sending fast* at
    the top of this module). The default, ``None``, adapts: one message per chunk
    while the generator awaits between chunks, and, once it has made 16 chunks
    without letting the event loop run, the chunks it makes while a message is
    being sent are joined into the next (:mod:`asgi_stream.coalesce`).
    ``True`` joins from the first chunk; ``False`` never joins. In every mode
    a chunk is sent as soon as it can be, never held back waiting for others.
    """

    reusable = False

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: HeadersInput | None = None,
        media_type: str | None = None,
        background: BackgroundTask | BackgroundTasks | None = None,
        *,
        send_timeout: float | None = None,
        coalesce: bool | None = None,
    ) -> None:
        self.status_code = _checked_status(status_code)
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        self.content = content
        self.send_timeout = _checked_timeout(send_timeout)
        self.coalesce = coalesce
        self.raw_headers = self.init_headers(headers, content_length=None)

    def encode_chunk(self, chunk: Any) -> bytes:
        """Bytes for a chunk that is not already ``bytes``.

        Subclasses change what a chunk may be by overriding this method (the
        SSE response turns events into bytes here). ``bytes`` never come here:
        they go to the wire untouched.
        """
        if isinstance(chunk, str):
            return chunk.encode(self.charset)
        if isinstance(chunk, memoryview | bytearray):
            return bytes(chunk)
        raise TypeError(f"a stream chunk must be str, bytes or memoryview, not {type(chunk)!r}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._mark_sent()
        try:
            if scope.get("method") == "HEAD":
                await close_iterator(self.content)
                try:
                    await send(self.start_message())
                    await send(END_OF_BODY)
                except OSError:
                    pass  # the client is gone (ASGI 2.4)
            else:
                # The server's stop signal ends the stream cleanly (asgi_stream.serverstop).
                async with end_at_server_stop(scope, receive, send) as (receive, send):
                    await self.stream(receive, send)
        finally:
            if self.background is not None:
                await self.background()

    async def stream(self, receive: Receive, send: Send) -> None:
        """Send the headers, then the body as it is made, then the end.

        Returns normally when the body is complete or the client has gone;
        raises whatever the generator raised.

        The body is sent from a task of its own (:meth:`send_body`), while
        this task, the server's, watches for the disconnect (why: see
        *Sending fast* at the top of this module).
        """
        watch = _DisconnectWatch()
        sending = asyncio.get_running_loop().create_task(self.send_body(send, watch))
        try:
            await watch.run(receive, sending)
            await asyncio.wait((sending,))
        finally:
            if not sending.done():
                # The server cancels us (a shutdown): the sending too, and the
                # generator's finally runs before the response ends.
                sending.cancel()
                await asyncio.wait((sending,))
        if sending.cancelled():
            # Cancelled before it began: the client had gone already.
            await close_iterator(self.content)
            if not watch.client_gone:
                raise asyncio.CancelledError
        else:
            sending.result()  # what the generator raised, if anything

    async def send_body(self, send: Send, watch: _DisconnectWatch) -> None:
        """The sending task: the headers, one message per chunk (or per
        chunks joined), the end; stops at once when ``watch`` says the client
        has gone."""
        task = asyncio.current_task()
        assert task is not None, "a response runs inside an asyncio task"
        if self.send_timeout is not None:
            send = _with_timeout(send, self.send_timeout)
        body = aiterate(self.content)
        # Coalescing: from the start (True), never (False), or once the
        # generator shows that it never awaits (None).
        can_switch = self.coalesce is None
        if self.coalesce:
            body = coalesce_ready(body, self.encode_chunk)
        turns = _LoopTurns()
        try:
            try:
                await send(self.start_message())
            except OSError:
                return  # ASGI 2.4: send() on a closed connection raises OSError
            budget = _YIELD_BUDGET
            turns.arm()
            while True:
                async for chunk in body:
                    if watch.client_gone:
                        return  # a generator swallowed our cancellation: stop anyway
                    if type(chunk) is not bytes:
                        chunk = self.encode_chunk(chunk)
                        if not chunk:
                            continue
                    elif not chunk:
                        continue
                    try:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    except OSError:
                        # The client is gone (ASGI 2.4), or frozen: the TimeoutError
                        # of send_timeout is an OSError. One from the generator is not.
                        return
                    budget -= len(chunk) + _CHUNK_COST
                    if budget > 0:
                        continue
                    budget = _YIELD_BUDGET
                    if not turns.taken:
                        # Nothing else has run since the last check: the
                        # generator never awaits. Join its chunks from now on
                        # (the coalescer takes turns with the event loop), or,
                        # where that is not wanted, give the loop a turn here.
                        if can_switch:
                            can_switch = False
                            body = coalesce_ready(body, self.encode_chunk)
                            turns.arm()
                            break
                        await asyncio.sleep(0)
                    turns.arm()
                else:
                    break  # the generator is exhausted
            # The body is complete. Stop watching first: after the last message
            # the server reports a disconnect, and that must not cancel us.
            watch.stop()
            try:
                await send(END_OF_BODY)
            except OSError:
                pass
        except asyncio.CancelledError:
            # Ours (the client left) or the server's (shutdown)? Only re-raise
            # a cancellation that someone else asked for.
            if not watch.client_gone or task.uncancel() > 0:
                raise
        except ClientDisconnect:
            pass  # the generator read the request body and found the client gone
        finally:
            watch.stop()
            await close_iterator(body)


class _LoopTurns:
    """Tells whether the event loop has run anything else since :meth:`arm`.

    :meth:`arm` schedules a callback to run on the loop's next turn. If it has
    not run when we look at :attr:`taken`, our task has not let go of the loop
    since: neither the generator nor ``send()`` waited for anything. One
    callback per 16 chunks; nothing per chunk.
    """

    __slots__ = ("_loop", "taken")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.taken = True

    def arm(self) -> None:
        self.taken = False
        self._loop.call_soon(self._take)

    def _take(self) -> None:
        self.taken = True


class _DisconnectWatch:
    """Waits for ``http.disconnect`` in the server's task while another task sends.

    :meth:`run` ends in one of two ways. The client leaves: we set
    :attr:`client_gone` and cancel the sending task. Or the sending task
    calls :meth:`stop` (the body is complete, and after its last message the
    server reports a disconnect that must not cancel anything), or ends: we
    cancel our own wait on ``receive()``, and take that cancellation back.
    """

    __slots__ = ("_task", "client_gone", "watching")

    def __init__(self) -> None:
        self.client_gone = False
        self.watching = False
        self._task: asyncio.Task[Any] | None = None

    async def run(self, receive: Receive, sending: asyncio.Task[Any]) -> None:
        task = self._task = asyncio.current_task()
        assert task is not None, "a response runs inside an asyncio task"
        self.watching = True
        sending.add_done_callback(self.stop)
        try:
            # Body messages are not ours to use (the router's receive keeps them
            # for the request); skip any we are given until the disconnect.
            while (await receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            # stop() cancelled the wait and cleared `watching`; any other
            # cancellation (a shutdown) reaches the sending task too.
            if self.watching or task.uncancel() > 0:
                self.watching = False
                sending.cancel()
                raise
            return
        self.watching = False
        self.client_gone = True
        sending.cancel()

    def stop(self, _: object = None) -> None:
        """End :meth:`run`'s wait, if it is still waiting."""
        if self.watching and self._task is not None:
            self.watching = False
            self._task.cancel()


def _with_timeout(send: Send, seconds: float) -> Send:
    """``send``, raising :class:`TimeoutError` when it waits longer than ``seconds``."""

    async def send_or_time_out(message: Message) -> None:
        async with asyncio.timeout(seconds):
            await send(message)

    return send_or_time_out
