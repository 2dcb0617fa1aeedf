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
the client the body is *complete*. A response that stops without it leaves the
body unfinished: the server closes the connection without the zero-length
chunk (uvicorn and hypercorn send what they hold, then a FIN), and the client
reports an incomplete body instead of quietly accepting half a body as
whole.

A streaming response takes those body messages from an iterator, usually a
generator. Sending them is the easy part::

    async for chunk in generator:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

Everything else in this module is one rule, and the ways a stream *ends*.

The rule: one task steps the generator
--------------------------------------

**A generator is stepped by one task, in one context, from its first step to
its last.** Users write code inside their generators that depends on it: an
``async with asyncio.timeout(5):`` around several ``yield``\\ s cancels the
task that entered it; a contextvar token set before a ``yield`` can only be
reset in the same context; an anyio cancel scope must be exited by the task
that entered it. Move the generator to another task half-way, and each of
these breaks, or, worse, cancels the wrong task.

So a streaming response starts a task of its own, the *body task*, which
sends the headers, steps the generator and sends what it makes. (It copies the
request's context when it starts, so what middleware set in contextvars is
visible inside the generator.) Whatever else must happen while the stream is
open moves *around* the generator, never the other way:

* the watch for the client leaving runs in the server's task (below);
* a *writer* task joins chunks into fewer messages when the generator makes
  them faster than they can be sent, and the heartbeat (``ping=``) is a timer
  (both in :mod:`asgi_stream.coalesce`);
* a sync generator's ``next()`` runs on a thread of its own, always the same
  one, in one context (:mod:`asgi_stream.concurrency`).

One more consequence: a cancellation can arrive while the generator sits at
its ``yield`` and the body task is sending that chunk (or giving the event
loop a turn). If the response did not ask for it, it was meant for the
generator (a timeout spanning the ``yield`` has fired), so it is thrown into
the generator at that ``yield``, where its ``async with asyncio.timeout()``
turns it into the ``TimeoutError`` its author catches. (Only a ``send()`` that
was waiting for a slow client can be interrupted that way; that one chunk may
or may not have reached the client.)

Why the body task, and not the server's own task: the server's task must wait
for ``http.disconnect``, and a generator stepped in a task of its own is
cheaper, since each of its suspensions travels through one frame, not the
server's, the middleware's, the router's and ours.

How a stream ends
-----------------

1. **It is complete.** The body task sends the final message. First it tells
   the watch to stop: after the last message a server reports a disconnect,
   and that is not the client leaving.
2. **The client leaves.** Nothing in the send loop notices: current servers
   silently discard sends to a closed connection. The only dependable signal
   is ``http.disconnect`` from ``receive()``, which the server's task waits
   for. When it comes, it cancels the body task. The cancellation lands where
   that task is suspended: in the generator's own ``await`` (its ``finally``
   runs there) or in our ``send()``. Either way we then close the generator,
   so its ``finally`` runs *now*, not at some later garbage collection. ASGI
   2.4 adds a second signal, an ``OSError`` from ``send()``, which we honour
   the same way. A generator that reads the request body while it streams may
   be first to hear of it, as
   :class:`~asgi_stream.exceptions.ClientDisconnect`: the same ending again.
   (The watch and that generator must not both call the server's
   ``receive()``, or each would take messages meant for the other; the router
   gives the response :meth:`Request.receive
   <asgi_stream.request.Request.receive>`, which never hands out the body,
   and :class:`~asgi_stream.request.KeepRequestBody` does the same for any
   other app, a FastAPI or Starlette one among them.)
3. **The generator raises** after the headers are out. The status line can no
   longer change, so we do the one honest thing left: stop *without* the final
   message and re-raise. The server logs the error and closes the connection
   with the body unfinished, which the client reports as an error. (Before the
   headers, the error is answered as itself: see below.)
4. **HEAD** wants the headers only. We never start the generator (an endless
   stream would otherwise run for nobody) and close it unstarted.
