"""Ending open streams when the server they run in begins to stop.

Theory of operation
===================

A server stops when it is sent SIGTERM (by a process manager, a container
runtime, ``kill``) or SIGINT (Ctrl-C). It then closes its listener and waits
for the requests in flight to finish. A stream of live events never finishes
by itself, and the ASGI protocol has no message that says "the server is
stopping": uvicorn waits for ever, hypercorn cancels the stream after its
``graceful_timeout``. Either way the generator's ``finally`` runs late or not
at all, and the client sees an unfinished body.

The signal itself reaches the process, though, and a process has one handler
per signal. A server that wants to stop gracefully installs its own
(uvicorn with :func:`signal.signal`, hypercorn through
:meth:`asyncio.loop.add_signal_handler`, which installs a do-nothing Python
handler and is woken through a file descriptor). So when a stream starts,
``end_at_server_stop()`` looks at the handler of SIGTERM and SIGINT and, if
it is a server's (a Python function other than Python's own default), puts a
handler of ours in front of it that calls it first, then ends the streams.
The server's code is not touched, and nothing changes for it: its handler runs
as it would have, with the same arguments. Python's defaults are left alone:
a plain script that has no handler of its own must still die of SIGTERM, and
Ctrl-C must still raise :class:`KeyboardInterrupt`.

Ending a stream means what :mod:`asgi_stream.shutdown` does in its
middleware, per request: ``receive()`` returns ``http.disconnect`` from then
on (the wait in progress is woken), so the response closes its generator at
once and its ``finally`` runs; then the response, which believes its client
has gone, is finished with the final empty body message, so the client sees a
body that ended cleanly (an SSE client reconnects, with ``Last-Event-ID``).
A stream that had not sent its headers is answered 503. A response with a
``Content-Length`` is not cut (its early end would be an error on the wire).

What each server needs (nothing beyond the plain command):

* ``uvicorn app:app`` installs its handlers in the process that serves, so
  the chain works as it is, with any number of ``--workers`` (each worker is
  sent the signal).
* ``hypercorn app:app`` serves from a *spawned* worker process by default,
  and tells it to stop through a shared flag, not a signal: no application
  code can see that without patching hypercorn. ``hypercorn --workers 0``
  serves from the process that receives the signal, and the chain works there.
  (``asgi-stream serve`` and :class:`~asgi_stream.shutdown.GracefulShutdown`
  work with either.)

Everything here happens on the event loop: the signal handler only schedules
:func:`stop_streams` with :meth:`~asyncio.loop.call_soon_threadsafe`. The
record of streams is kept per event loop, so a server started again in the
same process (a new loop) starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any

from .types import Message, Receive, Scope, Send

__all__ = ["stop_streams"]

#: The signals a server takes as "stop gracefully".
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_DISCONNECT: Message = {"type": "http.disconnect"}


class Tracked:
    """One request in flight: its task, and ``receive`` and ``send`` wrapped so
    that it can be ended as if its client had left, then finished cleanly."""

    __slots__ = (
        "_receive",
        "_send",
        "cancelled",
        "complete",
        "cut",
        "receiving",
        "start",
        "task",
        "woken",
    )

    def __init__(self, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None, "an ASGI app runs inside an asyncio task"
        self.task = task
        self._receive = receive
        self._send = send
        self.start: Message | None = None  # the http.response.start message, once sent
        self.complete = False  # the final body message has been sent
        self.cut = False  # receive() says http.disconnect from now on
        self.cancelled = False  # the owner ran out of patience and cancelled the task
        self.receiving: asyncio.Task[Any] | None = None  # the task waiting in receive()
        self.woken: asyncio.Task[Any] | None = None  # the waiting task we cancelled

    async def receive(self) -> Message:
        if self.cut:
            return _DISCONNECT
        task = asyncio.current_task()
        self.receiving = task
        try:
            return await self._receive()
        except asyncio.CancelledError:
            if task is None or task is not self.woken or task.uncancel() > 0:
                raise
            return _DISCONNECT
        finally:
            self.receiving = None

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function that hands back the server's own awaitable: a stream
        # calls it for every chunk, and this way adds no coroutine of its own.
        if not message.get("more_body"):  # a body chunk has nothing to note: it goes first
            if message["type"] == "http.response.start":
                self.start = message
            else:
                self.complete = True
        return self._send(message)

    def cut_short(self) -> None:
        """Make ``receive()`` return ``http.disconnect``, now and from now on."""
        if self.start is not None and _has_content_length(self.start):
            return  # a body of announced length cannot end early
        self.cut = True
        if self.receiving is not None:
            self.woken = self.receiving
            self.receiving.cancel()

    async def finish(self, scope: Scope) -> None:
        """Complete a response that was cut short: 503 before the headers, the
        final empty body message after them."""
        # Imported here: the response module hooks this one in.
        from .response import END_OF_BODY, JSONResponse

        if self.complete:
            return
        if self.start is None:
            unavailable = JSONResponse({"detail": "Service Unavailable"}, 503)
            await unavailable(scope, self.receive, self._send)
        elif not _has_content_length(self.start):
            with contextlib.suppress(OSError):  # the client may be gone too (ASGI 2.4)
                await self._send(END_OF_BODY)
        # A body shorter than its Content-Length cannot be ended cleanly: the
        # server closes the connection short and says so in its log, as it should.


def _has_content_length(start: Message) -> bool:
    return any(name.lower() == b"content-length" for name, _ in start.get("headers", ()))


class _LoopStreams:
    """The streams open on one event loop, and whether its server is stopping."""

    __slots__ = ("open", "stopping")

    def __init__(self) -> None:
        self.open: set[Tracked] = set()
        self.stopping = False


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopStreams] = (
    weakref.WeakKeyDictionary()
)


def _streams_of(loop: asyncio.AbstractEventLoop) -> _LoopStreams:
    streams = _loops.get(loop)
    if streams is None:
        streams = _loops[loop] = _LoopStreams()
        _chain_signal_handlers(loop)  # once per loop: the server installed its handlers by now
    return streams


def stop_streams() -> None:
    """End every stream open on the running event loop, and every one started
    on it from now on, as the server's stop signal does.

    For a server that stops without a signal (embedded in a program, or in a
    test): call it from the event loop when the server begins to stop.
    """
    streams = _streams_of(asyncio.get_running_loop())
    streams.stopping = True
    for tracked in streams.open:
        tracked.cut_short()


@contextlib.asynccontextmanager
async def end_at_server_stop(
    scope: Scope, receive: Receive, send: Send
) -> AsyncIterator[tuple[Receive, Send]]:
    """Run a response with ``receive`` and ``send`` that end it cleanly when the server stops.

    ``async with end_at_server_stop(scope, receive, send) as (receive, send):``
    and send the response with the two it gives. When the server begins to
    stop (see the module's docstring), ``receive()`` returns
    ``http.disconnect``; once the response has returned, the block finishes
    it: the final empty body message, or a 503 if it had not started.
    The first call on an event loop chains the signal handlers.
    """
    loop = asyncio.get_running_loop()
    streams = _streams_of(loop)
    tracked = Tracked(receive, send)
    tracked.cut = streams.stopping
    streams.open.add(tracked)
    try:
        yield tracked.receive, tracked.send
        if tracked.cut:
            await tracked.finish(scope)
    finally:
        streams.open.discard(tracked)


_Handler = Callable[[int, FrameType | None], Any]


class _Chained:
    """Our signal handler: the server's handler, then :func:`stop_streams` on its loop."""

    __slots__ = ("loop", "previous")

    def __init__(self, previous: _Handler, loop: asyncio.AbstractEventLoop) -> None:
        self.previous = previous
        self.loop = loop

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        try:
            self.previous(signum, frame)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing is open
                self.loop.call_soon_threadsafe(stop_streams)


def _chain_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    """Put :class:`_Chained` in front of a server's SIGTERM and SIGINT handlers.

    A server is there when SIGTERM has a Python handler: Python's default for
    it is to die. (SIGINT alone is no sign: ``asyncio.run()`` handles it.)
    Only the main thread may set a handler. A handler that is already ours,
    for this loop, stays; one of ours for an older loop is replaced by one
    for this loop, in front of the same server handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if not callable(signal.getsignal(signal.SIGTERM)):
        return
    for sig in _STOP_SIGNALS:
        current = signal.getsignal(sig)
        if isinstance(current, _Chained):
            if current.loop is loop:
                continue
            current = current.previous
        if not callable(current) or current is signal.default_int_handler:
            continue  # Python's own behaviour, not a server's: leave it
        signal.signal(sig, _Chained(current, loop))
