"""The candidates of the file benchmark (:mod:`benchmarks.files`): one file, three ways.

Each serves the file named by ``BENCH_FILE`` at any path. ``bare`` is the
floor: an ASGI callable that reads the file in chunks and sends each, with
nothing else (no ranges, no thread, no disconnect watch). ``asgi_stream``
is our :class:`~asgi_stream.FileResponse`; ``starlette`` is Starlette's
own ``FileResponse``, as its users write it. (nginx, the third, is not an
ASGI app: :mod:`benchmarks.files` runs it.)
"""

from __future__ import annotations

import os
from typing import Any

from starlette.responses import FileResponse as StarletteFileResponse

from asgi_stream import FileResponse

PATH = os.environ.get("BENCH_FILE", "")
CHUNK = 256 * 1024


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size = os.stat(PATH).st_size
    headers = [(b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    with open(PATH, "rb") as file:  # noqa: ASYNC230 (the floor: nothing but the loop)
        while chunk := file.read(CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def asgi_stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await FileResponse(PATH)(scope, receive, send)


async def starlette(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await StarletteFileResponse(PATH)(scope, receive, send)
