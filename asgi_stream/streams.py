"""Stream helpers: small wrappers around any async iterable.

Each helper takes a *source* (an async iterable: an async generator, most
often) and is itself an async generator, so helpers compose by nesting::

    events = heartbeat(batched(timeout_each(source(), 1.0), 10, 0.5), 15.0)

and whatever the outermost one yields goes to a :class:`StreamingResponse`.

The rule they all follow: **closing a helper closes its source.** When the
client leaves, the response closes the outermost generator (``aclose()``);
each helper's ``finally`` closes the one inside it, so the innermost
generator's ``finally`` runs at once, not at some later garbage collection.

Waiting for the next item with a deadline
=========================================

:func:`timeout_each` gives up on the source when a step takes too long: the
step is *cancelled*, and the source is finished. :func:`heartbeat` and time-based
:func:`batched` must not do that. When their interval passes, they have
something to send (a comment, a partial batch), and then they must go on
waiting for *the same* next item: cancelling it would kill the source. So they
ask for the next item in a helper task (:class:`_NextItem`) and wait for that
task with a timeout, which leaves the task running when the timeout passes.
:func:`timeout_each` waits the same way, and cancels the task itself.

While it waits, a stream holds one timer, armed for "now + interval" and
cancelled when the item arrives. An idle stream is a sleeping task and a
timer that fires once per interval; nothing polls.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any, Final, Generic, TypeVar

from .concurrency import close_iterator

__all__ = ["HEARTBEAT", "batched", "heartbeat", "timeout_each"]

T = TypeVar("T")

#: The default heartbeat: the SSE comment ``: heartbeat``, which every
#: EventSource ignores. Bytes, so any streaming response can send it.
HEARTBEAT = b": heartbeat\n\n"


class _Signal(enum.Enum):
    """What ``_NextItem.get`` gives instead of an item (an enum, so types can tell)."""

    END = enum.auto()  # the source is exhausted
    NOT_YET = enum.auto()  # the wait timed out; the item is still coming


_END: Final = _Signal.END
_NOT_YET: Final = _Signal.NOT_YET


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

    Unlike ``asyncio.timeout()`` around each ``anext()``, an item that is
    ready in the same turn of the event loop as the deadline counts as in
    time: a loop that woke up late is not the source's fault.
    """
    next_item = _NextItem(source)
    try:
        while True:
            item = await next_item.get(seconds)
            if item is _END:
                return
            if item is _NOT_YET:
                raise TimeoutError(f"no item within {seconds} s")
            yield item
    finally:
        await next_item.aclose()


async def batched(
    source: AsyncIterable[T], size: int, interval: float | None = None
) -> AsyncGenerator[list[T], None]:
    """Yield the items of ``source`` in lists of ``size``.

    With ``interval``, a batch is also sent when ``interval`` seconds have
    passed since its first item, full or not, so a slow source still reaches
    the client in good time. The last batch holds whatever is left; an empty
    batch is never sent.

    Batching trades latency for fewer, larger messages: ten events in one
    ``http.response.body`` cost one write and one chunk header instead of ten.
    """
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size!r}")
    loop = asyncio.get_running_loop()
    next_item = _NextItem(source)
    batch: list[T] = []
    deadline = 0.0
    try:
        while True:
            wait = None if interval is None or not batch else max(0.0, deadline - loop.time())
            item = await next_item.get(wait)
            if item is _END:
                break
            if item is not _NOT_YET:
                if not batch and interval is not None:
                    deadline = loop.time() + interval
                batch.append(item)
                if len(batch) < size:
                    continue
            yield batch
            batch = []
        if batch:
            yield batch
    finally:
        await next_item.aclose()


def heartbeat(
    source: AsyncIterable[T], interval: float, ping: Any = HEARTBEAT
) -> AsyncGenerator[Any, None]:
    """Yield the items of ``source``, and ``ping`` whenever ``interval`` seconds
    pass without an item.

    Proxies and load balancers close connections that stay silent for a while
    (often 60 s). A heartbeat is sent only when the stream *is* silent: the
    clock restarts whenever the consumer asks for the next item, that is, just
    after it has sent something. A busy stream never gets one; a source that
    waits ten minutes for its next item gets one every ``interval`` meanwhile.

    The default ``ping`` is the SSE comment ``: heartbeat`` as bytes; for a
    plain-text stream, pass something your client ignores (``b"\\n"``). A
    callable ``ping`` is called for each heartbeat, and what it returns is sent
    (an event with the time in it, say). ``interval`` must be a positive, finite
    number of seconds: a :class:`ValueError` here, not when the stream starts.
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise TypeError(f"heartbeat interval must be a number, not {type(interval).__name__}")
    if not 0 < interval < math.inf:
        raise ValueError(f"heartbeat interval must be positive and finite, not {interval!r}")
    return _heartbeat(source, interval, ping)


async def _heartbeat(
    source: AsyncIterable[T], interval: float, ping: Any
) -> AsyncGenerator[Any, None]:
    next_item = _NextItem(source)
    try:
        while True:
            item = await next_item.get(interval)
            if item is _END:
                return
            if item is not _NOT_YET:
                yield item
            else:
                yield ping() if callable(ping) else ping
    finally:
        await next_item.aclose()


class _NextItem(Generic[T]):
    """The source's next item, fetched in a helper task so that a wait for it
    can time out without cancelling it.

    With no timeout, the item is fetched directly in the caller's task: no
    helper task, no cost.
    """

    __slots__ = ("_iterator", "_task")

    def __init__(self, source: AsyncIterable[T]) -> None:
        self._iterator = aiter(source)
        self._task: asyncio.Task[T | _Signal] | None = None

    async def get(self, timeout: float | None) -> T | _Signal:
        """The next item; ``_END`` after the last; ``_NOT_YET`` if ``timeout`` passed first."""
        if self._task is None:
            if timeout is None:
                return await anext(self._iterator, _END)
            self._task = asyncio.get_running_loop().create_task(self._fetch())
        task = self._task
        if not task.done():
            await _first_of(task, timeout)
            if not task.done():
                return _NOT_YET
        self._task = None
        return task.result()

    async def _fetch(self) -> T | _Signal:
        return await anext(self._iterator, _END)

    async def aclose(self) -> None:
        """Cancel a fetch in progress (the source sees the cancellation at its
        ``await``), then close the source."""
        task, self._task = self._task, None
        try:
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait((task,))  # not `await task`: its CancelledError is not ours
            if task is not None and not task.cancelled():
                task.exception()  # retrieved: we are closing, nobody wants the item now
        finally:
            await close_iterator(self._iterator)


async def _first_of(task: asyncio.Task[Any], timeout: float | None) -> None:
    """Wait until ``task`` is done or ``timeout`` seconds (if not None) have passed.

    What ``asyncio.wait((task,), timeout=timeout)`` does, at half the cost per
    item: one future, one timer, one callback, and no sets.
    """
    loop = asyncio.get_running_loop()
    woken = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    timer = None if timeout is None else loop.call_later(timeout, wake)
    task.add_done_callback(wake)
    try:
        await woken
    finally:
        if timer is not None:
            timer.cancel()
        task.remove_done_callback(wake)
