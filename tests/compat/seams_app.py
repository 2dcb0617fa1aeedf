"""A FastAPI app that puts our responses where users put them (issue 24).

* ``/upload``: a generator reads the upload with ``request.stream()`` and
  sends its length and SHA-256 (the app has ``KeepRequestBody``).
* ``/feed/{name}``: an SSE stream whose generator raises FastAPI's
  ``HTTPException(403)`` before its first event, unless the name is
  ``public``.
* ``/boom``: a generator that raises before its first event (a JSON 500).
* ``/numbers``: twenty lines of text, behind Starlette's ``GZipMiddleware``
  (which compresses it for a client that asks).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from starlette.middleware.gzip import GZipMiddleware

from asgi_stream import KeepRequestBody
from asgi_stream.starlette import EventSourceResponse, StreamingResponse

app = FastAPI()
app.add_middleware(GZipMiddleware, minimum_size=10)
app.add_middleware(KeepRequestBody, max_body_size=16 * 1024 * 1024)


async def digest(request: Request) -> AsyncIterator[str]:
    sha, size = hashlib.sha256(), 0
    async for chunk in request.stream():
        sha.update(chunk)
        size += len(chunk)
    yield f"{size} {sha.hexdigest()}\n"


@app.post("/upload")
async def upload(request: Request) -> StreamingResponse:
    return StreamingResponse(digest(request), media_type="text/plain")


@app.get("/feed/{name}")
async def feed(name: str) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, str]]:
        if name != "public":
            raise HTTPException(403, "not your feed", headers={"X-Reason": "policy"})
        yield {"data": "hello"}

    return EventSourceResponse(events())


@app.get("/boom")
async def boom() -> EventSourceResponse:
    async def events() -> AsyncIterator[str]:
        raise RuntimeError("the feed broke before it began")
        yield "never"

    return EventSourceResponse(events())


@app.get("/numbers")
async def numbers() -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        for n in range(20):
            yield f"line {n}\n"

    return StreamingResponse(lines(), media_type="text/plain")
