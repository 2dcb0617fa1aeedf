"""Stream helpers: small wrappers around any async iterable.

Each helper takes a *source* (an async iterable: an async generator, most
often) and is itself an async generator, so helpers compose by nesting::

    events = batched(timeout_each(source(), 1.0), 10)

and whatever the outermost one yields goes to a :class:`StreamingResponse`.

Two rules hold for all of them:

* **Closing a helper closes its source.** When the client leaves, the response
  closes the outermost generator (``aclose()``); each helper's ``finally``
  closes the one inside it, so the innermost generator's ``finally`` runs at
  once, not at some later garbage collection.
* **A helper steps its source in the task that steps the helper.** The
  response steps the outermost generator from one task, from its first step
  to its last (see :mod:`asgi_stream.response`), and so every source inside
  it is stepped by that same task. An ``asyncio.timeout()`` or a contextvar
  inside a source means what its author meant.

The second rule decides what a helper can be. A helper can only produce
something when it is asked for its next item, and while its source is busy
making an item, the helper is busy waiting for it. So "send something *while*
the source is quiet" cannot be a helper: that is the response's heartbeat
(``ping=``), a timer beside the generator. And "send a partial batch when it
has waited long enough" cannot be either: :func:`batched` batches by count,
and the response's coalescing already joins whatever piles up while it is
busy sending, which is batching that never makes anything wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable
from typing import TypeVar

from .concurrency import close_iterator

__all__ = ["batched", "timeout_each"]

T = TypeVar("T")


async def timeout_each(source: AsyncIterable[T], seconds: float) -> AsyncGenerator[T, None]:
    """Yield the items of ``source``, allowing each one at most ``seconds``.

    The clock starts when the consumer asks for the next item, so time the
    consumer spends sending an item is not charged to the source. When a step
    takes longer, the source is cancelled at the ``await`` where it waits (its
    ``finally`` runs) and this generator raises :class:`TimeoutError` (which is
    ``asyncio.TimeoutError``). Catch it around your ``async for`` to send an
    error event, as the catalogue's ``/stream-timeout`` does::

        try:
            async for item in timeout_each(work(), 1.0):
                yield item
        except TimeoutError:
            yield ServerSentEvent("Timeout", event="error")

    The step runs in the task that steps this generator: the source is never
    moved to another task. Unlike ``asyncio.timeout()`` around each step, an
    item that is ready in the same turn of the event loop as the deadline
    counts as in time: a loop that woke up late is not the source's fault.
    """
    iterator = aiter(source)
    try:
        while True:
            deadline = _Deadline(seconds)
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if deadline.cancelled_us():
                    raise TimeoutError(f"no item within {seconds} s") from None
                raise
            finally:
                deadline.disarm()
            yield item
    finally:
        await close_iterator(iterator)


class _Deadline:
    """Cancels the current task ``seconds`` from now, unless disarmed first.

    The cancellation waits one more turn of the event loop after the timer
    fires (``call_soon``): whatever became ready in the same turn as the
    deadline (an item, say) runs before it, and disarms it.
    """

    __slots__ = ("_armed", "_expired", "_task", "_timer")

    def __init__(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "a deadline runs inside an asyncio task"
        self._task = task
        self._armed = True
        self._expired = False
        self._timer = loop.call_later(seconds, loop.call_soon, self._expire)

    def _expire(self) -> None:
        if self._armed:
            self._expired = True
            self._task.cancel()

    def disarm(self) -> None:
        self._armed = False
        self._timer.cancel()

    def cancelled_us(self) -> bool:
        """Handling a cancellation: whether it was ours, and nobody else's."""
        return self._expired and self._task.uncancel() == 0


def batched(source: AsyncIterable[T], size: int) -> AsyncGenerator[list[T], None]:
    """Yield the items of ``source`` in lists of ``size``; the last list holds
    whatever is left (an empty list is never sent).

    Batching trades latency for fewer, larger messages: ten events in one
    ``http.response.body`` cost one write and one chunk header instead of ten.
    """
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"batch size must be an int, not {type(size).__name__}")
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size!r}")
    return _batched(source, size)


async def _batched(source: AsyncIterable[T], size: int) -> AsyncGenerator[list[T], None]:
    iterator = aiter(source)
    batch: list[T] = []
    try:
        async for item in iterator:
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        await close_iterator(iterator)
