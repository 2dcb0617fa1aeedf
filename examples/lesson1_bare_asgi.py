"""Lesson 1: a stream with nothing but ASGI (the tutorial's section 3.2).

Run it, and watch the five events arrive one by one::

    uvicorn examples.lesson1_bare_asgi:app
    curl -N http://127.0.0.1:8000/

What to look at:

* The whole application is one function. The server calls it with the
  ``scope`` (what was asked), ``receive`` and ``send``; no framework is
  involved. It answers every path and every method the same way.
* ``curl -v`` shows ``transfer-encoding: chunked``: there is no
  ``Content-Length``, because the length is not known when the headers go out.
  Each ``send()`` of a body with ``more_body: True`` becomes one chunk, written
  the moment it is sent; the final ``more_body: False`` becomes the empty chunk
  that ends the body.
* Watch it message by message through the tracer (``asgi_stream/tracer.py``)::

      asgi-stream serve --app examples.lesson1_bare_asgi:app --trace

  The server also calls the application once, at startup, with a
  ``lifespan`` scope. This one ignores it and returns at once; uvicorn takes
  that to mean there is nothing to set up, and prints "Application startup
  complete" all the same.

The code is the tutorial's, with the ``asyncio`` import it forgot. The delay is
0.5 s times ``ASGI_STREAM_TICK`` (default 1.0), so tests can run it quickly.
"""

import asyncio
import os

TICK = float(os.environ.get("ASGI_STREAM_TICK", "1.0"))


async def app(scope, receive, send):
    """ASGI 应用"""
    if scope["type"] == "http":
        # 发送响应头 (send the status line and headers)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [[b"content-type", b"text/event-stream"]],
            }
        )

        # 流式发送数据 (send the body, one piece at a time)
        for i in range(5):
            await asyncio.sleep(0.5 * TICK)
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {i}\n\n".encode(),
                    "more_body": True,
                }
            )

        # 结束响应 (end the body)
        await send(
            {
                "type": "http.response.body",
                "body": b"",
                "more_body": False,
            }
        )
