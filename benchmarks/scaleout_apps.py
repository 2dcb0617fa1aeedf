"""The candidates of the scale-out fan-out benchmark (:mod:`benchmarks.scaleout`).

Each is an ASGI app with ``/subscribe`` (an SSE stream of every event
published from now on) and ``/publish?seconds=S&rate=R`` (``R`` timestamps a
second for ``S`` seconds, :func:`benchmarks.apps.publish`, the measurement's
own loop: only its last call, the publish itself, is the candidate's),
served by two processes. The Redis candidates share ``BENCH_REDIS_URL``: an
event published through either process must reach the subscribers of both.

Ours, and the floors they are measured against:

* ``asgi-stream redis``: the event log on Redis, one shared reader per
  process; each subscriber is ``log.subscribe(stream, start="live")`` sent
  by an :class:`~asgi_stream.EventSourceResponse`.
* ``asgi-stream memory``: :class:`~asgi_stream.Broadcast` in memory: it
  cannot cross processes, so the benchmark publishes through each.
* ``bare``: :data:`benchmarks.apps.bare`, raw ASGI with a queue per
  subscriber and no library: what the server itself costs per subscriber.
  In memory too.
* ``bare redis``: the same raw ASGI fan-out fed by Redis with no library: per
  process, one task in an ``XREAD BLOCK`` on the stream, ``XADD`` to publish,
  and the bytes of each event put in every subscriber's queue. The floor of
  any fan-out on Redis, which ``asgi-stream redis`` is measured against.

The rivals run their own code, as their users write it, and nothing of
asgi-stream:

* ``broadcaster redis``: encode/broadcaster 0.3 on Redis (pub/sub, one
  connection per process). Its README serves it from a Starlette app (it is
  Starlette's authors' library), and the SSE response of Starlette's world is
  sse-starlette's ``EventSourceResponse``, fed by an async generator of
  ``{"data": ...}`` dicts, as sse-starlette's README shows; so here a
  Starlette app with one route, whose generator is ``async with
  broadcaster.subscribe(channel)`` and ``async for event in subscriber``. The
  two work-arounds of broadcaster 0.3.1 bugs it needs to deliver every event
  are done once, at startup (see the comment in :func:`make_broadcaster_redis`).
* ``litestar redis streams``: a Litestar app with ``ChannelsPlugin`` on its
  Redis Streams backend (defaults: ``XREAD`` blocks 1 ms), whose handler
  returns a ``litestar.response.ServerSentEvent`` over ``async with
  channels.start_subscription(...)`` and ``subscriber.iter_events()``: what
  Litestar's reference shows for SSE, and how its maintainers answer "channels
  over SSE".

A fan-out engine fed to a hand-written sender is what the bare candidates
measure; the rivals are measured as whole, as a user deploys them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from asgi_stream import Broadcast, EventSourceResponse, open_event_log
from asgi_stream.types import Receive, Scope, Send

from .apps import SSE_HEADERS, Hub, bare, publish, raw_app, serve_lifespan, sse_bytes  # noqa: F401 - bare

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL = "bench"


async def no_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def with_lifespan(app: Any, startup: Any, shutdown: Any) -> Any:
    """``app`` with ``startup()`` and ``shutdown()`` awaited around it by the lifespan."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def hooked_receive() -> Any:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await startup()
            elif message["type"] == "lifespan.shutdown":
                await shutdown()
            return message

        await serve_lifespan(hooked_receive, send)

    return wrapped


# -- asgi-stream, memory: the floor --------------------------------------------------------------

MEMORY = Broadcast(max_pending=10_000)


async def memory_subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    await EventSourceResponse(MEMORY.subscribe())(scope, receive, send)


asgi_stream_memory = raw_app(no_stream, no_stream, memory_subscribe, MEMORY.publish)

# -- asgi-stream, Redis --------------------------------------------------------------------------

LOG = open_event_log(REDIS_URL, max_pending=10_000) if "redis" in REDIS_URL else None


async def log_subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    assert LOG is not None
    subscription = LOG.subscribe(CHANNEL, start="live")
    await EventSourceResponse(subscription)(scope, receive, send)


async def log_publish(data: str) -> None:
    assert LOG is not None
    await LOG.append(CHANNEL, data)


async def nothing() -> None:
    pass


async def close_log() -> None:
    if LOG is not None:
        await LOG.aclose()


asgi_stream_redis = with_lifespan(
    raw_app(no_stream, no_stream, log_subscribe, log_publish), nothing, close_log
)

# -- encode/broadcaster on Redis: a Starlette app with sse-starlette ----------------------------
#
# The rivals are built when first asked for (the module's __getattr__), so that
# this module imports without broadcaster and Litestar installed.


def with_publisher(app: Any, broadcast: Any) -> Any:
    """``app`` behind the benchmark's own ``/publish`` (:func:`benchmarks.apps.publish`).

    The publisher is the measurement's machinery, the same loop for every
    candidate; only its last call, ``broadcast(text)``, is the rival's.
    Everything else, lifespan included, is ``app``'s.
    """

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/publish":
            await publish(scope, receive, send, broadcast)
        else:
            await app(scope, receive, send)

    return dispatch


