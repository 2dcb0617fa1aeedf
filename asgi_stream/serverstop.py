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
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

from .inflight import Tracked
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["stop_streams"]

#: The signals a server takes as "stop gracefully".
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
    scope: Scope, receive: Receive, send: Send, unavailable: ASGIApp
) -> AsyncIterator[tuple[Receive, Send]]:
    """Run a response with ``receive`` and ``send`` that end it cleanly when the server stops.

    ``async with end_at_server_stop(scope, receive, send, unavailable) as
    (receive, send):`` and send the response with the two it gives. When the
    server begins to stop (see the module's docstring), ``receive()`` returns
    ``http.disconnect``; once the response has returned, the block finishes
    it (``Tracked.finish()`` in :mod:`asgi_stream.inflight`): the final empty body
    message, or ``unavailable`` (an ASGI app: the caller's 503) if it had not
    started.
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
            await tracked.finish(scope, unavailable)
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
