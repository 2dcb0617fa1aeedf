"""What a thread per sync stream costs: ``python3 -m benchmarks.sync_thread``.

:func:`asgi_stream.concurrency.iterate_in_threadpool` runs every ``next()`` of
one sync iterator on a thread of its own (see :mod:`asgi_stream.concurrency`).
The alternative it replaced hands each ``next()`` to whichever thread of a
shared pool is free, which breaks generators that hold a thread-bound resource
such as a sqlite3 connection. This script measures both, in one process:

* **per item**: one stream of many tiny items, so the thread hop dominates;
* **per stream**: many streams of one item each, so starting (and ending)
  the stream's thread dominates.

Each figure is the best of a few rounds, in microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgi_stream.concurrency import iterate_in_threadpool

ITEMS = 20_000
STREAMS = 2_000
ROUNDS = 5

_POOL = ThreadPoolExecutor(max_workers=40)
_DONE = object()


async def shared_pool(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    """The replaced way: each next() on any thread of a shared pool."""
    while (item := await asyncio.wrap_future(_POOL.submit(next, iterator, _DONE))) is not _DONE:
        yield item


async def drain(iterate: Callable[[Iterator[Any]], AsyncIterator[Any]], items: int) -> None:
    async for _ in iterate(iter(range(items))):
        pass


async def per_item(iterate: Callable[[Iterator[Any]], AsyncIterator[Any]]) -> float:
    started = time.perf_counter()
    await drain(iterate, ITEMS)
    return (time.perf_counter() - started) / ITEMS * 1e6


async def per_stream(iterate: Callable[[Iterator[Any]], AsyncIterator[Any]]) -> float:
    started = time.perf_counter()
    for _ in range(STREAMS):
        await drain(iterate, 1)
    return (time.perf_counter() - started) / STREAMS * 1e6


async def main() -> None:
    ways = {"thread per stream": iterate_in_threadpool, "shared pool": shared_pool}
    print(f"{'':20} {'per item (µs)':>14} {'per stream (µs)':>16}")
    for name, iterate in ways.items():
        item = min([await per_item(iterate) for _ in range(ROUNDS)])
        stream = min([await per_stream(iterate) for _ in range(ROUNDS)])
        print(f"{name:20} {item:14.1f} {stream:16.1f}")


if __name__ == "__main__":
    asyncio.run(main())
