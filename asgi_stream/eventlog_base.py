"""What every event log is: the :class:`EventLog` interface and the types it shares.

The event-log modules import in one direction only, from the bottom up:

* :mod:`asgi_stream.sse_format` encodes an event, and imports nothing of the package;
* :mod:`asgi_stream.broadcast` is the fan-out in one process (``Frame``,
  ``Broadcast``, ``Subscription``); :mod:`asgi_stream.fanout` builds one
  stream's fan-out of a log on it (``StreamFanout``, ``LogSubscription``),
  and declares what a subscription asks of its log (``SubscriptionSource``);
* :mod:`asgi_stream.eventlog_base` (this module) is the interface, which
  answers what a subscription asks;
* :mod:`asgi_stream.redis_streams` implements what every Redis log shares
  on it, and imports this module alone of the three;
  :mod:`asgi_stream.redis_eventlog` (one Redis) and
  :mod:`asgi_stream.redis_cluster_eventlog` (a Redis Cluster) build on that,
  neither on the other;
* :mod:`asgi_stream.eventlog` adds the in-memory log, and
  :func:`~asgi_stream.open_event_log`, which opens either one from a URL: it
  imports a Redis module inside the function, only when a URL names Redis
  (and ``redis`` itself is imported only when a Redis log is made).

Every call goes down that list, through public names: a subscription reaches
its log through ``fanout.SubscriptionSource``'s methods,
which :class:`EventLog` implements, and a log reaches its subscribers through
their fan-out's.

Users need not import any of them: every public name is importable from
:mod:`asgi_stream`; :mod:`asgi_stream.eventlog`'s docstring explains how a log
works.
"""

from __future__ import annotations

import abc
import asyncio
import re
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from typing import Literal

from .broadcast import Frame
from .fanout import LogSubscription, StreamFanout
from .sse_format import ServerSentEvent, check_event_type

__all__ = ["Event", "EventIDNotFound", "EventLog", "EventLogUnavailable"]

#: How many events each stream keeps, unless told otherwise.
DEFAULT_MAXLEN = 10_000
#: How many events a subscriber may have waiting before it is disconnected.
DEFAULT_MAX_PENDING = 256

