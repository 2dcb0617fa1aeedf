"""Coalescing: send in one message what the generator made while we were busy.

A server writes each ``http.response.body`` message with its own system call,
and wakes the client for each. A generator that produces faster than that (a
backlog replayed, rows computed in a loop) spends most of its time in those
calls. Joining chunks into fewer messages saves them, but joining must never
*delay* a chunk: one that could go out now must go out now, not wait for
company. (A :class:`~asgi_stream.response.StreamingResponse` comes here by
default once its generator has made 16 chunks without letting the event loop
run; with ``coalesce=True``, from the first chunk.)

So the generator runs in a task of its own, the *producer*, which appends
each chunk to a buffer. The response's task is the *consumer*: whenever it is
free to send, it takes everything in the buffer and sends it as one message.

* A generator that awaits between chunks (a sleep, a queue, a socket) finds
  the consumer idle every time: each chunk goes out alone, as soon as the
  consumer's task runs, one turn of the event loop after it was made.
* A generator that never awaits fills the buffer while the consumer waits
  for its turn or for a slow ``send()``. The producer stops at
  :data:`BATCH_ITEMS` chunks or :data:`BATCH_BYTES` bytes and waits for the
  consumer to take them, so one message stays small and the two tasks take
  turns with the event loop, which keeps serving everyone else.

Because the generator has its own task, everything it does with time and
cancellation is its own business: an ``asyncio.timeout()`` inside it cancels
the producer's await, never the consumer's ``send()``.

Endings: an exception from the generator is raised by the consumer after the
chunks made before it have been sent. Closing the coalescer (as the response
does when the client leaves) cancels the producer, which closes the
generator, so its ``finally`` runs at once; the coalescer returns only when
the producer has finished, so no task outlives the response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from .concurrency import close_iterator

__all__ = ["BATCH_BYTES", "BATCH_ITEMS", "coalesce_ready"]

#: The producer waits for the consumer once it holds this many chunks, or bytes.
BATCH_ITEMS = 64
BATCH_BYTES = 16 * 1024


class _Buffer:
    """What the producer has made and the consumer has not yet taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.finished = False  # the generator is exhausted, or failed
        self.failure: BaseException | None = None
        self.filled = asyncio.Event()  # something to take, or the end
        self.taken = asyncio.Event()  # the consumer emptied the buffer

    def take(self) -> bytes:
        chunk = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        self.taken.set()
        return chunk


async def _produce(
    items: AsyncIterator[Any], encode: Callable[[Any], bytes], buffer: _Buffer
) -> None:
    try:
        async for item in items:
            part = item if type(item) is bytes else encode(item)
            if not part:
                continue
            buffer.parts.append(part)
            buffer.size += len(part)
            buffer.filled.set()
            if len(buffer.parts) >= BATCH_ITEMS or buffer.size >= BATCH_BYTES:
                buffer.taken.clear()
                await buffer.taken.wait()
    except Exception as exc:  # the consumer raises it, after what came before
        buffer.failure = exc
    finally:
        buffer.finished = True
        buffer.filled.set()
        await close_iterator(items)


async def coalesce_ready(
    items: AsyncIterator[Any], encode: Callable[[Any], bytes]
) -> AsyncIterator[bytes]:
    """The items of ``items`` as bytes (``encode`` turns what is not ``bytes``
    into bytes), those made while the consumer was busy joined into one."""
    buffer = _Buffer()
    producer = asyncio.get_running_loop().create_task(_produce(items, encode, buffer))
    try:
        while True:
            if not buffer.parts and not buffer.finished:
                buffer.filled.clear()
                await buffer.filled.wait()
            if buffer.parts:
                yield buffer.take()
            elif buffer.failure is not None:
                raise buffer.failure
            else:
                return
    finally:
        producer.cancel()
        # asyncio.wait never raises, not even the producer's CancelledError.
        await asyncio.wait([producer])
