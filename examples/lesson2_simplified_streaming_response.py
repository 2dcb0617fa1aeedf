"""Lesson 2: the tutorial's "simplified StreamingResponse" (section 3.1), and what it gets wrong.

Run it::

    uvicorn examples.lesson2_simplified_streaming_response:app

It serves four paths (any other path gets ``/stream``). The first works; the
next two break in the ways that matter in production, and the last one shows
the damage:

* ``curl -N http://127.0.0.1:8000/stream``: five events from a generator of
  ``str``, 0.5 s apart. This is all the class was written for.
* ``curl -N http://127.0.0.1:8000/bytes``: a generator of ``bytes``, which is
  what most real sources (files, gzip, other services) produce. The class
  calls ``chunk.encode()`` on every chunk, and bytes have no ``encode``: an
  ``AttributeError`` *after* the headers have gone out. uvicorn logs the
  traceback and closes the connection in the middle of the chunked body, so
  curl reports "transfer closed with outstanding read data remaining" (httpx:
  ``RemoteProtocolError``). The status was already 200; nothing can change it.
* ``curl -N http://127.0.0.1:8000/endless``, then press Ctrl-C. The generator
  produces a line every 0.1 s forever, like the tutorial's ``/logs``. The class
  never calls ``receive()``, so it never hears ``http.disconnect``; the server
  silently drops what is sent to a closed connection, so nothing fails either.
  The loop keeps running for nobody, and because the class never closes the
  generator, its ``finally`` never runs.
* ``curl http://127.0.0.1:8000/status`` shows it: ``running`` counts the
  endless generators still going, ``finished`` those whose ``finally`` ran.
  After one Ctrl-C you will see ``{"running": 1, "finished": 0}``, and the
  count grows by one with every client that leaves.
* Now stop the server with Ctrl-C. uvicorn says "Waiting for background tasks
  to complete" and waits, forever by default, for the generators nobody
  reads; a second Ctrl-C (or ``--timeout-graceful-shutdown``) forces it.

Lesson 3 runs the same experiment on asgi-stream's ``StreamingResponse``.
The class is the tutorial's, unchanged. The delays are scaled by
``ASGI_STREAM_TICK`` (default 1.0).
"""

import asyncio
import json
import os

TICK = float(os.environ.get("ASGI_STREAM_TICK", "1.0"))


class StreamingResponse:
    def __init__(self, content, media_type=None):
        self.content = content
        self.media_type = media_type

    async def __call__(self, scope, receive, send):
        """ASGI 应用接口"""
        # 1. 发送响应头
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    [b"content-type", self.media_type.encode()],
                ],
            }
        )

        # 2. 流式发送响应体
        async for chunk in self.content:
            await send(
                {
                    "type": "http.response.body",
                    "body": chunk.encode(),
                    "more_body": True,  # 还有更多数据
                }
            )

        # 3. 发送结束信号
        await send(
            {
                "type": "http.response.body",
                "body": b"",
                "more_body": False,  # 没有更多数据
            }
        )


# What happened to the endless generators: the experiment's result.
generators = {"running": 0, "finished": 0}


async def events():
    for i in range(5):
        yield f"data: {i}\n\n"
        await asyncio.sleep(0.5 * TICK)


async def events_as_bytes():
    for i in range(5):
        yield f"data: {i}\n\n".encode()
        await asyncio.sleep(0.5 * TICK)


async def endless():
    generators["running"] += 1
    try:
        i = 0
        while True:
            yield f"data: line {i}\n\n"
            i += 1
            await asyncio.sleep(0.1 * TICK)
    finally:
        generators["running"] -= 1
        generators["finished"] += 1


async def status():
    yield json.dumps(generators)


ROUTES = {
    "/stream": lambda: StreamingResponse(events(), media_type="text/event-stream"),
    "/bytes": lambda: StreamingResponse(events_as_bytes(), media_type="text/event-stream"),
    "/endless": lambda: StreamingResponse(endless(), media_type="text/event-stream"),
    "/status": lambda: StreamingResponse(status(), media_type="application/json"),
}


async def app(scope, receive, send):
    """Pick a response by path; a response is itself an ASGI application."""
    if scope["type"] != "http":
        return
    make_response = ROUTES.get(scope["path"], ROUTES["/stream"])
    await make_response()(scope, receive, send)
