"""Running blocking code without blocking the event loop.

One event loop serves every connection of a worker. A sync generator that
calls ``time.sleep()`` or reads a file would stop all of them while it runs,
so each ``next()`` on it is run in a worker thread, and the loop waits for the
thread's answer the way it waits for a socket.

Three details make this correct rather than merely working:

* ``next()`` on an exhausted generator raises ``StopIteration``, which cannot
  travel through a future; we ask for ``next(iterator, _EXHAUSTED)`` instead.
* A generator can run in one thread at a time. While a ``next()`` is in flight,
  ``close()`` would raise ``ValueError: generator already executing``. When the
  consumer goes away (the client disconnected), we close the generator *after*
  its in-flight ``next()`` returns, so its ``finally`` runs promptly and not at
  some later garbage collection.
* The threads come from one bounded pool owned by this module (at most
  :data:`MAX_THREADS`), so a thousand slow sync streams queue instead of
  spawning a thousand threads. Idle pool threads are reused, never leaked.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
)
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = [
    "MAX_THREADS",
    "aiterate",
    "close_iterator",
    "iterate_in_threadpool",
    "run_in_threadpool",
]

T = TypeVar("T")

#: The most threads that sync generators and sync background tasks may use at once.
MAX_THREADS = 40

_EXHAUSTED = object()


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="asgi-stream")


async def run_in_threadpool(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``func(*args, **kwargs)`` in a worker thread and wait for its result."""
    return await asyncio.wrap_future(_executor().submit(func, *args, **kwargs))


async def iterate_in_threadpool(iterator: Iterator[T]) -> AsyncGenerator[T, None]:
    """Iterate a sync iterator from async code, one ``next()`` per thread hop.

    Closing this async generator (``aclose()``, or cancelling the task that
    awaits it) closes ``iterator`` too, once any ``next()`` still running in
    its thread has returned.
    """
    in_flight: Future[Any] | None = None
    try:
        while True:
            in_flight = _executor().submit(next, iterator, _EXHAUSTED)
            item = await asyncio.wrap_future(in_flight)
            in_flight = None
            if item is _EXHAUSTED:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # Shielded: a second cancellation (a shutdown's grace period running
            # out) may stop our wait, but never the close itself.
            await asyncio.shield(asyncio.wrap_future(_close_when_idle(close, in_flight)))


def _close_when_idle(close: Callable[[], object], in_flight: Future[Any] | None) -> Future[object]:
    """Run ``close()`` in a worker thread once ``in_flight`` (if any) has finished."""
    if in_flight is None or in_flight.done():
        return _executor().submit(close)
    closed: Future[object] = Future()

    def close_now(_: Future[Any]) -> None:
        # Runs in the thread that has just finished next(): the generator is free.
        try:
            closed.set_result(close())
        except BaseException as exc:
            closed.set_exception(exc)

    in_flight.add_done_callback(close_now)
    return closed


def aiterate(content: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    """An async iterator over ``content``: as it is if async, else in worker threads."""
    if isinstance(content, AsyncIterable):
        return aiter(content)
    return iterate_in_threadpool(iter(content))


async def close_iterator(iterator: object) -> None:
    """Close a generator, async or sync, so that its ``finally`` runs now.

    Anything without ``aclose()`` or ``close()`` (a list iterator, say) has
    nothing to clean up.
    """
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