#: Shared by every subscription without final events (a frozenset each is 216 bytes).
_NO_FINAL_EVENTS: frozenset[str] = frozenset()
_MAX_STREAM_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a stream: the ID the log gave it, its data, its SSE type."""

    id: str
    data: str
    event: str | None = None


class EventIDNotFound(LookupError):
    """The log cannot resume a reader after ``event_id``.

    ``trimmed`` is true when the ID is older than every event the stream still
    holds (events after it may have been lost), false when the ID is unknown.
    """

    def __init__(self, event_id: str, trimmed: bool) -> None:
        self.event_id = event_id
        self.trimmed = trimmed
        what = "was trimmed from the log" if trimmed else "is unknown"
        super().__init__(f"event ID {event_id!r} {what}")


class EventLogUnavailable(ConnectionError):
    """The log's storage cannot be reached now (Redis is down or restarting); try again later.

    A fault of the moment, not of the request: a response answers it with
    something a client retries, never a 500.
    """


class EventLog(abc.ABC):
    """Named, bounded, append-only streams of events; see :mod:`asgi_stream.eventlog`.

    ``max_pending`` bounds each subscriber's buffer (see :meth:`subscribe`).
    """

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if type(max_pending) is not int or max_pending < 1:
            raise ValueError(f"max_pending must be an int of at least 1, not {max_pending!r}")
        self.max_pending = max_pending
        #: Subscribers disconnected for falling ``max_pending`` events behind.
        self.disconnected = 0
        # Per stream with subscribers in this process, its fan-out (see asgi_stream.fanout).
        self._fanouts: dict[str, StreamFanout] = {}
        # The event loop the log serves now (see _bind_loop).
        self._loop: asyncio.AbstractEventLoop | None = None

    def _bind_loop(self) -> None:
        """Serve the running event loop; start afresh if the last one has ended.

        Waiters, tasks and connections belong to the loop that made them. A
        log made at module level outlives each loop that uses it (one
        ``asyncio.run()`` or one test client per test), so when a new loop
        comes, whatever the old one held is dropped (its subscribers ended
        with it) and made again here. Two loops *at once* (threads) cannot
        share one log: that is refused.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not in a loop yet: the first await binds it
        old = self._loop
        if loop is old:
            return
        if old is not None and old.is_running():
            raise RuntimeError(
                "this event log serves one event loop at a time, and another loop that "
                "uses it is still running: open one log per event loop (in the app's "
                "lifespan, or one per thread)"
            )
        self._loop = loop
        if old is not None:
            # The old loop's subscribers ended with their tasks: forget them, unwoken.
            self._fanouts.clear()
        self._new_loop(loop)

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open in this process, over every stream."""
        return sum(fanout.subscribers for fanout in self._fanouts.values())

    def subscribe(
        self,
        stream: str,
        after: str | None = None,
        *,
        start: Literal["beginning", "live"] = "beginning",
        final_events: Iterable[str] = (),
    ) -> LogSubscription:
        """Follow ``stream``: an async iterator of its events, encoded for SSE, with their IDs.

        With ``after``, the events after that ID, then the live ones; without
        it, every event held (``start="beginning"``) or the next one appended
        (``start="live"``) onwards. It ends after an event whose type is in
        ``final_events``, when it falls more than ``max_pending`` events behind
        (``.dropped`` is then true: resume after the last ID received), or when
        the log is closed. See :mod:`asgi_stream.fanout` for how it joins the
        process's one fan-out of the stream without a gap or a duplicate.
        Close it (``aclose()``) when done.
        """
        self.check_stream(stream)
        if start not in ("beginning", "live"):
            raise ValueError(f'start must be "beginning" or "live", not {start!r}')
        self._bind_loop()
        fanout = self._fanouts.get(stream)
        if fanout is None:
            fanout = self._fanouts[stream] = StreamFanout(self.max_pending)
        finals = frozenset(final_events) if final_events else _NO_FINAL_EVENTS
        subscription = LogSubscription(self, stream, fanout, after, start, finals)
        fanout.attach(subscription)
        self._join(subscription)
        return subscription

    async def read(self, stream: str, after: str | None = None) -> AsyncGenerator[Event, None]:
        """The events after ``after`` (all held ones if ``None``), then new ones, forever.

        Raises :class:`EventIDNotFound` when ``after`` cannot be resumed, or
        when the reader falls so far behind that events after its position
        were trimmed. An async generator: close it (``contextlib.aclosing``)
        when done. Built on :meth:`subscribe`: a reader too slow for its buffer
        resubscribes after the last event it gave out, so it loses nothing.
        """
        while True:
            subscription = self.subscribe(stream, after)
            try:
                while True:
                    try:
                        frames = await subscription.next_frames()
                    except StopAsyncIteration:
                        break
                    for frame in frames:
                        assert frame.id is not None  # a log's frames all have one
                        after = frame.id
                        yield Event(frame.id, frame.data, frame.event)
            finally:
                subscription.end()
            if not subscription.dropped:
                return  # the log was closed

    def _deliver(self, stream: str, frame: Frame) -> None:
        """Hand a new event of ``stream`` to its local subscribers, if it has any."""
        fanout = self._fanouts.get(stream)
        if fanout is not None:
            fanout.deliver(frame)

    # What a subscription asks of its log (asgi_stream.fanout.SubscriptionSource).

    def leave(self, subscription: LogSubscription) -> None:
        """Forget ``subscription``, which ended; and its stream, if it was the last one."""
        stream = subscription.stream
        fanout = self._fanouts.get(stream)
        if fanout is not None and not fanout.subscribers:
            del self._fanouts[stream]
            self._forget_stream(stream)

    async def wait_live_from(self, subscription: LogSubscription) -> None:  # noqa: B027 - a hook
        """Return once ``subscription.live_from`` is set (or it ended).

        A backend whose fan-out knows where it stands at once sets it in
        :meth:`_join`, and needs nothing here; the Redis log asks its reader.
        """

    @abc.abstractmethod
    async def replay_page(
        self, stream: str, after: str | None, upto: str, check: bool
    ) -> list[Frame]:
        """A page of the events after ``after`` (the oldest held if ``None``), up to ``upto``.

        With ``check``, first raise :class:`EventIDNotFound` unless ``after``
        can be resumed. Raises it too when events right after ``after`` were
        trimmed.
        """

    @staticmethod
    @abc.abstractmethod
    def position(event_id: str) -> tuple[int, int]:
        """A valid ID of this log as numbers that order the events of one stream."""

    # The backends' hooks.

    def _close_fanouts(self) -> None:
        """End every subscription, after what it holds (at :meth:`aclose`)."""
        for fanout in list(self._fanouts.values()):
            fanout.close()

    def _new_loop(self, loop: asyncio.AbstractEventLoop) -> None:  # noqa: B027 - a hook
        """``loop`` serves the log from now on: the first, or one after another has ended."""

    def _join(self, subscription: LogSubscription) -> None:  # noqa: B027 - a hook
        """Set ``subscription.live_from`` now if the backend can (see :mod:`asgi_stream.fanout`)."""

    def _forget_stream(self, stream: str) -> None:  # noqa: B027 - a hook
        """The last local subscriber of ``stream`` left."""

    @abc.abstractmethod
    async def append(self, stream: str, data: str, event: str | None = None) -> str:
        """Add an event at the end of ``stream`` (created if needed); its ID.

        Raises :class:`TypeError` or :class:`ValueError`, and stores nothing,
        when :meth:`check_stream` or :meth:`check_event` refuses the arguments.
        """

    @abc.abstractmethod
    async def exists(self, stream: str) -> bool:
        """Whether anything was ever appended to ``stream`` (and it has not expired)."""

    @abc.abstractmethod
    async def last(self, stream: str) -> Event | None:
        """The newest event of ``stream``, or ``None`` when it has none."""

    @abc.abstractmethod
    async def expire(self, stream: str, seconds: float) -> None:
        """Forget ``stream`` entirely ``seconds`` from now."""

    @staticmethod
    def check_stream(stream: str) -> None:
        """Refuse a stream name that is not 1 to 200 characters of text without controls.

        Names end up in Redis keys, URLs and log lines, where a line break or
        an escape sequence has no business. Every backend calls this in
        :meth:`append` and :meth:`read`.
        """
        if not isinstance(stream, str):
            raise TypeError(f"a stream name must be str, not {type(stream).__name__}")
        if not 0 < len(stream) <= _MAX_STREAM_NAME or _CONTROL.search(stream):
            raise ValueError(
                f"a stream name must be 1 to {_MAX_STREAM_NAME} characters without "
                f"control characters: {stream[:_MAX_STREAM_NAME]!r}"
            )
        _check_utf8("stream name", stream)

    @staticmethod
    def check_event(data: str, event: str | None = None) -> None:
        """Refuse what could not be sent as one SSE event.

        An event that is stored once is sent to every reader that resumes from
        before it, on every reconnection: if it could not be sent, it would stop
        all of them, for ever (a "poison pill"). So ``data`` must be a ``str``,
        ``event`` follow :class:`~asgi_stream.sse.ServerSentEvent`'s rules (no
        CR or LF), and both be encodable as UTF-8 (no lone surrogate). Every
        backend calls this in :meth:`append`, and a backend whose storage other
        programs can write checks what it reads in the same way.
        """
        if not isinstance(data, str):
            raise TypeError(f"event data must be str, not {type(data).__name__}")
        check_event_type(event)
        _check_utf8("event data", data)
        if event is not None:
            _check_utf8("event type", event)

    async def aclose(self) -> None:
        """End every subscription and release connections. The log is not used afterwards."""
        self._close_fanouts()


def _check_utf8(what: str, text: str) -> None:
    if text.isascii():  # the common case, and an O(1) check: CPython knows it already
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not UTF-8 text (it holds a lone surrogate)") from None


def make_frame(event_id: str, data: str, event: str | None, position: tuple[int, int]) -> Frame:
    """The frame of one event of a log: encoded once, with its ID, for every subscriber."""
    wire = ServerSentEvent(data, event, event_id).encode()
    return Frame(wire, event_id, data, event, position)
