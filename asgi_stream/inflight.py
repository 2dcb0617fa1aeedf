"""One request in flight, tracked so that it can be ended early and still end cleanly.

Two things end requests that would otherwise run for ever: a server's stop
signal (:mod:`asgi_stream.serverstop`, per stream) and the
:class:`~asgi_stream.shutdown.GracefulShutdown` middleware (per app). Both need
the same three moves, which ``Tracked`` makes:

========================  ===================================================
move                      how
========================  ===================================================
note what was sent        ``send`` records the ``http.response.start``
                          message and whether the final body message went out
cut the request short     ``receive()`` returns ``http.disconnect`` from now
                          on; a ``receive()`` that is waiting is woken with it
finish what was cut       the final empty body message after the headers, or
                          the caller's "unavailable" answer before them
========================  ===================================================

The app then ends as it ends when its client leaves (a streaming response
closes its generator at once), and the client sees a body that ended
cleanly: an SSE client reconnects, with its ``Last-Event-ID``. A body whose
length was announced (``Content-Length``) is never cut: ending it early would
be an error on the wire.

What to answer before the headers is the caller's policy, not this module's:
``Tracked.finish()`` takes it as an ASGI app (both callers pass a JSON 503).
So this module imports no response, and nothing that imports it has to
import the responses either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from .types import ASGIApp, Message, Receive, Scope, Send

__all__: list[str] = []


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
            return {"type": "http.disconnect"}
        task = asyncio.current_task()
        self.receiving = task
        try:
            return await self._receive()
        except asyncio.CancelledError:
            if task is None or task is not self.woken or task.uncancel() > 0:
                raise
            return {"type": "http.disconnect"}
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

    async def finish(self, scope: Scope, unavailable: ASGIApp) -> None:
        """Complete a response that was cut short: ``unavailable`` answers
        before the headers, the final empty body message ends it after them."""
        if self.complete:
            return
        if self.start is None:
            await unavailable(scope, self.receive, self._send)
        elif not _has_content_length(self.start):
            with contextlib.suppress(OSError):  # the client may be gone too (ASGI 2.4)
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        # A body shorter than its Content-Length cannot be ended cleanly: the
        # server closes the connection short and says so in its log, as it should.


def _has_content_length(start: Message) -> bool:
    return any(name.lower() == b"content-length" for name, _ in start.get("headers", ()))
