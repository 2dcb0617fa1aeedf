"""How a stream's chunks become ``http.response.body`` messages.

A :class:`~asgi_stream.response.StreamingResponse` hands every chunk its
generator makes to one ``BodySender``, from the one task that steps the
generator. This module decides what happens next; the response's loop stays a
plain ``for chunk in body: await sender.send(chunk)``.

The rule this module keeps
==========================

**The generator never moves.** Everything here that runs beside the
generator (a writer task, a heartbeat timer) moves around it. The task that
calls ``BodySender.send()`` is the task that steps the generator, from its
first step to its last, so what a generator does with its own task (an
``asyncio.timeout()`` or an anyio cancel scope spanning its ``yield``, a
contextvar it sets and later resets) means what its author meant.

One message per chunk, or joined
================================

A server writes each body message with its own system call, and wakes the
client for each: for a small event that costs more than everything else the
response does. Joining chunks into one message saves those calls, but a join
must never *delay* a chunk: one that could go out now must go out now.

* **Direct.** While the generator awaits between chunks (a sleep, a queue, a
  socket), ``BodySender.send()`` calls the server's ``send()`` itself: one
  message per chunk, no task, no buffer, just as FastAPI sends it.
* **Joined.** A generator that makes chunks without ever letting the event
  loop run (a backlog replayed, rows computed in a loop) switches the sender to
  joining (``coalesce=True`` starts there). ``send()`` then only
  appends the chunk to a buffer, and a *writer* task sends everything the
  buffer holds as one message whenever it gets to run. The generator stays
  where it was; the sending moved.

Fairness
========

A server's ``send()`` does not yield to the event loop while the socket takes
the data, so a generator that never awaits would hold the loop: no other
connection would be served, and not even the response's disconnect watch could
run. So the sender counts every chunk, empty ones too, and every 16 chunks or
64 KiB (``YIELD_BUDGET``) it looks whether the loop has had a turn since it
last looked (``_LoopTurns``: a callback scheduled then has run, or not).

* If it has, the generator awaits by itself and nothing is done: a yield would
  be pure overhead.
* If it has not, the generator never awaits. By default (``coalesce=None``)
  the sender switches to joining; with ``coalesce=False`` it yields to the loop
  once (``await asyncio.sleep(0)``) and goes on sending directly.

While joining, the generator waits for the writer whenever the buffer holds
``BATCH_ITEMS`` chunks (empty ones count) or ``BATCH_BYTES`` bytes: one
message stays small, and the two tasks take turns with the event loop, which
keeps serving everyone else.

Heartbeats
==========

With ``ping=SECONDS``, a timer checks whether anything was sent in the last
``SECONDS``; if nothing was and nothing is being sent, the ping is queued for
the writer (a one-off writer task when sending directly). The generator is
never asked for anything: an idle stream is a sleeping generator and a timer.

Endings
=======

A ``send()`` that raises :class:`OSError` (the client is gone, ASGI 2.4; or
frozen, the ``TimeoutError`` of ``send_timeout``) ends the stream: sending
directly, it comes out of what ``BodySender.send()`` returned, and the
response ends as the client left; in the writer task, the sender calls the
response's ``stop`` callback, which cancels the generator's task as a
disconnect does. ``finish()`` waits until everything
was sent; ``aclose()`` stops the timer and the writer, so no
task outlives the response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .types import Send

__all__ = []

#: While joining, the generator waits for the writer at this many chunks, or bytes.
BATCH_ITEMS = 64
BATCH_BYTES = 16 * 1024

#: The fairness budget: each chunk costs its size plus :data:`_CHUNK_COST`; at
#: this many bytes the sender looks whether the loop has had a turn. That is
#: "every 16 chunks or 64 KiB, whichever comes first" in one counter.
YIELD_BUDGET = 64 * 1024
_CHUNK_COST = 4 * 1024

#: The default heartbeat: the SSE comment ``: heartbeat``, which every
#: EventSource ignores.
HEARTBEAT = b": heartbeat\n\n"


class BodySender:
    """Sends one response's body chunks; see the module's docstring.

    ``send`` is the server's ``send`` (or the response's wrapper of it).
    ``coalesce`` is the response's option: ``None`` adapts, ``True`` joins
    from the first chunk, ``False`` never joins. ``stop(error)`` is called
    when the writer task cannot send (``error`` is ``None`` when the client
    has gone); it must stop the task that steps the generator. With
    ``ping`` seconds, ``make_ping()`` gives the bytes of a heartbeat.

    Its life: :meth:`start` once the headers are sent, :meth:`send` for each
    chunk, :meth:`finish` when the generator is exhausted, and :meth:`aclose`
    at every ending.
    """

    __slots__ = (
        "_adaptive",
        "_budget",
        "_drained",
        "_finishing",
        "_joining",
        "_last_sent",
        "_loop",
        "_make_ping",
        "_pending",
        "_pending_items",
        "_pending_size",
        "_ping",
        "_send",
        "_sending",
        "_stop",
        "_timer",
        "_turns",
        "_wake",
        "_writer",
    )

    def __init__(
        self,
        send: Send,
        coalesce: bool | None,
        stop: Callable[[BaseException | None], None],
        ping: float | None = None,
        make_ping: Callable[[], bytes] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._send = send
        self._stop = stop
        self._adaptive = coalesce is None
        self._joining = coalesce is True
        self._budget = YIELD_BUDGET
        self._turns = _LoopTurns(self._loop)
        # What the writer has yet to send: chunks, their bytes, and every
        # chunk counted since the writer last took them (empty ones too).
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._pending_items = 0
        self._writer: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None  # the writer waits for chunks
        self._drained: asyncio.Future[None] | None = None  # the generator's task waits for room
        self._finishing = False
        self._sending = False
        self._ping = ping
        self._make_ping = make_ping
        self._last_sent = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """The headers are out: from now on, the heartbeat and the writer may send."""
        self._last_sent = self._loop.time()
        if self._ping is not None:
            self._timer = self._loop.call_later(self._ping, self._ping_due)
        if self._joining:
            self._start_writer()

    def restart_fairness(self) -> None:
        """The generator's task has waited for something of ours (the headers
        going out), which let the loop run: judge the generator from here on."""
        self._budget = YIELD_BUDGET
        self._turns.arm()

    def send(self, chunk: bytes) -> Awaitable[None] | None:
        """Send ``chunk`` now, or hand it to the writer. Returns what to await,
        or ``None`` when there is nothing to wait for.

        A plain method, not a coroutine: this is the per-chunk cost of every
        stream. Sending directly, it returns the server's own ``send()`` (an
        :class:`OSError` from it comes out as it is); joining, it appends the
        chunk and, most of the time, returns ``None``.
        """
        if self._writer is None:  # sending directly
            self._budget -= len(chunk) + _CHUNK_COST
            if self._budget <= 0 or self._ping is not None:
                return self._send_with_care(chunk)
            if not chunk:
                return None
            return self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        # Joining, or a heartbeat is going out: the writer sends it.
        if chunk:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._wake is not None:
                self._wake_writer()
        self._pending_items += 1
        if self._pending_items >= BATCH_ITEMS or self._pending_size >= BATCH_BYTES:
            return self._wait_for_writer()
        return None

    async def _send_with_care(self, chunk: bytes) -> None:
        """Send directly, telling the heartbeat that a send is under way, then
        look at fairness when the budget is spent."""
        if chunk:
            self._sending = True
            try:
                await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                self._sending = False
            self._last_sent = self._loop.time()
        if self._budget <= 0:
            await self._check_fairness()

    async def finish(self) -> None:
        """Wait until every chunk given to :meth:`send` has been sent.

        The heartbeat stops first: once the generator is done, the next
        message is the last one, and nothing may go out beside it or after it.
        """
        self._stop_heartbeat()
        writer = self._writer
        if writer is not None:
            self._finishing = True
            self._wake_writer()
            await asyncio.wait((writer,))

    async def aclose(self) -> None:
        """Stop the heartbeat and the writer, and wait for the writer to end."""
        self._stop_heartbeat()
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.wait((writer,))  # not `await writer`: its CancelledError is not ours

    def _stop_heartbeat(self) -> None:
        self._ping = None  # a heartbeat already due is not sent either
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- fairness and the switch to joining ---------------------------------------------------

    async def _check_fairness(self) -> None:
        self._budget = YIELD_BUDGET
        if not self._turns.taken:
            # Nothing else has run since we last looked: the generator never awaits.
            if self._adaptive:
                self._adaptive = False
                self._joining = True
                self._start_writer()
            else:
                await asyncio.sleep(0)
        self._turns.arm()

    async def _wait_for_writer(self) -> None:
        """Wait until the writer has taken what is pending (a turn of the loop, at least)."""
        if not self._pending:
            self._pending_items = 0
            await asyncio.sleep(0)  # empty chunks only: nothing to send, but take a turn
            return
        self._drained = self._loop.create_future()
        try:
            await self._drained
        finally:
            self._drained = None

    # -- the writer task -----------------------------------------------------------------------

    def _start_writer(self) -> None:
        self._writer = self._loop.create_task(self._write())

    def _wake_writer(self) -> None:
        wake, self._wake = self._wake, None  # once is enough
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _write(self) -> None:
        """Send what is pending, joined; wait for more while joining; end when told."""
        try:
            while True:
                if not self._pending:
                    if self._finishing or not self._joining:
                        return
                    self._wake = self._loop.create_future()
                    try:
                        await self._wake
                    finally:
                        self._wake = None
                    continue
                parts = self._pending
                chunk = parts[0] if len(parts) == 1 else b"".join(parts)
                parts.clear()
                self._pending_size = self._pending_items = 0
                if self._drained is not None and not self._drained.done():
                    self._drained.set_result(None)
                message = {"type": "http.response.body", "body": chunk, "more_body": True}
                self._sending = True
                try:
                    await self._send(message)
                finally:
                    self._sending = False
                self._last_sent = self._loop.time()
        except OSError:
            self._stop(None)  # the client is gone, or frozen past send_timeout
        except Exception as exc:
            self._stop(exc)  # the generator's task raises it
        finally:
            if not self._joining:
                self._writer = None  # a one-off writer (a heartbeat): direct sending resumes

    # -- heartbeats ----------------------------------------------------------------------------

    def _ping_due(self) -> None:
        assert self._ping is not None and self._make_ping is not None
        idle = self._loop.time() - self._last_sent
        if self._sending or idle < self._ping:
            # Something was sent meanwhile, or is being sent: look again when
            # the stream may have been silent for the whole interval.
            wait = self._ping if self._sending else self._ping - idle
            self._timer = self._loop.call_later(wait, self._ping_due)
            return
        self._last_sent = self._loop.time()
        self._timer = self._loop.call_later(self._ping, self._ping_due)
        try:
            ping = self._make_ping()
        except Exception as exc:
            self._stop(exc)
            return
        self._pending.append(ping)
        self._pending_size += len(ping)
        if self._writer is None:
            self._start_writer()
        else:
            self._wake_writer()


class _LoopTurns:
    """Tells whether the event loop has run anything else since :meth:`arm`.

    :meth:`arm` schedules a callback to run on the loop's next turn. If it has
    not run when we look at :attr:`taken`, our task has not let go of the loop
    since: neither the generator nor ``send()`` waited for anything. One
    callback per 16 chunks; nothing per chunk.
    """

    __slots__ = ("_loop", "taken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.taken = False
        self.arm()

    def arm(self) -> None:
        self.taken = False
        self._loop.call_soon(self._take)

    def _take(self) -> None:
        self.taken = True
