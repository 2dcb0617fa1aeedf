"""Running blocking code without blocking the event loop.

One event loop serves every connection of a worker. A sync generator that
calls ``time.sleep()`` or reads a file would stop all of them while it runs,
so each ``next()`` on it is run in a worker thread, and the loop waits for the
thread's answer the way it waits for a socket.

Four details make this correct rather than merely working:

* ``next()`` on an exhausted generator raises ``StopIteration``, which cannot
  travel through a future; we ask for ``next(iterator, _EXHAUSTED)`` instead.
* **One thread per sync stream.** Many resources may only be used by the
  thread that made them: a ``sqlite3`` connection refuses any other ("SQLite
  objects created in a thread can only be used in that same thread"), and so
  do some drivers and thread-local state. A generator that opens one and then
  has each ``next()`` run on whichever pool thread is free fails as soon as a
  few streams run at once. So ``iterate_in_threadpool()`` gives each
  iterator a thread of its own, which runs every ``next()`` and the final
  ``close()``, and ends with it. It costs one thread start per stream and a
  few microseconds per item (``python3 -m benchmarks.sync_thread``), and the
  number of sync streams is not capped by a pool: a thousand slow streams are
  a thousand threads, each mostly asleep. Every step runs in one copy of the
  context the stream started in, so a contextvar set inside the generator is
  still set at its next step, as it would be in an async generator.
* A generator can run in one thread at a time. While a ``next()`` is in flight,
  ``close()`` would raise ``ValueError: generator already executing``. When the
  consumer goes away (the client disconnected), the ``close()`` is queued on
  the stream's thread *behind* the in-flight ``next()``, so it runs as soon as
  that returns: the generator's ``finally`` runs promptly, on its own thread,
  and not at some later garbage collection. Then the thread ends.
* Plain blocking calls (:func:`run_in_threadpool`: sync endpoints, sync
  background tasks) share one bounded pool owned by this module (at most
  ``MAX_THREADS``), whose idle threads are reused, never leaked.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
)
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

__all__ = ["run_in_threadpool"]

T = TypeVar("T")

#: The most threads that sync endpoints and sync background tasks may use at once.
MAX_THREADS = 40

_EXHAUSTED = object()


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="asgi-stream")


def is_async_callable(obj: Any) -> bool:
    """Whether calling ``obj`` gives a coroutine: an ``async def``, a
    ``functools.partial`` of one, or an object whose ``__call__`` is one.

    Whoever takes a function "sync or async" (endpoints, background tasks)
    asks this once, and runs a sync one with :func:`run_in_threadpool`.
    """
    while isinstance(obj, functools.partial):
        obj = obj.func
    call = obj.__call__ if callable(obj) else None
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(call)


async def run_in_threadpool(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``func(*args, **kwargs)`` in a worker thread and wait for its result."""
    return await asyncio.wrap_future(_executor().submit(func, *args, **kwargs))


def iterate_in_threadpool(iterator: Iterator[T]) -> AsyncIterator[T]:
    """Iterate a sync iterator from async code, every ``next()`` on one thread of its own.

    The thread starts with the first ``next()`` and ends after the iterator
    does. Every ``next()`` runs in one copy of the caller's context, so a
    contextvar the generator sets is still set at its next step. Closing the
    async iterator (``aclose()``) closes ``iterator`` too, started or not: on
    its thread, as soon as a ``next()`` still running there has returned.
    """
    return _InThread(iterator)


class _InThread(AsyncIterator[T]):
    __slots__ = ("_closed", "_context", "_iterator", "_thread")

    def __init__(self, iterator: Iterator[T]) -> None:
        self._iterator = iterator
        self._context = contextvars.copy_context()
        self._thread: ThreadPoolExecutor | None = None
        self._closed = False

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if self._thread is None:
            # One worker, first in first out: the thread of this iterator.
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="asgi-stream-iterator")
        item = await asyncio.wrap_future(self._thread.submit(self._context.run, self._next))
        if item is _EXHAUSTED:
            await self.aclose()
            raise StopAsyncIteration
        return cast(T, item)

    def _next(self) -> Any:
        return next(self._iterator, _EXHAUSTED)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._iterator, "close", None)
        if self._thread is None:
            if close is not None:
                close()  # never started: no thread, and nothing running
            return
        # Queued behind any next() still running: the generator is free by then.
        closed = self._thread.submit(self._context.run, close) if close is not None else None
        self._thread.shutdown(wait=False)  # the thread ends once its queue is done
        if closed is not None:
            # Shielded: a second cancellation (a shutdown's grace period running
            # out) may stop our wait, but never the close itself.
            await asyncio.shield(asyncio.wrap_future(closed))


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
