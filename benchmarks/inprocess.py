"""A stream's cost per event without a server: ``python3 -m benchmarks.inprocess``.

On a server, a stream's CPU time per event is the server's write plus the
response's own loop, and the write is most of it. To see the loop alone, this
runs each way of sending a stream against a ``send()`` that does nothing, on
the event loop uvicorn would choose (uvloop), and divides the process's CPU
time by the number of events. The generator awaits (``asyncio.sleep(0)``)
before every event, as real ones await a queue or a socket, so every
suspension travels from the generator up to its task and back; that is where
the frames between them cost.

A server calls an application through a few coroutines of its own, its
middleware's and the router's, so every candidate here runs under
:data:`FRAMES` coroutines that only ``await`` the next, as on a server:

``bare loop``
    One ``send()`` per event and no generator: the floor.
``generator, server's task``
    The same loop iterating a generator, in the task that called the app:
    each suspension of the generator travels through every frame above it.
``generator, task of its own``
    The same loop in a task of its own, started by the app: one frame.
``starlette``, ``asgi-stream``
    The frameworks' ``StreamingResponse`` (asgi-stream steps the generator
    in its body task).

Rounds are interleaved and each figure is the median of its rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import starlette.responses
from uvicorn.loops.auto import auto_loop_factory

from asgi_stream import StreamingResponse
from asgi_stream.types import Message

from .apps import event_bytes_awaiting

#: Coroutines between the server's task and the application, as on a server.
FRAMES = 4
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "path": "/stream",
    "raw_path": b"/stream",
    "query_string": b"",
    "headers": [],
}

Stream = Callable[[int], Awaitable[None]]


async def send(message: Message) -> None:
    """A server's ``send()`` that costs nothing."""


async def receive() -> Message:
    """A client that never leaves."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def bare_loop(n: int) -> None:
    for i in range(n):
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True})


async def generator_loop(n: int) -> None:
    async for chunk in event_bytes_awaiting(n):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def generator_own_task(n: int) -> None:
    await asyncio.get_running_loop().create_task(generator_loop(n))


async def starlette_stream(n: int) -> None:
    response = starlette.responses.StreamingResponse(event_bytes_awaiting(n))
    await response(SCOPE, receive, send)


async def asgi_stream(n: int) -> None:
    await StreamingResponse(event_bytes_awaiting(n))(SCOPE, receive, send)


CANDIDATES: dict[str, Stream] = {
    "bare loop": bare_loop,
    "generator, server's task": generator_loop,
    "generator, task of its own": generator_own_task,
    "starlette": starlette_stream,
    "asgi-stream": asgi_stream,
}


async def under_frames(depth: int, stream: Stream, n: int) -> None:
    """``stream(n)`` called through ``depth`` coroutines, as a server calls an app."""
    if depth == 0:
        await stream(n)
    else:
        await under_frames(depth - 1, stream, n)


async def cpu_us_per_event(stream: Stream, n: int) -> float:
    started = time.process_time()
    await under_frames(FRAMES, stream, n)
    return (time.process_time() - started) / n * 1e6


async def measure(events: int, rounds: int) -> dict[str, Any]:
    for stream in CANDIDATES.values():  # warm up
        await cpu_us_per_event(stream, min(events, 10_000))
    found: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for _ in range(rounds):
        for name, stream in CANDIDATES.items():
            found[name].append(await cpu_us_per_event(stream, events))
    return {name: statistics.median(values) for name, values in found.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.inprocess", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    # The event loop uvicorn would run: uvloop where it is installed (the bench extra).
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        loop = type(runner.get_loop())
        medians = runner.run(measure(args.events, args.rounds))
    print(
        f"{args.events:,} events from a generator that awaits, a send() that does nothing, "
        f"{FRAMES} frames above the app, {loop.__module__}.{loop.__qualname__}; "
        f"median of {args.rounds} rounds:"
    )
    floor = medians["bare loop"]
    for name, value in medians.items():
        print(f"  {name:<28} {value:5.2f} µs CPU per event  ({value / floor:.2f} x bare loop)")


if __name__ == "__main__":
    main()
