"""HEAD and set-up: acquire inside the generator, or release in a BackgroundTask.

Run it::

    uvicorn examples.head_safe_subscription:app

A ``GET`` route answers ``HEAD`` too, with the headers only, and a HEAD never
starts the stream's generator (an endless stream would otherwise run for
nobody). So whatever the *generator* releases in its ``finally`` must also be
acquired *in the generator*: set-up done in the endpoint's body, before the
response is returned, runs for a HEAD as well, and nothing would ever undo it.

Here a broadcaster hands each subscriber a queue of its own, and
``/status`` counts the subscribers. Try the three endpoints with
``curl -I`` (a HEAD), then with ``curl -N`` and Ctrl-C, and look at
``curl http://127.0.0.1:8000/status`` after each:

* ``/leaky``: subscribes in the endpoint's body and unsubscribes in the
  generator's ``finally``. Every HEAD leaves a subscriber behind, whose queue
  fills for ever. **Don't.**
* ``/ticks``: subscribes in the generator. A HEAD never subscribes; a GET
  unsubscribes however the stream ends.
* ``/ticks-background``: when the set-up must happen before the response (to
  refuse with a 503 when the broadcaster is full, say), subscribe in the body
  and unsubscribe in a :class:`~asgi_stream.BackgroundTask`, which runs after
  every response, HEAD included; the generator's ``finally`` then has nothing
  to release.

The ticks come every 0.5 s, times ``ASGI_STREAM_TICK`` (default 1.0).
"""

import asyncio
import os

from asgi_stream import BackgroundTask, HTTPException, Router, StreamingResponse

TICK = float(os.environ.get("ASGI_STREAM_TICK", "1.0"))
MAX_SUBSCRIBERS = 100


class Broadcaster:
    """Publishes ticks to every subscriber's queue."""

    def __init__(self):
        self.subscribers = set()
        self.task = None

    def subscribe(self):
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            raise HTTPException(503, "Too many subscribers", {"Retry-After": "1"})
        queue = asyncio.Queue(maxsize=100)
        self.subscribers.add(queue)
        if self.task is None:  # started with the first subscriber, on the server's loop
            self.task = asyncio.get_running_loop().create_task(self.publish())
        return queue

    def unsubscribe(self, queue):
        self.subscribers.discard(queue)

    async def publish(self):
        number = 0
        while True:
            await asyncio.sleep(0.5 * TICK)
            for queue in self.subscribers:
                if not queue.full():
                    queue.put_nowait(number)
            number += 1


broadcaster = Broadcaster()
app = Router()


async def forward(queue):
    """The events from one subscriber's queue."""
    while True:
        yield f"data: tick {await queue.get()}\n\n"


@app.get("/leaky")
async def leaky(request):
    queue = broadcaster.subscribe()  # runs for a HEAD too, and nothing undoes it

    async def events():
        try:
            async for event in forward(queue):
                yield event
        finally:
            broadcaster.unsubscribe(queue)  # never reached on HEAD

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/ticks")
async def ticks(request):
    async def events():
        queue = broadcaster.subscribe()  # only once the stream really starts
        try:
            async for event in forward(queue):
                yield event
        finally:
            broadcaster.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/ticks-background")
async def ticks_background(request):
    queue = broadcaster.subscribe()  # may refuse with a 503 before any header is sent
    return StreamingResponse(
        forward(queue),
        media_type="text/event-stream",
        background=BackgroundTask(broadcaster.unsubscribe, queue),  # after GET and HEAD alike
    )


@app.get("/status")
async def status(request):
    return {"subscribers": len(broadcaster.subscribers)}
