"""An app for the scale-out tests: publish to, and follow, streams of one event log.

Served by real servers, any number of them, on any loopback address; the log
is the one ``ASGI_STREAM_EVENT_LOG`` names (a Redis URL in these tests), so
every process shares it:

* ``POST /publish?stream=S&data=D[&event=E]``: appends one event; ``{"id":
  ...}``, or 503 with ``Retry-After`` while Redis cannot be reached.
* ``GET /events?stream=S``: the stream over resumable SSE from its first
  event (``Last-Event-ID`` resumes), ending after an event of type ``done``;
  ``retry: 100``, so that a browser comes back quickly. The ``x-worker``
  header is the serving process's ID.
* ``GET /_stats``: this process's open subscriptions, disconnected ones and tasks.
* ``GET /page?stream=S``: a page whose ``EventSource`` follows the stream and
  lists the data it receives in ``window.received``.
"""

from __future__ import annotations

import asyncio
import json
import os

from asgi_stream import (
    EventLogUnavailable,
    JSONResponse,
    Request,
    Response,
    ResumableEventSourceResponse,
    Router,
    last_event_id,
    open_event_log,
)

log = open_event_log(os.environ.get("ASGI_STREAM_EVENT_LOG"))

PAGE = """<!doctype html><meta charset="utf-8"><title>follow</title><body><script>
window.received = [];
window.opens = 0;
const source = new EventSource("events?stream=" + STREAM);
source.onopen = () => { window.opens += 1; };
source.onmessage = (e) => { window.received.push(e.data); };
source.addEventListener("done", () => { window.done = true; source.close(); });
document.body.dataset.ready = "1";
</script></body>"""


async def publish(request: Request) -> JSONResponse:
    query = request.query_params
    try:
        event_id = await log.append(query["stream"], query["data"], query.get("event"))
    except EventLogUnavailable as exc:
        return JSONResponse({"error": str(exc)}, 503, {"retry-after": "1"})
    return JSONResponse({"id": event_id})


async def events(request: Request) -> ResumableEventSourceResponse:
    return ResumableEventSourceResponse(
        log,
        request.query_params["stream"],
        last_event_id(request),
        retry=100,
        final_events=["done"],
        headers={"x-worker": str(os.getpid())},
    )


async def stats(request: Request) -> JSONResponse:
    tasks = len(asyncio.all_tasks())
    return JSONResponse(
        {"subscribers": log.subscribers, "disconnected": log.disconnected, "tasks": tasks}
    )


async def page(request: Request) -> Response:
    stream = json.dumps(request.query_params["stream"])
    html = PAGE.replace("STREAM", stream)
    return Response(html, media_type="text/html; charset=utf-8")


app = Router(on_shutdown=[log.aclose])
app.add("/publish", publish, ("POST",))
app.add("/events", events)
app.add("/_stats", stats)
app.add("/page", page)