5. **The client stops reading** but stays connected. A server's ``send()``
   waits while the socket's buffers are full (that flow control is what keeps
   memory bounded while a generator outpaces its client), so a frozen client
   would hold its stream, and the generator's resources, for ever. With
   ``send_timeout=N``, a body ``send()`` that waits longer than N seconds ends
   the stream as if the client had left: the generator is closed at once and
   the final message is never sent. (The headers are not timed: they are the
   first bytes on a fresh connection, and never wait.) The generator and the
   body task are freed at once; the socket is the server's, and uvicorn and
   hypercorn keep it, with what it holds unsent, until the client leaves
   (measured on the reliability page).
6. **The server shuts down** and cancels the server's task: the body task is
   stopped, the generator closed, and the cancellation goes on up.

In every ending the content is closed (the object you gave, not only a
wrapper around it: a file given to a response that never started is closed
too), and the background task (:mod:`asgi_stream.background`) runs last.

Before the first chunk
----------------------

A generator often checks something before it yields anything: that the user
may see this feed, that the job exists. When such a check fails it raises,
``HTTPException(403)`` say, and the client deserves a 403, not a ``200``
followed by a cut. So the headers are held back until the first chunk, and
only then sent, with it:

======================================  =========================================
what happens first                      what the client gets
======================================  =========================================
the generator yields its first chunk    the headers, then that chunk
the generator ends without a chunk      the headers and an empty, complete body
it raises an HTTP error (ours, or any   that error's status, headers and JSON
exception with an int ``status_code``   ``{"detail": ...}``; nothing is raised
and a ``detail``: Starlette's and       further, since it is an answer
FastAPI's ``HTTPException``)
it raises anything else                 a JSON 500; the exception is logged
                                        (the ``asgi_stream`` logger), as the
                                        router logs an endpoint's
``first_chunk_wait`` passes first       the headers, sent from a timer's task so
(0.2 s by default)                      that the client hears of the stream
                                        early (a slow first token); from then
                                        on, an error is an ending as in 3 above
======================================  =========================================

The wait never delays a chunk: the first one goes out as soon as it is made.
A heartbeat (``ping=``) starts when the headers go out, whichever way. The
generator is still stepped by the body task alone; only the sending of the
headers may move to the timer's task.

Blocking and fairness
---------------------

A sync generator runs on a thread, so its ``time.sleep()`` blocks nobody. An
async generator that never awaits would hold the event loop, though: a
server's ``send()`` does not yield while the socket accepts data. So the
body task's sender counts every chunk and makes sure the event loop gets a
turn at least every 16 chunks or 64 KiB; a generator that awaits by itself is
left alone. By default, a generator found never awaiting has its chunks joined
into fewer messages from then on, which is much faster as well as fair;
``coalesce=True`` joins from the first chunk and ``coalesce=False`` never
does. :mod:`asgi_stream.coalesce` tells how, and the benchmarks page what each
costs.

One response, one request
-------------------------

A streaming response is used up by sending it: its generator can run only
once. A second use (a module-level response, say) raises
:class:`RuntimeError` before anything is sent, and its background task does
not run again. A complete-body :class:`Response` may be sent any number of
times, as in Starlette: the same bytes each time (and its background task
each time). Either way, ``response.headers`` can no longer be changed once
the response has started sending.

:class:`Response` is the plain case, a complete body with a
``Content-Length``; :class:`JSONResponse` renders one from data.
:class:`StreamingResponse` is the subject of this module.
"""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import functools
import json
import logging
import math
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any, Protocol

from .background import BackgroundTask, BackgroundTasks
from .coalesce import HEARTBEAT, BodySender
from .concurrency import aiterate, close_iterator
from .exceptions import ClientDisconnect
from .headers import HeadersInput, MutableHeaders, encode_header, encode_response_headers
from .request import disconnect_only
from .serverstop import end_at_server_stop
from .types import Message, Receive, Scope, Send

__all__ = ["Content", "JSONResponse", "Response", "StreamingResponse"]

logger = logging.getLogger("asgi_stream")

#: What a streaming response may iterate over: chunks of str, bytes or memoryview.
Content = AsyncIterable[Any] | Iterable[Any]

#: How long a streaming response holds its headers back, by default, waiting
#: for the first chunk (see "Before the first chunk" above).
FIRST_CHUNK_WAIT = 0.2

# Statuses that never have a body, so never a Content-Length (RFC 9110 §8.6).
_NO_BODY_STATUSES = frozenset({204, 304})


def _checked_status(status_code: int) -> int:
    """``status_code``, refused where it is given unless it is an int from 100 to 599."""
    if isinstance(status_code, bool) or not isinstance(status_code, int):
        raise TypeError(f"status_code must be an int, not {type(status_code).__name__}")
    if not 100 <= status_code <= 599:
        raise ValueError(f"status_code must be from 100 to 599, not {status_code}")
    return status_code


def _checked_seconds(name: str, seconds: float | None) -> float | None:
    """``seconds``, refused unless it is ``None`` or a positive, finite number."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(seconds).__name__}")
    if not 0 < seconds < math.inf:  # NaN too
        raise ValueError(f"{name} must be positive and finite, not {seconds}")
    return seconds


