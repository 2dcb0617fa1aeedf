"""The generator catalogue: the tutorial's fifteen endpoints, served by asgi-stream.

The tutorial this project grew from teaches FastAPI's ``StreamingResponse``
through fifteen small endpoints. This module serves the same fifteen from our
own :class:`~asgi_stream.routing.Router` and responses, with the same bytes on
the wire, except where the tutorial is wrong (the README's "The catalogue"
lists each difference). Run it with::

    uvicorn asgi_stream.catalogue:app          # or: hypercorn asgi_stream.catalogue:app

:func:`create_app` builds the app from :class:`Settings`; the module-level
``app`` reads them from the environment (``ASGI_STREAM_TICK`` and friends, see
:meth:`Settings.from_env`).

**Time.** Every delay is the tutorial's times a *tick* (1.0 is the
tutorial's pace; tests use 0.005). A request may override it with
``?tick=FLOAT``, clamped to [0.001, 10], so a demo page can slow a stream down
to watch it, or speed it up.

**Events.** Each endpoint sends what the tutorial's ``yield f"data: ..."``
sends, but builds it with :class:`~asgi_stream.sse.ServerSentEvent`, which
encodes text with line breaks as one ``data:`` line per line. Where the
tutorial pasted text after ``data:`` unencoded (chat tokens, log lines), a
newline in the text would have broken the event, or forged a new one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import traceback
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from ..compression import gzip_response
from ..concurrency import close_iterator
from ..request import Request
from ..response import JSONResponse, StreamingResponse
from ..routing import Router
from ..sse import EventSourceResponse, ServerSentEvent
from ..streams import batched, timeout_each
from ..types import Receive, Scope, Send
from . import demo, downloads, jobs
from .accesslog import AccessLog
from .chat import LocalChatModel, chunk_text, load_chat_model
from .logfollow import follow
from .params import query_bool, query_str, validation_error
from .tutorial import Tutorial
from .wire import Wire, background, watch_generator

__all__ = ["MAX_TICK", "MIN_TICK", "Settings", "app", "create_app"]

logger = logging.getLogger("asgi_stream.catalogue")

#: The range a ``?tick=`` query parameter is clamped to.
MIN_TICK = 0.001
MAX_TICK = 10.0

# The log follower polls every 0.1 tick, but never more often than this.
_MIN_POLL = 0.005


@dataclass(frozen=True)
class Settings:
    """What a user of the catalogue can choose.

    ``tick`` scales every delay (1.0 is the tutorial's pace). ``log_file`` is
    the file ``/logs`` follows; without one, the app writes its own access log
    and follows that. ``chat_model`` is the model of ``/chat-stream``: any
    object with LangChain's ``astream()``, or its ``"module:attribute"`` name;
    ``None`` is the local model of :mod:`asgi_stream.catalogue.chat`. ``debug`` lets
    ``/stream-robust`` send a traceback to the client. ``event_log`` names the
    event store of the jobs endpoints (``"memory"``, a ``redis://`` or a
    ``redis+cluster://`` URL).
    """

    tick: float = 1.0
    log_file: str | None = None
    chat_model: Any = None
    debug: bool = False
    event_log: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tick) and self.tick > 0):
            raise ValueError(f"tick must be a positive number, not {self.tick!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from ``ASGI_STREAM_TICK``, ``ASGI_STREAM_LOG_FILE``,
        ``ASGI_STREAM_CHAT_MODEL``, ``ASGI_STREAM_DEBUG`` (``1`` or ``0``) and
        ``ASGI_STREAM_EVENT_LOG``. Server worker processes get their settings
        this way, from the command line that started them."""
        raw_tick = environ.get("ASGI_STREAM_TICK") or "1.0"
        try:
            tick = float(raw_tick)
        except ValueError:
            raise ValueError(f"ASGI_STREAM_TICK must be a number, not {raw_tick!r}") from None
        return cls(
            tick=tick,
            log_file=environ.get("ASGI_STREAM_LOG_FILE") or None,
            chat_model=environ.get("ASGI_STREAM_CHAT_MODEL") or None,
            debug=environ.get("ASGI_STREAM_DEBUG", "0").strip().lower() in {"1", "true", "yes"},
            event_log=environ.get("ASGI_STREAM_EVENT_LOG") or None,
        )


class CatalogueRouter(Router):
    """A router that writes an access log, when it has one, and traces the
    requests of a page that watches the wire (:mod:`~asgi_stream.catalogue.wire`)."""

    def __init__(self, access_log: AccessLog | None) -> None:
        super().__init__()
        self.access_log = access_log
        if access_log is not None:  # the file lives from startup to shutdown
            self.on_startup.append(access_log.open)
            self.on_shutdown.append(access_log.close)
        self.wire = Wire()

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.access_log is not None:
            send = self.access_log.watch(scope, send)
        await self.wire.serve(scope, receive, send, super().handle_http)


def create_app(settings: Settings | None = None) -> Router:
    """The catalogue app, configured by ``settings`` (default: the environment)."""
    settings = settings or Settings.from_env()
    router = CatalogueRouter(AccessLog() if settings.log_file is None else None)
    Catalogue(settings, router.access_log).install(router)
    # Other parts of the app install their routes below, one line each.
    demo.install(router)
    jobs.install(router, settings)
    downloads.install(router)
    router.wire.install(router)
    Tutorial().install(router)
    return router


def _event(data: str, event: str | None = None) -> bytes:
    """One event, as the bytes the tutorial's f-strings send."""
    return ServerSentEvent(data=data, event=event).encode()


def _event_stream(content: AsyncIterator[bytes], **kwargs: Any) -> StreamingResponse:
    """The tutorial's ``StreamingResponse(content, media_type="text/event-stream")``;
    a page that watches the wire sees the generator's end."""
    return StreamingResponse(watch_generator(content), media_type="text/event-stream", **kwargs)


def _cleanup(path: str) -> None:
    """The tutorial's background task (it printed 清理资源, "cleaning up")."""
    logger.info("清理资源: cleanup after %s", path)


def _robust_step(i: int) -> None:
    """The work of step ``i`` of ``/stream-robust``; step 5 fails validation."""
    if i == 5:
        raise ValueError("数据验证失败")


async def _timed_step(i: int, tick: float) -> None:
    """The work of step ``i`` of ``/stream-timeout``: 0.5 s, within its 1.0 s."""
    await asyncio.sleep(0.5 * tick)


class Catalogue:
    """The fifteen endpoints and ``/settings``; each method is one endpoint."""

    def __init__(self, settings: Settings, access_log: AccessLog | None) -> None:
        self.settings = settings
        self.access_log = access_log
        model = settings.chat_model
        self.chat_model = load_chat_model(model) if isinstance(model, str) else model

    def install(self, router: Router) -> None:
        for path, endpoint in [
            ("/stream", self.stream),
            ("/stream-full", self.stream_full),
            ("/normal", self.normal),
            ("/stream-headers", self.stream_headers),
            ("/stream-background", self.stream_background),
            ("/conditional-stream", self.conditional_stream),
            ("/stream-error", self.stream_error),
            ("/stream-robust", self.stream_robust),
            ("/stream-timeout", self.stream_timeout),
            ("/stream-buffered", self.stream_buffered),
            ("/stream-heartbeat", self.stream_heartbeat),
            ("/stream-compressed", self.stream_compressed),
            ("/progress", self.progress),
            ("/logs", self.logs),
            ("/settings", self.get_settings),
        ]:
            router.add(path, endpoint)
        router.add("/chat-stream", self.chat_stream, ["POST"])

    def tick(self, request: Request) -> float:
        """This request's tick: ``?tick=`` (clamped), else the setting."""
        raw = request.query_params.get("tick")
        if raw is None:
            return self.settings.tick
        try:
            value = float(raw)
        except ValueError:
            raise validation_error(
                "query",
                "tick",
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
                raw,
            ) from None
        if not math.isfinite(value):
            raise validation_error(
                "query", "tick", "finite_number", "Input should be a finite number", raw
            )
        return min(max(value, MIN_TICK), MAX_TICK)

    async def get_settings(self, request: Request) -> JSONResponse:
        return JSONResponse({"tick": self.settings.tick, "tick_override": True})

    # §1.1, §1.2, §4.1, §4.2: five events, 0.5 s apart, with different headers.

    async def _five_events(self, tick: float) -> AsyncIterator[bytes]:
        for i in range(5):
            yield _event(str(i))
            await asyncio.sleep(0.5 * tick)

    async def stream(self, request: Request) -> StreamingResponse:
        return _event_stream(self._five_events(self.tick(request)))

    async def stream_full(self, request: Request) -> StreamingResponse:
        return _event_stream(
            self._five_events(self.tick(request)),
            headers={"Cache-Control": "no-cache", "X-Custom-Header": "value"},
            background=background(_cleanup, request.path),
        )

    async def stream_headers(self, request: Request) -> StreamingResponse:
        # The tutorial also sets "Connection: keep-alive": connection-specific,
        # forbidden in HTTP/2, and the server's to send, so not ours.
        return EventSourceResponse(
            watch_generator(self._five_events(self.tick(request))),
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                "Access-Control-Allow-Origin": "*",
            },
        )

    async def stream_background(self, request: Request) -> StreamingResponse:
        return _event_stream(
            self._five_events(self.tick(request)),
            background=background(_cleanup, request.path),
        )

    # §2.1, §4.3: compute everything first, then answer.

    async def _five_items(self, tick: float) -> list[int]:
        data = []
        for i in range(5):
            await asyncio.sleep(0.5 * tick)
            data.append(i)
        return data

    async def normal(self, request: Request) -> JSONResponse:
        return JSONResponse({"data": await self._five_items(self.tick(request))})

    async def conditional_stream(self, request: Request) -> Any:
        tick = self.tick(request)
        stream = query_bool(request, "stream", False)
        data = await self._five_items(tick)
        if not stream:
            return JSONResponse({"data": data})

        async def generate() -> AsyncIterator[bytes]:
            for item in data:
                yield _event(str(item))

        return _event_stream(generate())

    # §5: errors become events.

    async def stream_error(self, request: Request) -> StreamingResponse:
        tick = self.tick(request)

        async def generate() -> AsyncIterator[bytes]:
            try:
                for i in range(10):
                    if i == 5:
                        raise RuntimeError("模拟错误")  # the tutorial's simulated failure
                    yield _event(str(i))
                    await asyncio.sleep(0.5 * tick)
            except RuntimeError as exc:
                error = {"error": str(exc), "code": "GENERATION_ERROR"}
                yield _event(json.dumps(error), event="error")

        return _event_stream(generate())

    async def stream_robust(self, request: Request) -> StreamingResponse:
        tick = self.tick(request)
        debug = self.settings.debug

        async def generate() -> AsyncIterator[bytes]:
            try:
                yield _event(json.dumps({"status": "started"}), event="init")
                for i in range(10):
                    _robust_step(i)
                    yield _event(json.dumps({"id": i, "message": f"Message {i}"}))
                    await asyncio.sleep(0.5 * tick)
                yield _event(json.dumps({"status": "completed"}), event="done")
            except ValueError as exc:  # a business error: the client may retry
                error = {"error": str(exc), "code": "VALIDATION_ERROR", "recoverable": True}
                yield _event(json.dumps(error), event="error")
            except Exception as exc:  # a bug: details go to the server log, not the client
                logger.exception("/stream-robust failed")
                error = {
                    "error": "Internal Server Error",
                    "code": "SYSTEM_ERROR",
                    "recoverable": False,
                }
                if debug:
                    error["error"] = str(exc)
                    error["traceback"] = traceback.format_exc()
                yield _event(json.dumps(error), event="error")
            finally:
                logger.info("清理资源: cleanup after %s", request.path)

        return _event_stream(generate())

    async def stream_timeout(self, request: Request) -> StreamingResponse:
        tick = self.tick(request)

        async def steps() -> AsyncIterator[int]:
            for i in range(10):
                await _timed_step(i, tick)
                yield i

        async def generate() -> AsyncIterator[bytes]:
            try:
                async with aclosing(timeout_each(steps(), 1.0 * tick)) as results:
                    async for i in results:
                        yield _event(str(i))
            except TimeoutError:
                yield _event("Timeout", event="error")

        return _event_stream(generate())

    # §6: batching, heartbeat, compression.

    async def stream_buffered(self, request: Request) -> StreamingResponse:
        tick = self.tick(request)

        async def messages() -> AsyncIterator[str]:
            for i in range(100):
                yield f"Message {i}"
                await asyncio.sleep(0.01 * tick)

        async def generate() -> AsyncIterator[bytes]:
            async with aclosing(batched(messages(), 10)) as batches:
                async for batch in batches:
                    yield _event(json.dumps(batch))

        return _event_stream(generate())

    async def stream_heartbeat(self, request: Request) -> StreamingResponse:
        tick = self.tick(request)

        async def numbers() -> AsyncIterator[bytes]:
            for i in range(100):
                yield _event(str(i))
                await asyncio.sleep(1.0 * tick)

        # The heartbeat is a timer beside the generator: sent whenever the
        # stream has been silent for 30 s, whatever the generator is doing.
        return _event_stream(numbers(), ping=30.0 * tick)

    async def stream_compressed(self, request: Request) -> StreamingResponse:
        tick = self.tick(request)

        async def generate() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield _event("x" * 1000)
                await asyncio.sleep(0.5 * tick)

        accept_encoding = ", ".join(request.headers.getlist("accept-encoding"))
        return gzip_response(_event_stream(generate()), accept_encoding)

    # §7: a chat model, a progress bar, a log file.

    async def chat_stream(self, request: Request) -> StreamingResponse:
        await request.body()  # unused, but read within the size limit (413 beyond)
        message = query_str(request, "message")
        tick = self.tick(request)
        model = self.chat_model or LocalChatModel(delay=0.05 * tick)
        debug = self.settings.debug

        async def generate() -> AsyncIterator[bytes]:
            chunks = model.astream(message)
            try:
                async for chunk in chunks:
                    text = chunk_text(chunk)
                    if text:
                        yield _event(text)
            except Exception as exc:
                # The model's own message may hold a key or an internal address:
                # the server log has it, the client only in debug mode.
                logger.warning("the chat model failed: %r", exc)
                yield _event(str(exc) if debug else "The chat model failed", event="error")
            finally:
                await close_iterator(chunks)

        return _event_stream(generate())

    async def progress(self, request: Request) -> StreamingResponse:
        tick = self.tick(request)

        async def generate() -> AsyncIterator[bytes]:
            total = 100
            for i in range(total + 1):
                await asyncio.sleep(0.1 * tick)
                progress = {
                    "current": i,
                    "total": total,
                    "percentage": i / total * 100,
                    "message": f"Processing {i}/{total}",
                }
                yield _event(json.dumps(progress))
            yield _event("Completed", event="done")

        return _event_stream(generate())

    async def logs(self, request: Request) -> StreamingResponse:
        poll_interval = max(0.1 * self.tick(request), _MIN_POLL)
        path = self.settings.log_file or (self.access_log.path if self.access_log else None)

        async def generate() -> AsyncIterator[bytes]:
            try:
                if path is None:
                    raise FileNotFoundError("no log file")
                async with aclosing(follow(path, poll_interval)) as lines:
                    async for line in lines:
                        yield _event(line)
            except FileNotFoundError:
                yield _event("Log file not found", event="error")

        # The headers go at once: every error here is an event, and the
        # request's own access-log line (written as its headers go out) must
        # come before the point where the follower starts reading.
        return _event_stream(generate(), first_chunk_wait=0)


app = create_app()
