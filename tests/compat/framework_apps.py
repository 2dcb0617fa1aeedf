"""A FastAPI app and a Starlette app whose endpoints return asgi-stream's responses.

They adopt the library one piece at a time: the app, its routing and its
request stay the framework's; only the responses come from
``asgi_stream.starlette``. Both serve the same paths:

* ``/numbers``: a ``StreamingResponse`` of three lines.
* ``/events``: an ``EventSourceResponse`` of three events.
* ``/resumable``: a ``ResumableEventSourceResponse`` over an in-memory log
  that holds three events and a final ``done``.
* ``/endless``: an endless SSE stream (GET and HEAD).
* ``/record``: what the generators of ``/endless`` did: how many started,
  how many ran their ``finally``, and whether each one was stepped by one task.

``router_app`` is the other way round: our Router, with a Starlette app
mounted at ``/legacy`` whose endpoint reports its own ``url_for()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_stream import MemoryEventLog, Router
from asgi_stream.starlette import (
    EventSourceResponse,
    ResumableEventSourceResponse,
    StreamingResponse,
)

record: dict[str, Any] = {"started": 0, "finally": 0, "one_task": []}
log = MemoryEventLog()


async def numbers() -> AsyncIterator[str]:
    for n in range(3):
        yield f"{n}\n"
        await asyncio.sleep(0)


async def endless() -> AsyncIterator[dict[str, Any]]:
    record["started"] += 1
    tasks = set()
    try:
        n = 0
        while True:
            tasks.add(asyncio.current_task())
            yield {"data": n, "id": str(n)}
            n += 1
            await asyncio.sleep(0.02)
    finally:
        record["finally"] += 1
        record["one_task"].append(len(tasks) == 1)


async def resumable_response(last_event_id: str | None) -> ResumableEventSourceResponse:
    if not await log.exists("job"):
        for n in range(3):
            await log.append("job", str(n))
        await log.append("job", "finished", event="done")
    return ResumableEventSourceResponse(log, "job", last_event_id, final_events=["done"])


# FastAPI: the endpoints are annotated with our classes, which FastAPI must
# take for responses, not for response models.
fastapi_app = FastAPI()


@fastapi_app.get("/numbers")
async def fastapi_numbers() -> StreamingResponse:
    return StreamingResponse(numbers(), media_type="text/plain")


@fastapi_app.get("/events")
async def fastapi_events() -> EventSourceResponse:
    return EventSourceResponse(f"event {n}" for n in range(3))


@fastapi_app.get("/resumable")
async def fastapi_resumable(request: Request) -> ResumableEventSourceResponse:
    return await resumable_response(request.headers.get("last-event-id"))


@fastapi_app.api_route("/endless", methods=["GET", "HEAD"])
async def fastapi_endless() -> EventSourceResponse:
    return EventSourceResponse(endless())


@fastapi_app.get("/record")
async def fastapi_record() -> dict[str, Any]:
    return record


# Starlette: plain routes, its own JSONResponse next to ours.
async def starlette_numbers(request: Request) -> StreamingResponse:
    return StreamingResponse(numbers(), media_type="text/plain")


async def starlette_events(request: Request) -> EventSourceResponse:
    return EventSourceResponse(f"event {n}" for n in range(3))


async def starlette_resumable(request: Request) -> ResumableEventSourceResponse:
    return await resumable_response(request.headers.get("last-event-id"))


async def starlette_endless(request: Request) -> EventSourceResponse:
    return EventSourceResponse(endless())


async def starlette_record(request: Request) -> JSONResponse:
    return JSONResponse(record)


starlette_app = Starlette(
    routes=[
        Route("/numbers", starlette_numbers),
        Route("/events", starlette_events),
        Route("/resumable", starlette_resumable),
        Route("/endless", starlette_endless),
        Route("/record", starlette_record),
    ]
)


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"url": str(request.url_for("hello"))})


router_app = Router()
router_app.mount("/legacy", Starlette(routes=[Route("/hello", hello, name="hello")]))