async def _send(send: Send, message: Message) -> None:
    """``send(message)``; an :class:`OSError` (ASGI 2.4: the client is gone) is a
    :class:`ClientDisconnect`, which :meth:`Response.__call__` ends on."""
    try:
        await send(message)
    except OSError as exc:
        raise ClientDisconnect from exc


def end_message(body: bytes = b"") -> Message:
    """The last message of a response: "the body is complete".

    A new dict each time, as is every message we send: middleware may change
    a message it is handed (Starlette's ``GZipMiddleware`` rewrites its
    ``body`` in place), so one shared between sends would carry one stream's
    bytes into the next.
    """
    return {"type": "http.response.body", "body": body, "more_body": False}


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
        self.raw_headers = self.init_headers(headers, content_length=self.set_content(content))

    def set_content(self, content: Any) -> int | None:
        """Keep ``content``; return the ``Content-Length`` it makes, if known."""
        self.body = self.render(content)
        return len(self.body)

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
            raw.append(_content_type_header(self.content_type()))
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
            # A copy: middleware that adds a header to the message must not
            # add it to this response (which may be sent again) as well.
            "headers": list(self.raw_headers),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the response; every ending, for every kind of response, comes through here."""
        self._mark_sent()
        try:
            await self.send_response(scope, receive, send)
        except ClientDisconnect:
            pass  # the client is gone: there is nobody left to tell anything
        finally:
            if self.background is not None:
                await self.background()

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The messages of this response: the headers, then the whole body at once."""
        body = b"" if scope.get("method") == "HEAD" else self.body
        await _send(send, self.start_message())
        await _send(send, end_message(body))


class JSONResponse(Response):
    """A complete JSON body, rendered compactly as UTF-8 (like Starlette's)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


def json_error(status_code: int, detail: Any, headers: HeadersInput | None = None) -> Response:
    """The JSON error ``{"detail": detail}``, or a logged 500 when that cannot be
    sent (a detail that is not JSON, a status out of range): the client gets
    JSON either way, never the server's plain-text 500."""
    try:
        return JSONResponse({"detail": detail}, status_code, headers)
    except (TypeError, ValueError):
        logger.exception("an HTTP error (status %r) could not be sent as JSON", status_code)
        return JSONResponse({"detail": "Internal Server Error"}, 500)


