"""A Server-Sent Events response that a client can resume after a disconnect.

Theory of operation
===================

``EventSource`` remembers the ``id`` of the last event it received. When the
connection breaks, it waits ``retry`` milliseconds (the server may set it),
reconnects, and sends that ID in a ``Last-Event-ID`` header. Starlette,
sse-starlette and FastAPI ignore the header, so every event sent while the
client was away is lost. :class:`ResumableEventSourceResponse` answers it:

* Its events come from a stream of an :class:`~asgi_stream.eventlog.EventLog`,
  never from a generator that exists only in this connection, and each one is
  written with its log ID as ``id:``.
* With ``Last-Event-ID``, it subscribes to the log's stream from just after
  that ID: first the events the client missed, then new ones as they are
  appended, with no gap and no duplicate between them (see
  :mod:`asgi_stream.fanout`). The subscription is one more buffer on the
  process's one fan-out of the stream: it holds no connection of its own,
  even when the log is in Redis.
* Without one, a new subscriber starts where ``start`` says.
  ``start="beginning"``, the default, replays every event the log holds, then
  goes on live: that is what a client of a *job* wants (all of its progress,
  however late it looks), and it loses nothing. ``start="live"`` begins with
  the next event appended: what a ticker or a dashboard wants, where a late
  joiner has no use for the thousands of old values the log keeps for
  reconnecting clients. A reconnecting client resumes after its ID either way.
* When the log cannot resume after that ID (it is unknown, or was trimmed
  away), the response says so in a ``reset`` event whose data is JSON,
  ``{"reason": "trimmed" | "unknown", "last_event_id": ...}``, and carries on
  as a new subscriber would: from the oldest event the log still holds, or,
  with ``start="live"``, from the next one. The ``reset`` event has an
  *empty* ``id:``, which clears the browser's last event ID: if the connection
  breaks again before the next event, the browser reconnects without the
  header and starts afresh, which is consistent.
* A stream of finished work ends with a final event (``done``, say, named in
  ``final_events``). The response ends the body after sending it. The browser
  would then reconnect, and would be replayed nothing, forever; so a request
  whose ``Last-Event-ID`` *is* that final event is answered ``204 No
  Content``, which tells ``EventSource`` to stop reconnecting.
* ``retry`` (milliseconds) is sent first, in an event of its own, which the
  browser applies without dispatching anything.
* When the log cannot be reached (Redis is restarting:
  :class:`~asgi_stream.EventLogUnavailable`), the answer is still a
  ``200`` stream: a ``retry:`` field, and a clean end (:func:`~asgi_stream.retry_later`).
  ``EventSource`` takes a 5xx as final and stops for good; a stream that ends
  makes it reconnect, with its ``Last-Event-ID``, and lose nothing.
* A page cannot set ``Last-Event-ID``: ``EventSource`` sends it only on its
  own reconnections. A page that closed its ``EventSource`` (a Stop button, a
  reload) and opens a new one passes the last ID it saw as
  ``?last_event_id=`` instead, as sse-starlette's users and MDN suggest.
  :func:`last_event_id` reads either, the header first.

Everything else (encoding, disconnects, HEAD, background tasks) is inherited
from :class:`~asgi_stream.sse.EventSourceResponse`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Literal

from .background import BackgroundTask, BackgroundTasks
from .eventlog_base import EventIDNotFound, EventLog, EventLogUnavailable
from .headers import HeadersInput
from .request import Request
from .response import FIRST_CHUNK_WAIT, Response
from .sse import EventSourceResponse, ServerSentEvent
from .types import Receive, Scope, Send

__all__ = ["ResumableEventSourceResponse", "last_event_id", "retry_later"]

logger = logging.getLogger(__name__)

#: A longer ``Last-Event-ID`` cannot be one of ours; it is treated as unknown.
MAX_EVENT_ID_LENGTH = 128
#: The ``retry:`` (milliseconds) asked of a client while the log is unavailable, unless set.
UNAVAILABLE_RETRY_MS = 1000


def last_event_id(request: Request) -> str | None:
    """The ID that ``request`` resumes after: ``Last-Event-ID``, else ``?last_event_id=``.

    The header wins. After ``EventSource`` reconnects by itself, the header
    holds the last ID it received, while the URL still holds the older ID the
    page opened it with.
    """
    header = request.headers.get("last-event-id")
    return header or request.query_params.get("last_event_id") or None


class ResumableEventSourceResponse(EventSourceResponse):
    """Stream ``stream`` of ``log`` as SSE, resuming after ``last_event_id``.

    Pass the request's :func:`last_event_id` as ``last_event_id`` (``None``
    or ``""`` when absent). Without one, ``start`` says where to begin:
    ``"beginning"`` (the default: every event held, then live) or ``"live"``
    (the next event appended); see the module's docstring for which to choose.
    ``final_events`` is a collection of event types (``["done"]``; a lone
    ``str`` is a :class:`TypeError`). With ``idle_timeout`` (seconds), a
    stream that has had no event for that long ends cleanly: the browser
    reconnects with its ``Last-Event-ID``, and the endpoint gets to look at
    the stream again (the catalogue's jobs find a job whose worker died).

    ``ping``, ``ping_message_factory``, ``send_timeout`` and
    ``first_chunk_wait`` are :class:`~asgi_stream.EventSourceResponse`'s: a
    quiet feed behind a proxy wants ``ping=15`` or so, or the proxy's read
    timeout (nginx's ``proxy_read_timeout``, 60 s) cuts it.
    """

    def __init__(
        self,
        log: EventLog,
        stream: str,
        last_event_id: str | None = None,
        *,
        retry: int | None = None,
        final_events: Iterable[str] = (),
        start: Literal["beginning", "live"] = "beginning",
        idle_timeout: float | None = None,
        status_code: int = 200,
        headers: HeadersInput | None = None,
        background: BackgroundTask | BackgroundTasks | None = None,
        ping: float | None = None,
        ping_message_factory: Callable[[], ServerSentEvent] | None = None,
        send_timeout: float | None = None,
        first_chunk_wait: float = FIRST_CHUNK_WAIT,
    ) -> None:
        if start not in ("beginning", "live"):
            raise ValueError(f'start must be "beginning" or "live", not {start!r}')
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(
                f"idle_timeout must be a positive number of seconds, not {idle_timeout!r}"
            )
        self.idle_timeout = idle_timeout
        self.start = start
        self.log = log
        self.stream_name = stream
        self.last_event_id = last_event_id or None
        self.final_events = _event_names(final_events)
        if retry is not None:
            ServerSentEvent(retry=retry)  # validates it here, where it is wrong
        self._retry_ms = retry
        super().__init__(
            self._events(),
            status_code,
            headers,
            background=background,
            ping=ping,
            ping_message_factory=ping_message_factory,
            send_timeout=send_timeout,
            first_chunk_wait=first_chunk_wait,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            has_final_event = await self._client_has_final_event()
        except EventLogUnavailable as exc:
            self._mark_sent()
            await retry_later(self._retry_ms, exc, self.background)(scope, receive, send)
            return
        if has_final_event:
            self._mark_sent()  # single use, even when answered with a 204
            await Response(status_code=204, background=self.background)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _client_has_final_event(self) -> bool:
        if self.last_event_id is None or not self.final_events:
            return False
        last = await self.log.last(self.stream_name)
        return (
            last is not None and last.id == self.last_event_id and last.event in self.final_events
        )

    async def _events(self) -> AsyncIterator[ServerSentEvent | bytes]:
        if self._retry_ms is not None:
            yield ServerSentEvent(retry=self._retry_ms)
        after = self.last_event_id
        if after is not None and len(after) > MAX_EVENT_ID_LENGTH:
            yield _reset_event(EventIDNotFound(after[:MAX_EVENT_ID_LENGTH] + "...", trimmed=False))
            after = None
        while True:
            subscription = self.log.subscribe(
                self.stream_name, after, start=self.start, final_events=self.final_events
            )
            try:
                async with contextlib.aclosing(subscription):
                    while True:
                        try:
                            async with asyncio.timeout(self.idle_timeout):
                                chunk = await anext(subscription)
                        except StopAsyncIteration:
                            break
                        except TimeoutError:
                            break  # quiet for too long: a clean end, and the client comes back
                        yield chunk
                return
            except EventIDNotFound as exc:
                yield _reset_event(exc)
                after = None  # go on as a new subscriber would
            except EventLogUnavailable as exc:
                # Headers are sent: end cleanly, and the browser comes back after retry.
                logger.warning("%s: the client is asked to reconnect", exc)
                if self._retry_ms is None:
                    yield ServerSentEvent(retry=UNAVAILABLE_RETRY_MS)
                return


def retry_later(
    retry: int | None = None,
    reason: BaseException | None = None,
    background: BackgroundTask | BackgroundTasks | None = None,
) -> EventSourceResponse:
    """An SSE answer for "not now": a ``retry:`` field and a clean end.

    What to send when the event log is unavailable
    (:class:`~asgi_stream.EventLogUnavailable`).
    A 5xx would make a browser's ``EventSource`` give up for good; a ``200``
    stream that ends makes it reconnect after ``retry`` milliseconds
    (1,000 ms by default), with its ``Last-Event-ID``.
    """
    if reason is not None:
        logger.warning("%s: the client is asked to reconnect", reason)
    event = ServerSentEvent(retry=UNAVAILABLE_RETRY_MS if retry is None else retry)
    return EventSourceResponse([event], background=background)


def _event_names(names: Iterable[str]) -> frozenset[str]:
    """``final_events`` as a set; a lone ``str`` would be a set of its letters."""
    if isinstance(names, str | bytes):
        raise TypeError(f"final_events must be a collection of types (['done']), not {names!r}")
    found = frozenset(names)
    for name in found:
        if not isinstance(name, str):
            raise TypeError(f"final_events must hold str event types, not {type(name).__name__}")
    return found


def _reset_event(exc: EventIDNotFound) -> ServerSentEvent:
    reason = "trimmed" if exc.trimmed else "unknown"
    return ServerSentEvent.from_json(
        {"reason": reason, "last_event_id": exc.event_id}, event="reset", id=""
    )
