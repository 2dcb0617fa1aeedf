"""Coalescing: send in one piece what the generator had ready at once.

A server writes each ``http.response.body`` message to the socket with its
own system call, and the client is woken for each. For a generator that
produces faster than one write per item (a backlog replayed, a batch of
rows, events computed in a loop), those calls are most of the cost. Joining
items into one message saves them, but joining must not *delay* anything:
an item that could go out now must go out now, not wait for company.

The line between "ready now" and "later" is drawn by the generator itself.
To get its next item we start the step ourselves (``send(None)`` on the
awaitable that ``__anext__()`` returns) instead of awaiting it. If the step
finishes at once, the generator produced the item without waiting for
anything, and we ask for the next one the same way. The first time a step
does *not* finish, the generator is waiting (for a queue, a socket, a
timer): we hand over everything collected so far, and only then wait for
that step to finish, by driving it exactly as ``await`` would have (every
value it yields goes to the event loop, everything the loop sends or throws,
a cancellation above all, goes back into it).

So a generator that awaits between items sees no change at all: every
step waits, every item goes out alone and at once. A generator that never
awaits has its items joined up to :data:`BATCH_ITEMS` items or
:data:`BATCH_BYTES` bytes per message, whichever comes first; the limits
keep the time spent building one message short, so the response's
fairness budget still hands the event loop to other connections often.

Endings are the generator's own: an exception in a step is raised after
the items produced before it went out, and closing the coalescer (as the
response does when the client leaves) closes the generator, including
a step that is waiting, so its ``finally`` runs at once.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any

from .concurrency import close_iterator

__all__ = ["BATCH_BYTES", "BATCH_ITEMS", "coalesce_ready"]

#: At most this many items, or this many bytes, are joined into one message.
BATCH_ITEMS = 64
BATCH_BYTES = 16 * 1024

_END = object()  # the generator is exhausted
_NOT_STARTED = object()  # the step is an awaitable without send(): it must be awaited

# A step that did not finish at once: the awaitable, and what it yielded.
_Waiting = tuple[Any, Any]


@types.coroutine
def _finish(step: Any, signal: Any) -> Generator[Any, Any, Any]:
    """Wait for a started step to finish, as ``await step`` would have.

    Returns the item, or ``_END`` when the generator is exhausted.
    """
    while True:
        try:
            try:
                sent = yield signal
            except BaseException as exc:  # a cancellation, above all: the step's to handle
                signal = step.throw(exc)
            else:
                signal = step.send(sent)
        except StopIteration as done:
            return done.value
        except StopAsyncIteration:
            return _END


async def _wait_for(waiting: _Waiting) -> Any:
    """The item of a step that could not finish at once (``_END`` after the last)."""
    step, signal = waiting
    if signal is _NOT_STARTED:
        try:
            return await step
        except StopAsyncIteration:
            return _END
    return await _finish(step, signal)


async def _abandon(waiting: _Waiting) -> None:
    """Close the generator at the step where it waits, so that its ``finally`` runs."""
    step, signal = waiting
    if signal is _NOT_STARTED:
        return
    try:
        signal = step.throw(GeneratorExit)
    except (GeneratorExit, StopIteration, StopAsyncIteration):
        return
    try:  # the generator awaits in its finally: let it finish
        await _finish(step, signal)
    except GeneratorExit:
        pass


async def coalesce_ready(
    items: AsyncIterator[Any], encode: Callable[[Any], bytes]
) -> AsyncIterator[bytes]:
    """The items of ``items`` as bytes (``encode`` turns what is not ``bytes``
    into bytes), those that were ready at once joined into one chunk."""
    waiting: _Waiting | None = None
    try:
        while True:
            if waiting is None:
                item = await anext(items, _END)
            else:
                pending, waiting = waiting, None
                item = await _wait_for(pending)
            if item is _END:
                return
            parts = [item if type(item) is bytes else encode(item)]
            size = len(parts[0])
            try:
                while len(parts) < BATCH_ITEMS and size < BATCH_BYTES:
                    step = items.__anext__()
                    if not isinstance(step, Coroutine):  # an awaitable we cannot start
                        waiting = (step, _NOT_STARTED)
                        break
                    try:
                        signal = step.send(None)
                    except StopIteration as done:  # the item was ready at once
                        item = done.value
                        parts.append(item if type(item) is bytes else encode(item))
                        size += len(parts[-1])
                        continue
                    waiting = (step, signal)  # the generator waits: send what we have now
                    break
            except StopAsyncIteration:
                yield b"".join(parts)
                return
            except Exception:
                yield b"".join(parts)  # what came before the error goes out first
                raise
            yield b"".join(parts)
    finally:
        if waiting is not None:
            await _abandon(waiting)
        await close_iterator(items)
