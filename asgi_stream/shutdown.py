"""Graceful shutdown for streams, as ASGI middleware.

Theory of operation
===================

A server that is told to stop (SIGTERM from a process manager, Ctrl-C in a
terminal) closes its listening socket and waits for the requests in flight to
finish. An ordinary request finishes in milliseconds. A stream may never
finish: an SSE stream of live events has no end. Neither uvicorn nor hypercorn
tells the application that the server is going away, so the generator goes on
until the server loses patience. uvicorn, by default, waits for ever; given a
timeout, it cancels the tasks and logs each one as an error. hypercorn cancels
them after its ``graceful_timeout`` (on Python 3.12 and later it waits for
ever too).

Yet the application already knows how to end a stream early and cleanly: when
the client leaves, ``receive()`` returns ``http.disconnect``, and
:class:`~asgi_stream.response.StreamingResponse` closes its generator at once,
so the generator's ``finally`` runs. :class:`GracefulShutdown` makes a
shutdown look like that to the application. It wraps the app, keeps a record
of every HTTP request in flight, and when the server calls :meth:`GracefulShutdown.shut_down`:

1. Every request's ``receive()`` returns ``http.disconnect``. A request that is
   waiting in ``receive()`` (a streaming response always is: it watches for
   the disconnect) is woken by cancelling that wait; the wrapper catches its
   own cancellation and returns the disconnect instead. Later calls return it
   at once. Streams stop, and their ``finally`` blocks run, straight away.
2. The application then returns without finishing its response: it believes
   nobody is listening. The client is still there, though, and to the server
   an unfinished response is an application bug (uvicorn logs "ASGI callable
   returned without completing response" as an error and closes the
   connection with the body unfinished). So the middleware finishes it: an empty final body message,
   which is the zero-length chunk on HTTP/1.1 and END_STREAM on HTTP/2. The
   client sees a stream that ended cleanly. A request whose response had not
   started is answered 503.
3. A new request, or the next request on a kept-alive connection, is answered
   503 at once.
4. A request still running ``grace`` seconds after :meth:`GracefulShutdown.shut_down` (an app
   that never calls ``receive()``, a ``finally`` that hangs) is cancelled, and
   its response finished as in 2.

Streams are ended *at once*, not given the grace period to end by themselves.
The streams worth waiting for are finite, and short; the ones that hold a
shutdown up are endless (live events, log tails, heartbeats), and waiting for
them only delays every deploy by the whole grace period. For SSE an early end
is the protocol's normal path: the browser reconnects (sending
``Last-Event-ID``) to a server that is up. A client of a finite stream cannot
tell a cut from a natural end by the framing alone, which is why a response
with a ``Content-Length`` (whose early end *would* be visible, and invalid) is
not cut: it keeps the grace period to finish.

What it costs: ``receive()`` gets a thin wrapper (a stream calls it once or
twice in all), and each ``send()`` one extra call and two dict lookups, so
that the middleware knows whether the response has started and finished.
"""

from __future__ import annotations

import asyncio

from .inflight import Tracked
from .response import service_unavailable
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["GracefulShutdown"]


class GracefulShutdown:
    """Wraps an ASGI app so that :meth:`shut_down` ends its streams cleanly.

    The server calls :meth:`shut_down` when it begins to stop, from its event
    loop; :mod:`asgi_stream.tools.servers` does that for uvicorn and hypercorn.
    Lifespan and websocket scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, grace: float = 3.0) -> None:
        self.app = app
        self.grace = grace
        self.shutting_down = False
        self._requests: set[Tracked] = set()
        self._drained = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.shutting_down:
            await service_unavailable(scope, receive, send)
            return
        request = Tracked(receive, send)
        self._requests.add(request)
        try:
            try:
                await self.app(scope, request.receive, request.send)
            except asyncio.CancelledError:
                # Ours (the grace period ran out) or the server's? Only swallow ours.
                if not request.cancelled or request.task.uncancel() > 0:
                    raise
            if request.cut or request.cancelled:
                await request.finish(scope, service_unavailable)
        finally:
            self._requests.discard(request)
            if self.shutting_down and not self._requests:
                self._drained.set()

    @property
    def requests_in_flight(self) -> int:
        """How many HTTP requests are running now."""
        return len(self._requests)

    def shut_down(self) -> None:
        """Begin the shutdown: end every stream now, cancel what is left after ``grace``.

        Call it once, from the event loop, before the server closes its
        connections. Later calls do nothing.
        """
        if self.shutting_down:
            return
        self.shutting_down = True
        if not self._requests:
            self._drained.set()
        for request in self._requests:
            request.cut_short()
        asyncio.get_running_loop().call_later(self.grace, self._cancel_the_rest)

    async def drained(self) -> None:
        """Wait until the requests in flight at :meth:`shut_down` have all ended."""
        await self._drained.wait()

    def _cancel_the_rest(self) -> None:
        for request in self._requests:
            request.cancelled = True
            request.task.cancel()