def make_broadcaster_redis() -> Any:
    from broadcaster import Broadcast as Broadcaster
    from sse_starlette import EventSourceResponse as SSEStarletteResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    broadcaster = Broadcaster(REDIS_URL)

    async def events() -> AsyncIterator[dict[str, str]]:
        async with broadcaster.subscribe(channel=CHANNEL) as subscriber:
            async for event in subscriber:
                yield {"data": event.message}

    async def subscribe(request: Request) -> SSEStarletteResponse:
        return SSEStarletteResponse(events())

    async def drain(subscriber: Any) -> None:
        async for _ in subscriber:
            pass

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Two work-arounds of broadcaster 0.3.1, the only changes made to it here,
        # both done once at startup by holding one subscription of the channel:
        # * with redis-py 8, its listener wakes when the first SUBSCRIBE is *sent*,
        #   finds nothing subscribed yet, stops and waits for a flag that nobody
        #   sets again, so no event ever arrives: set the flag again once subscribed;
        # * the clients that join while the channel's first SUBSCRIBE is on its way
        #   each replace the channel's set of queues, and all but the last of them
        #   never get an event: the held subscription is that first one.
        async with broadcaster, broadcaster.subscribe(channel=CHANNEL) as held:
            broadcaster._backend._ready.set()
            draining = asyncio.get_running_loop().create_task(drain(held))
            yield
            draining.cancel()

    app = Starlette(routes=[Route("/subscribe", subscribe)], lifespan=lifespan)

    async def publish_one(data: str) -> None:
        await broadcaster.publish(channel=CHANNEL, message=data)

    return with_publisher(app, publish_one)


# -- Litestar channels, Redis Streams backend: a Litestar app ------------------------------------


def make_litestar_redis_streams() -> Any:
    from litestar import Litestar, get
    from litestar.channels import ChannelsPlugin
    from litestar.channels.backends.redis import RedisChannelsStreamBackend
    from litestar.response import ServerSentEvent as LitestarServerSentEvent
    from redis.asyncio import Redis

    backend = RedisChannelsStreamBackend(history=100, redis=Redis.from_url(REDIS_URL))
    plugin = ChannelsPlugin(backend=backend, channels=[CHANNEL])

    @get("/subscribe", signature_namespace={"LitestarServerSentEvent": LitestarServerSentEvent})
    async def subscribe(channels: ChannelsPlugin) -> LitestarServerSentEvent:
        async def events() -> AsyncIterator[bytes]:
            async with channels.start_subscription([CHANNEL]) as subscriber:
                async for event in subscriber.iter_events():
                    yield event

        return LitestarServerSentEvent(events())

    app = Litestar([subscribe], plugins=[plugin])

    async def publish_one(data: str) -> None:
        await plugin.wait_published(data, CHANNEL)

    return with_publisher(app, publish_one)


# -- bare ASGI on Redis: the floor on Redis ------------------------------------------------------


def make_bare_redis() -> Any:
    from redis.asyncio import Redis

    key = "bench-bare:" + CHANNEL
    hub = Hub(sse_bytes)
    publisher = Redis.from_url(REDIS_URL)
    tasks: list[asyncio.Task[None]] = []

    async def read_forever() -> None:
        reader = Redis.from_url(REDIS_URL, decode_responses=True)
        cursor = "$"
        while True:
            try:
                reply = await reader.xread({key: cursor}, count=500, block=5000)
            except Exception as exc:  # a floor that stops reading would measure nothing
                print(f"bare redis reader: {exc!r}; reading again", file=sys.stderr)
                await asyncio.sleep(0.05)
                continue
            for _, entries in reply:
                for entry_id, fields in entries:
                    cursor = entry_id
                    hub.publish(fields["data"])

    async def subscribe(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        with hub.subscription() as queue:
            while True:
                await send(
                    {"type": "http.response.body", "body": await queue.get(), "more_body": True}
                )

    async def publish(data: str) -> None:
        await publisher.xadd(key, {"data": data}, maxlen=10_000, approximate=True)

    async def start() -> None:
        tasks.append(asyncio.get_running_loop().create_task(read_forever()))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await publisher.aclose()

    return with_lifespan(raw_app(no_stream, no_stream, subscribe, publish), start, stop)


_RIVALS = {
    "bare_redis": make_bare_redis,
    "broadcaster_redis": make_broadcaster_redis,
    "litestar_redis_streams": make_litestar_redis_streams,
}


def __getattr__(name: str) -> Any:
    if name in _RIVALS:
        app = globals()[name] = _RIVALS[name]()
        return app
    raise AttributeError(name)


#: name -> (attribute of this module, whether events cross processes through Redis)
CANDIDATES = {
    "bare ASGI (the server's own cost)": ("bare", False),
    "bare ASGI redis (the floor on Redis)": ("bare_redis", True),
    "asgi-stream memory (floor)": ("asgi_stream_memory", False),
    "asgi-stream redis": ("asgi_stream_redis", True),
    # The same app; its BENCH_REDIS_URL names a Redis Cluster (see benchmarks.scaleout).
    "asgi-stream redis cluster": ("asgi_stream_redis", True),
    "broadcaster redis": ("broadcaster_redis", True),
    "litestar redis streams": ("litestar_redis_streams", True),
}
