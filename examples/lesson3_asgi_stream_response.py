"""Lesson 3: the same experiment on asgi-stream's own ``StreamingResponse``.

Run it::

    uvicorn examples.lesson3_asgi_stream_response:app

The paths are lesson 2's, and so are the generators; only the response class
(and a router, to get 404s) changed. Try the same three things:

* ``curl -N http://127.0.0.1:8000/stream``: the same five events. The
  ``Content-Type`` now says ``text/event-stream; charset=utf-8``, because the
  class encodes ``str`` chunks as UTF-8 and says so.
* ``curl -N http://127.0.0.1:8000/bytes``: works. ``bytes`` go to the wire
  untouched; only ``str`` is encoded. The body ends with the empty chunk.
* ``curl -N http://127.0.0.1:8000/endless``, Ctrl-C, then
  ``curl http://127.0.0.1:8000/status``: ``{"running":0,"finished":1}``.
  While it streams, the response also waits on ``receive()``; the
  ``http.disconnect`` that comes when the client leaves cancels the stream, and
  the response closes the generator at once, so its ``finally`` runs then, not
  at some later garbage collection.

How it does that, and every other way a stream can end, is the subject of
``asgi_stream/response.py``: read its opening section next. To see the
``receive()`` that lesson 2 never made, run this lesson through the tracer::

    asgi-stream serve --app examples.lesson3_asgi_stream_response:app --trace

and compare the ``receive http.disconnect`` line after a Ctrl-C with lesson 2's
silence. The delays are scaled by ``ASGI_STREAM_TICK`` (default 1.0).
"""

from asgi_stream import JSONResponse, Router, StreamingResponse
from examples.lesson2_simplified_streaming_response import (
    endless,
    events,
    events_as_bytes,
    generators,
)

app = Router()


@app.get("/stream")
async def stream(request):
    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/bytes")
async def stream_bytes(request):
    return StreamingResponse(events_as_bytes(), media_type="text/event-stream")


@app.get("/endless")
async def stream_endless(request):
    return StreamingResponse(endless(), media_type="text/event-stream")


@app.get("/status")
async def status(request):
    return JSONResponse(generators)