def error_response(exc: BaseException) -> Response | None:
    """The answer an exception asks for, if it is an HTTP error: ours
    (:class:`~asgi_stream.exceptions.HTTPException`) or any other with an int
    ``status_code`` and a ``detail`` (Starlette's and FastAPI's), as JSON with
    its ``headers``. ``None`` for any other exception."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool) and hasattr(exc, "detail"):
        return json_error(status, exc.detail, getattr(exc, "headers", None))
    return None


async def service_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    """The JSON 503 for a request that came, or whose stream had not begun, as
    the server stops."""
    await JSONResponse({"detail": "Service Unavailable"}, 503)(scope, receive, send)


class ContentEncoder(Protocol):
    """A transformation of a stream's bytes on their way to the wire, heartbeats
    included (:func:`~asgi_stream.compression.gzip_response` sets one)."""

    def encode(self, data: bytes) -> bytes:
        """The bytes to send for ``data``."""

    def finish(self) -> bytes:
        """The bytes that end the body (a trailer), sent with the final message."""


class StreamingResponse(Response):
    """A response whose body is produced while it is sent.

    ``content`` is an async iterable (an async generator, most often) or a sync
    iterable, which is iterated on a thread of its own. Each chunk may be
    ``bytes``, ``memoryview`` or ``str`` (encoded in :attr:`charset`). There is
    no ``Content-Length`` unless you set one.

    The signature is Starlette's, so code written for FastAPI moves here by
    changing one import. Unlike Starlette's, the object can be sent only once
    (a second use is a :class:`RuntimeError`: its generator is spent). What
    happens at each possible ending of the stream is described at the top of
    this module. The keyword-only options:

    * ``send_timeout`` (seconds; default none) ends the stream when one body
      ``send()`` waits that long for a client that stopped reading.
    * ``coalesce`` chooses how chunks become messages. The default, ``None``,
      adapts: one message per chunk while the generator awaits between chunks;
      once it makes chunks without letting the event loop run, the chunks made
      while a message is being sent are joined into the next. ``True`` joins
      from the first chunk; ``False`` never joins. In every mode a chunk is
      sent as soon as it can be, never held back waiting for others
      (:mod:`asgi_stream.coalesce`).
    * ``ping`` (seconds; default none) sends ``ping_message`` whenever the
      stream has been silent that long, so that proxies keep an idle
      connection open. ``ping_message`` is a chunk (``bytes`` or ``str``; the
      default is the SSE comment ``: heartbeat``) or a function called for each
      heartbeat that returns one. The generator is not involved: a timer sends
      it, beside the generator.
    * ``first_chunk_wait`` (seconds; default 0.2) is how
      long the headers wait for the first chunk, so that an error before it
      can still be answered with its own status (see "Before the first chunk"
      at the top of this module). ``0`` sends them at once.
    """

    reusable = False
    #: Applied to every chunk's bytes, heartbeats included; see :class:`ContentEncoder`.
    content_encoder: ContentEncoder | None = None

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
        ping: float | None = None,
        ping_message: Any = HEARTBEAT,
        first_chunk_wait: float = FIRST_CHUNK_WAIT,
    ) -> None:
        if coalesce not in (None, True, False):
            raise TypeError(f"coalesce must be None, True or False, not {coalesce!r}")
        self.send_timeout = _checked_seconds("send_timeout", send_timeout)
        if first_chunk_wait != 0 or type(first_chunk_wait) not in (int, float):
            _checked_seconds("first_chunk_wait", first_chunk_wait)  # 0 is allowed, None is not
            if first_chunk_wait is None:
                raise TypeError("first_chunk_wait must be a number of seconds (0: none), not None")
        self.first_chunk_wait = first_chunk_wait
        self.coalesce = coalesce
        self.ping = _checked_seconds("ping", ping)
        self.ping_message = ping_message
        super().__init__(content, status_code, headers, media_type, background)

    def set_content(self, content: Content) -> None:
        self.content = content
        return None  # the length of a stream is not known in advance

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

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HEAD: the headers alone, the generator closed unstarted. Otherwise the
        stream, ended cleanly if the server is told to stop meanwhile."""
        if scope.get("method") == "HEAD":
            await close_iterator(self.content)
            await _send(send, self.start_message())
            await _send(send, end_message())
            return
        # The server's stop signal ends the stream cleanly (asgi_stream.serverstop).
        # Its send notes the headers and the end; the chunks in between, where
        # it has nothing to note, go straight to the server's send. The receive
        # is only ever the disconnect watch's, so it is the one that leaves the
        # request body to whoever reads it.
        async with end_at_server_stop(
            scope, disconnect_only(receive), send, service_unavailable
        ) as (receive, noted_send):
            # The body goes from the body task while this task, the server's,
            # watches for the client leaving (in this coroutine, not one of its
            # own: each subscriber of a fan-out keeps this frame for its life).
            ending = _Ending()
            body_task = ending.task = asyncio.get_running_loop().create_task(
                self.send_body(noted_send, send, ending)
            )
            try:
                await ending.watch(receive)
                await asyncio.wait((body_task,))  # it ends by itself, or the watch stopped it
            finally:
                if not body_task.done():
                    # The client left, the server is cancelling us (a shutdown), or
                    # receive() failed: in each case the body task stops, and the
                    # generator's finally runs, before we go on.
                    ending.stop()
                    await asyncio.wait((body_task,))
                if not ending.started:
                    await close_iterator(self.content)  # stopped before its first step
            if ending.started:
                body_task.result()  # what the generator raised, if anything

    async def send_body(self, send: Send, chunk_send: Send, ending: _Ending) -> None:
        """The body task: the headers, each chunk, the end. The only task that
        ever steps the generator."""
        ending.started = True
        body = aiterate(self.content)
        timeout = self.send_timeout
        sender = BodySender(
            chunk_send if timeout is None else _timed(chunk_send, timeout),
            self.coalesce,
            ending.stop,
            self.ping,
            None if self.ping is None else self._make_ping,
        )
        headers = _Headers(send, self.start_message(), sender)
        try:
            await headers.hold(self.first_chunk_wait)
            as_is = self.content_encoder is None  # bytes go to the wire untouched
            send_chunk = sender.send  # looked up once: this loop runs once per chunk
            async for chunk in body:
                if ending.stopped:
                    raise asyncio.CancelledError  # the generator swallowed ours: stop anyway
                data = chunk if as_is and type(chunk) is bytes else self.wire_bytes(chunk)
                try:
                    if not headers.sent:  # the first chunk: the headers go before it
                        await headers.send()
                    waiting = send_chunk(data)
                    if waiting is not None:
                        await waiting
                except asyncio.CancelledError as cancel:
                    if ending.stopped or not await headers.settled():
                        raise  # ours, or the headers never went out: nothing can follow
                    await ending.throw_into(body, cancel, sender, self.wire_bytes)
                except OSError as exc:  # from send(): the client is gone, or frozen
                    raise ClientDisconnect from exc
            if not headers.sent:
                await headers.send()  # an empty body
            await sender.finish()
            ending.unwatch()  # before the last message: see "It is complete" above
            encoder = self.content_encoder
            end = end_message() if encoder is None else end_message(encoder.finish())
            await _send(send if timeout is None else _timed(send, timeout), end)
        except asyncio.CancelledError:
            if not ending.stopped_us():
                raise
            if ending.error is not None:
                raise ending.error from None
        except ClientDisconnect:
            raise
        except Exception as exc:
            if not headers.out:
                # Nothing is sent yet: the error can still be answered as itself.
                answer = error_response(exc)
                if answer is None:
                    # As the router does for an endpoint: the request is
                    # answered in full, so the error is logged, not raised on.
                    logger.exception("a stream failed before its first chunk")
                    answer = json_error(500, "Internal Server Error")
                ending.unwatch()  # a complete answer: see "It is complete" above
                try:
                    await headers.answer(answer)
                except asyncio.CancelledError:
                    if not ending.stopped_us():
                        raise  # the client left meanwhile: nobody to answer
                return
            await sender.finish()  # the generator failed: what it made before goes out first
            raise
        finally:
            await headers.aclose()
            await sender.aclose()
            await close_iterator(body)

    def wire_bytes(self, chunk: Any) -> bytes:
        """The bytes that go on the wire for ``chunk``: encoded if it is not
        ``bytes`` already, then through the :attr:`content_encoder`, if any."""
        if type(chunk) is not bytes:
            chunk = self.encode_chunk(chunk)
        return chunk if self.content_encoder is None else self.content_encoder.encode(chunk)

    def _make_ping(self) -> bytes:
        """The bytes of one heartbeat, made as the generator's chunks are."""
        message = self.ping_message
        return self.wire_bytes(message() if callable(message) else message)


