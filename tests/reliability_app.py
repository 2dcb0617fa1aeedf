"""The catalogue, plus the endpoints the reliability tests need to hold, flood and break it.

Served by a real server (``asgi-stream serve --app tests.reliability_app:app``),
it adds to the catalogue:

* ``/endless`` and ``/endless-sync``: endless streams (an async generator, and
  a sync one, which runs in the worker threads). Each prints ``finally ran``
  when its ``finally`` block runs, so a test can count the cleanups in the
  server's output even after the server has exited.
* ``/flood?mb=N&send_timeout=S``: N MiB in 64 KiB chunks as fast as the
  server takes them, with an optional send timeout; prints how much it had
  produced when it ends.
* ``/explode``: a stream whose generator raises after three chunks.
* ``/headers?pairs=JSON``: a response with the given ``[name, value]`` header
  pairs, or 400 when :mod:`asgi_stream.headers` refuses them.
* ``POST /echo``: the upload streamed back upper-cased, read by the generator
  while the response is sent.
* ``/_stats``: what a leak would show, seen from inside the process: asyncio
  tasks, threads, open file descriptors, resident memory, open streams,
  and the bytes the floods have produced.

The stats endpoint is here, in a test app, and not in the catalogue: a
production app has no business telling every client how it is doing inside.
The module raises its open-files limit to the hard limit when imported, so
that a worker can hold thousands of connections.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator

from asgi_stream import EventSourceResponse, JSONResponse, Response, StreamingResponse
from asgi_stream.catalogue import create_app
from asgi_stream.request import Request
from asgi_stream.tools.process import open_fds, raise_open_files_limit, rss_kib

CHUNK = b"x" * (64 * 1024)

raise_open_files_limit()

app = create_app()
open_streams = 0
produced = 0  # bytes the /flood generators have made, in all


def report(line: str) -> None:
    # One write per line, so that lines never mix.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def interval_of(request: Request) -> float:
    return float(request.query_params.get("interval") or "0.2")


@app.get("/endless")
async def endless(request: Request) -> EventSourceResponse:
    interval = interval_of(request)

    async def generate() -> AsyncIterator[str]:
        global open_streams
        open_streams += 1
        try:
            number = 0
            while True:
                yield str(number)
                number += 1
                await asyncio.sleep(interval)
        finally:
            open_streams -= 1
            report("finally ran")

    return EventSourceResponse(generate())


@app.get("/endless-sync")
async def endless_sync(request: Request) -> EventSourceResponse:
    interval = interval_of(request)

    def generate() -> Iterator[str]:
        try:
            number = 0
            while True:
                yield str(number)
                number += 1
                time.sleep(interval)
        finally:
            report("finally ran")

    return EventSourceResponse(generate())


@app.get("/flood")
async def flood(request: Request) -> StreamingResponse:
    total = int(float(request.query_params.get("mb") or "100") * 1024 * 1024)
    timeout = request.query_params.get("send_timeout")

    async def generate() -> AsyncIterator[bytes]:
        global produced
        made = 0
        try:
            while made < total:
                made += len(CHUNK)
                produced += len(CHUNK)
                yield CHUNK
        finally:
            report(f"flood finally ran, produced {made}")

    return StreamingResponse(
        generate(),
        media_type="application/octet-stream",
        send_timeout=None if timeout is None else float(timeout),
    )


@app.get("/explode")
async def explode(request: Request) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        for number in range(3):
            yield f"chunk {number}\n".encode()
            await asyncio.sleep(0.01)
        raise RuntimeError("the generator failed after the headers")

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/headers")
async def headers(request: Request) -> Response:
    pairs = json.loads(request.query_params.get("pairs") or "[]")
    try:
        return Response(b"body", headers=[tuple(pair) for pair in pairs], media_type="text/plain")
    except ValueError:
        return JSONResponse({"detail": "refused"}, 400)


@app.post("/echo")
async def echo(request: Request) -> StreamingResponse:
    async def upper() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk.upper()

    return StreamingResponse(upper(), media_type="text/plain")


@app.get("/_stats")
async def stats(request: Request) -> JSONResponse:
    pid = os.getpid()
    return JSONResponse(
        {
            "tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
            "fds": open_fds(pid),
            "rss_kib": rss_kib(pid),
            "open_streams": open_streams,
            "produced": produced,
        }
    )
