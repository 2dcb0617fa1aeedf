"""Generators that lean on the rule "one task steps a generator, first step to last".

Each generator sets a contextvar, makes a burst of :data:`BURST` chunks without
awaiting (enough to make the response start joining them), then awaits longer
than a timeout that spans all those ``yield``\\ s. The timeout must fire in the
generator's own task and be caught inside the generator, which then sends an
``error`` event, resets its contextvar and sends a ``done`` event whose data
says how many tasks stepped it ("1 task" is the only right answer).

The same generators run in-process (``tests/library/test_one_task.py``) and
under uvicorn and hypercorn: ``GET /burst/{kind}/{guard}``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from asgi_stream import (
    EventSourceResponse,
    JSONResponse,
    MemoryEventLog,
    ResumableEventSourceResponse,
    Router,
    ServerSentEvent,
    StreamingResponse,
    gzip_response,
    timeout_each,
)

#: Chunks made at once, before the long await: more than the 16 that switch
#: the default response to joining.
BURST = 40
#: The timeout that spans the burst and the await.
TIMEOUT = 0.2
#: How long the generator would wait without its timeout.
WAIT = 60.0

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("one_task_var", default="unset")

Make = Callable[[str, str | None], Any]


class Steps:
    """The tasks that stepped a generator."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any] | None] = set()

    def note(self) -> None:
        self.tasks.add(asyncio.current_task())

    def verdict(self) -> str:
        return f"{len(self.tasks)} task" + ("" if len(self.tasks) == 1 else "s")


async def with_asyncio_timeout(make: Make) -> AsyncIterator[Any]:
    steps = Steps()
    token = VAR.set("set by the generator")
    try:
        async with asyncio.timeout(TIMEOUT):
            for i in range(BURST):
                steps.note()
                yield make(str(i), None)
            await asyncio.sleep(WAIT)
    except TimeoutError:
        steps.note()
        yield make("timed out", "error")
    VAR.reset(token)  # a ValueError if the generator changed context
    steps.note()
    yield make(steps.verdict(), "done")


async def with_anyio_fail_after(make: Make) -> AsyncIterator[Any]:
    steps = Steps()
    token = VAR.set("set by the generator")
    try:
        with anyio.fail_after(TIMEOUT):
            for i in range(BURST):
                steps.note()
                yield make(str(i), None)
            await asyncio.sleep(WAIT)
    except TimeoutError:
        steps.note()
        yield make("timed out", "error")
    VAR.reset(token)
    steps.note()
    yield make(steps.verdict(), "done")


async def with_anyio_cancel_scope(make: Make) -> AsyncIterator[Any]:
    steps = Steps()
    token = VAR.set("set by the generator")
    with anyio.CancelScope(deadline=anyio.current_time() + TIMEOUT) as scope:
        for i in range(BURST):
            steps.note()
            yield make(str(i), None)
        await asyncio.sleep(WAIT)
    if scope.cancelled_caught:
        steps.note()
        yield make("timed out", "error")
    VAR.reset(token)
    steps.note()
    yield make(steps.verdict(), "done")


async def with_contextvar_only(make: Make) -> AsyncIterator[Any]:
    steps = Steps()
    token = VAR.set("set by the generator")
    for i in range(BURST):
        steps.note()
        yield make(str(i), None)
    await asyncio.sleep(TIMEOUT)
    if VAR.get() != "set by the generator":
        yield make(f"the contextvar reads {VAR.get()!r}", "error")
    else:
        yield make("timed out", "error")  # what the others send: one check for all
    VAR.reset(token)
    steps.note()
    yield make(steps.verdict(), "done")


GUARDS = {
    "asyncio.timeout": with_asyncio_timeout,
    "anyio.fail_after": with_anyio_fail_after,
    "anyio.CancelScope": with_anyio_cancel_scope,
    "contextvar": with_contextvar_only,
}


def encoded(data: str, event: str | None) -> bytes:
    return ServerSentEvent(data, event=event).encode()


def as_event(data: str, event: str | None) -> ServerSentEvent:
    return ServerSentEvent(data, event=event)


async def resumable() -> ResumableEventSourceResponse:
    """A resumable stream that replays :data:`BURST` events at once, then waits for
    more under its own ``idle_timeout``, which must end it cleanly."""
    log = MemoryEventLog()
    for i in range(BURST):
        await log.append("s", str(i))
    return ResumableEventSourceResponse(log, "s", idle_timeout=TIMEOUT)


def response(kind: str, guard: str) -> StreamingResponse:
    """The response of kind ``kind`` streaming the generator ``guard``."""
    generate = GUARDS[guard]
    if kind.startswith("sse"):
        ping = 0.02 if kind == "sse-ping" else None
        return EventSourceResponse(generate(as_event), ping=ping)
    if kind == "timeout_each":  # a stream helper around the generator, with a longer bound
        return EventSourceResponse(timeout_each(generate(as_event), 10 * TIMEOUT))
    if kind == "gzip":  # compressed, and pinged, through the one compressor
        return gzip_response(EventSourceResponse(generate(as_event), ping=0.02), "gzip")
    coalesce = {"streaming": None, "streaming-joined": True, "streaming-direct": False}[kind]
    return StreamingResponse(generate(encoded), media_type="text/event-stream", coalesce=coalesce)


KINDS = [
    "streaming",
    "streaming-joined",
    "streaming-direct",
    "sse",
    "sse-ping",
    "timeout_each",
    "gzip",
]

app = Router()


@app.get("/spin-empty/{coalesce}")
async def spin_empty(request: Any) -> StreamingResponse:
    """An endless stream of empty chunks from a generator that never awaits."""

    async def spin() -> AsyncIterator[bytes]:
        while True:
            yield b""

    coalesce = {"default": None, "joined": True, "direct": False}[request.path_params["coalesce"]]
    return StreamingResponse(spin(), coalesce=coalesce)


@app.get("/hello")
async def hello(request: Any) -> JSONResponse:
    return JSONResponse({"hello": "world"})


@app.get("/resumable")
async def resumable_endpoint(request: Any) -> StreamingResponse:
    return await resumable()


@app.get("/burst/{kind}/{guard}")
async def burst(request: Any) -> StreamingResponse:
    return response(request.path_params["kind"], request.path_params["guard"])