class _Ending:
    """What the server's task and the body task of one stream know of each other.

    The server's task runs :meth:`watch`. Whoever must end the stream early
    (the watch when the client leaves; the writer task when ``send()`` fails;
    the server's task when it is cancelled) calls :meth:`stop`, which cancels
    the body task and records that the cancellation was ours.
    """

    __slots__ = ("_watcher", "error", "started", "stopped", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.started = False  # the body task has begun
        self.stopped = False  # stop() has cancelled the body task
        self.error: BaseException | None = None  # what stopped it, if not the client leaving
        self._watcher: asyncio.Task[Any] | None = None

    def stop(self, error: BaseException | None = None) -> None:
        """Stop the body task: the client is gone, or ``error`` happened beside it."""
        if not self.stopped and self.task is not None:
            self.stopped = True
            self.error = error
            self.task.cancel()

    async def watch(self, receive: Receive) -> None:
        """Wait for ``http.disconnect`` until the body task ends or :meth:`unwatch` is called."""
        watcher = self._watcher = asyncio.current_task()
        assert watcher is not None and self.task is not None
        # Run in an empty context, not a copy of ours (one object less per
        # stream): unwatch() reads no context variable.
        self.task.add_done_callback(self.unwatch, context=_NO_CONTEXT)
        try:
            # Body messages are not ours to use (the router's receive keeps them
            # for the request); skip any we are given until the disconnect.
            while (await receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            if self._watcher is None and watcher.uncancel() == 0:
                return  # unwatch() ended the wait, and nobody else cancelled us
            raise
        finally:
            self._watcher = None
        self.stop()  # the client has gone

    def unwatch(self, _: object = None) -> None:
        """End :meth:`watch`'s wait, if it is still waiting."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()

    async def throw_into(
        self,
        body: Any,
        cancel: asyncio.CancelledError,
        sender: BodySender,
        wire_bytes: Callable[[Any], bytes],
    ) -> None:
        """Deliver a cancellation that reached the body task outside the generator.

        Ours (:meth:`stop`): it ends the stream, so it is raised. Anyone
        else's was meant for the generator, suspended at its ``yield`` while we
        sent its chunk (an ``asyncio.timeout()`` spanning the ``yield`` has
        fired): it is thrown in there, and what the generator yields instead
        (its error event, say) is sent.
        """
        athrow = getattr(body, "athrow", None)
        while True:
            if self.stopped or athrow is None:
                raise cancel
            try:
                chunk = await athrow(cancel)
            except StopAsyncIteration:
                return  # it ended: the next step finds it exhausted
            try:
                waiting = sender.send(wire_bytes(chunk))
                if waiting is not None:
                    await waiting
                return
            except asyncio.CancelledError as again:
                cancel = again
            except OSError as exc:
                raise ClientDisconnect from exc

    def stopped_us(self) -> bool:
        """In the body task, handling a :class:`asyncio.CancelledError`: whether
        :meth:`stop` asked for it, and nobody else (a shutdown) did too."""
        task = asyncio.current_task()
        assert task is not None
        return self.stopped and task.uncancel() == 0


class _Headers:
    """The ``http.response.start`` message of one stream, held back until the
    first chunk, for at most a given time (see "Before the first chunk").

    The body task calls :meth:`send` before the first chunk. If the generator
    is slower than the wait, a timer starts the send of the headers instead,
    so the client hears of the stream early; the generator is not disturbed,
    and the first chunk waits until that send is done. The send always runs in
    a task of its own (see :meth:`send`). Either way
    the headers go out once, and the body sender starts (and with it the
    heartbeat) as soon as they are out.
    """

    __slots__ = ("_early", "_send", "_sender", "_start", "_timer", "out", "sent")

    def __init__(self, send: Send, start: Message, sender: BodySender) -> None:
        self._send = send
        self._start: Message | None = start  # None once sent: a stream lives long
        self._sender = sender
        self._timer: asyncio.TimerHandle | None = None
        # The timer's send of the headers while it runs, or after it failed.
        self._early: asyncio.Task[None] | None = None
        #: Sent, or being sent: the status can no longer change.
        self.out = False
        #: Sent: the body may follow.
        self.sent = False

    async def hold(self, wait: float) -> None:
        """Hold the headers back for at most ``wait`` seconds; 0 sends them now."""
        if wait:
            self._timer = asyncio.get_running_loop().call_later(wait, self._send_early)
        else:
            await self.send()

    async def send(self) -> None:
        """Make sure the headers are out, then return.

        The send runs in a task of its own even when nothing held it back, so
        that a cancellation meant for the generator (its timeout, firing while
        the headers go out) interrupts only this wait, never the send itself.
        """
        if self.sent:
            return
        if self._early is None:
            self._cancel_timer()
            self._send_early()
        early = self._early
        assert early is not None
        await asyncio.wait((early,))  # not `await early`: a cancellation would reach it
        early.result()  # its error, if it failed
        self._sender.restart_fairness()

    async def settled(self) -> bool:
        """Whether the headers are out, once the timer's send, if under way,
        has ended (a cancellation of the body task does not stop that send)."""
        early = self._early
        if early is not None and not early.done():
            await asyncio.wait((early,))
        return self.sent

    async def answer(self, response: Response) -> None:
        """Send ``response`` instead of the held headers (an error's answer)."""
        self._cancel_timer()
        self.out = True
        await _send(self._send, response.start_message())
        await _send(self._send, end_message(response.body))

    async def aclose(self) -> None:
        """Stop the timer, and the timer's send if it is still under way."""
        self._cancel_timer()
        early = self._early
        if early is not None and not early.done():
            early.cancel()
            await asyncio.wait((early,))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send_early(self) -> None:
        self._timer = None  # it fired, or was cancelled by send()
        self.out = True
        early = self._early = asyncio.get_running_loop().create_task(self._send_start())
        early.add_done_callback(self._sent_early)

    def _sent_early(self, early: asyncio.Task[None]) -> None:
        # Kept only if it failed, for send() to raise; an idle stream holds no task.
        if early.cancelled() or early.exception() is None:
            self._early = None

    async def _send_start(self) -> None:
        assert self._start is not None  # the headers go out once
        await _send(self._send, self._start)
        self._start = None  # it keeps no message it is done with
        self.sent = True
        self._sender.start()


#: The context of a callback that reads no context variable.
_NO_CONTEXT = contextvars.Context()


@functools.lru_cache(maxsize=64)
def _content_type_header(value: str) -> tuple[bytes, bytes]:
    # An app has a handful of media types and a stream lives long: every
    # response of one type shares one pair (a tuple: nobody can change it).
    return encode_header("content-type", value)


def _timed(send: Send, seconds: float) -> Send:
    """``send``, raising :class:`TimeoutError` (an :class:`OSError`) when it waits
    longer than ``seconds``."""

    async def send_or_time_out(message: Message) -> None:
        async with asyncio.timeout(seconds):
            await send(message)

    return send_or_time_out
