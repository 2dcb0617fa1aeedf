"""An event log: named streams of events that a reader can resume.

Theory of operation
===================

A browser's ``EventSource`` reconnects by itself when a stream breaks, and
sends back the ``id`` of the last event it received in a ``Last-Event-ID``
header. To make use of it, the server must still have the events that came
after that ID. So the events cannot live only in the generator that produced
them: they go into a *log*, and each response reads from the log.

An :class:`EventLog` holds named *streams*. Each stream is a sequence of
:class:`Event`\\s in the order they were appended, each with an ID that the log
chose and that only grows. There are three operations:

* ``await log.append(stream, data, event=None)`` adds an event and returns its ID;
* ``log.subscribe(stream, after)`` follows a stream: every event after the ID
  ``after`` (from the oldest one held, when ``after`` is ``None``; or only
  new ones, with ``start="live"``), then each new event as it is appended,
  already encoded for SSE, with its ``id:``. It is what
  :class:`~asgi_stream.resumable.ResumableEventSourceResponse` sends, and
  anything else can send it too (``EventSourceResponse(log.subscribe(...))``);
* ``log.read(stream, after)`` is the same as :class:`Event` objects, for code
  that wants the data rather than the bytes. Neither ends by itself: a
  reader stops when it has seen what it wanted (a final ``done`` event, say).

**Replay, then live, with no gap and no duplicate.** The obvious design has a
race. Read the history, then subscribe to new events, and an event appended
between the two is lost; subscribe first, then read the history, and an event
appended in between arrives twice. A subscriber here joins the live fan-out
first, and learns in the same step the ID of the last event the fan-out has
handed out; its replay reads the history exactly up to that ID, and its
buffer receives exactly the events after it. Nothing can fall between the
two, and nothing is in both (:mod:`asgi_stream.fanout` tells the whole
story).

**One reader per process.** However many clients follow a stream, the log
learns of each new event once per process and hands the same encoded bytes
to every local subscriber's bounded buffer, as
:class:`~asgi_stream.broadcast.Broadcast` does. A subscriber that falls
``max_pending`` events behind is disconnected (``log.disconnected`` counts
them); its client resumes from its last ID when it reconnects, and ``read()``
does that by itself.

**Bounded.** Each stream keeps its newest ``maxlen`` events and forgets older
ones. A reader whose ID has been forgotten cannot be resumed exactly, and must
be told. Then ``subscribe()`` and ``read()`` raise :class:`EventIDNotFound`, with ``trimmed``
true when the ID is older than anything held, and false when the log cannot
place it at all (garbage, or an ID from a stream or server that no longer
exists). It does so at the start, for the ``after`` it was given, and also
while replaying, when a reader falls more than ``maxlen`` events behind.
:meth:`EventLog.expire` lets a finished stream disappear after a while. A
reader still following it is not ended: if something is appended to that name
later, the reader receives it, from the first event of the new stream.

:class:`MemoryEventLog`, the default, keeps the streams in this process's
memory. Its IDs are ``"<incarnation>-1"``, ``"<incarnation>-2"``, ... per
stream, where the *incarnation* is drawn at random when the stream is created.
Counting alone would repeat an ID: after a finished stream expires and a new
one starts under its name, or after a restart, ``"3"`` would name the third
event of a different run, and a client that saw the old one would resume in
the middle of the new one without a word. With the incarnation, its ID is
unknown, so it gets :class:`EventIDNotFound` (and a resumable response, its
reset). The log needs nothing but the standard library, and it has the limits
of one process: another worker cannot see its streams, and a restart loses
them. :mod:`asgi_stream.redis_eventlog` keeps them in the Redis Streams of
one Redis instead, for any number of workers and hosts, and
:mod:`asgi_stream.redis_cluster_eventlog` in those of a Redis Cluster.
:func:`~asgi_stream.open_event_log` picks one from a URL, so code written for
one worker runs on many by changing that URL alone.

The interface and its types are defined in :mod:`asgi_stream.eventlog_base`,
which every backend imports (its docstring draws the modules' one-way
order). This module also holds :func:`~asgi_stream.open_event_log`, which
imports a Redis backend only when a URL names it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import deque
from itertools import islice

from .broadcast import Frame
from .eventlog_base import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAXLEN,
    Event,
    EventIDNotFound,
    EventLog,
    make_frame,
)
from .fanout import LogSubscription

__all__ = ["MemoryEventLog", "open_event_log"]

_PAGE = 500  # events per page of a subscriber's replay


class _MemoryStream:
    """One stream: its incarnation, its newest events, the sequence number of
    the next one, its waiters."""

    __slots__ = ("events", "expires_at", "incarnation", "next_seq")

    def __init__(self, maxlen: int) -> None:
        self.incarnation = secrets.token_hex(6)  # this stream's, never its successor's
        self.events: deque[Event] = deque(maxlen=maxlen)
        self.next_seq = 1
        self.expires_at: float | None = None

    @property
    def first_seq(self) -> int:
        """The sequence number of the oldest event held (``next_seq`` when none is)."""
        return self.next_seq - len(self.events)

    def id_of(self, seq: int) -> str:
        """The ID of event number ``seq``: the incarnation, then the number."""
        return f"{self.incarnation}-{seq}"

    def seq_of(self, event_id: str) -> int:
        """The number of the event with ID ``event_id``; 0 when it is not one of this stream's."""
        found = _ID.fullmatch(event_id)
        return int(found[2]) if found is not None and found[1] == self.incarnation else 0


_ID = re.compile(r"([0-9a-f]{12})-([0-9]{1,18})")


class MemoryEventLog(EventLog):
    """An :class:`EventLog` in this process's memory: the default, for one worker.

    Every stream keeps its newest ``maxlen`` events. A stream that was given an
    expiry is dropped once it has passed, the next time a stream is created,
    so the log's memory is bounded by the streams in use and those finished
    recently. A reader that was waiting on a dropped stream goes on with the
    new stream of the same name, from its first event, as it would in Redis.
    """

    def __init__(
        self, maxlen: int = DEFAULT_MAXLEN, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        super().__init__(max_pending)
        self.maxlen = maxlen
        self._streams: dict[str, _MemoryStream] = {}

    def _get(self, stream: str) -> _MemoryStream | None:
        found = self._streams.get(stream)
        if (
            found is not None
            and found.expires_at is not None
            and found.expires_at <= time.monotonic()
        ):
            self._drop(stream)
            return None
        return found

    def _get_or_create(self, stream: str) -> _MemoryStream:
        found = self._get(stream)
        if found is None:
            now = time.monotonic()
            for name, old in list(self._streams.items()):
                if old.expires_at is not None and old.expires_at <= now:
                    self._drop(name)
            found = self._streams[stream] = _MemoryStream(self.maxlen)
        return found

    def _drop(self, stream: str) -> None:
        """Forget an expired stream; its subscribers go on with its successor, as in Redis."""
        del self._streams[stream]

    async def append(self, stream: str, data: str, event: str | None = None) -> str:
        self.check_stream(stream)
        self.check_event(data, event)
        self._bind_loop()
        s = self._get_or_create(stream)
        event_id = s.id_of(s.next_seq)
        s.events.append(Event(event_id, data, event))
        if stream in self._fanouts:
            self._deliver(stream, make_frame(event_id, data, event, (0, s.next_seq)))
        s.next_seq += 1
        return event_id

    def _join(self, subscription: LogSubscription) -> None:
        # The fan-out is fed by append(), in this task's thread: the newest
        # event now is exactly where the subscriber's buffer starts.
        s = self._get_or_create(subscription.stream)
        subscription.live_from = s.id_of(s.next_seq - 1)

    def _forget_stream(self, stream: str) -> None:
        s = self._streams.get(stream)
        if s is not None and s.next_seq == 1:
            del self._streams[stream]  # created by subscribers only, and they have all gone

    async def replay_page(
        self, stream: str, after: str | None, upto: str, check: bool
    ) -> list[Frame]:
        s = self._get(stream)
        if s is None:  # expired since: its successor starts afresh
            if check and after is not None:
                raise EventIDNotFound(after, trimmed=False)
            return []
        if after is None:
            cursor = s.first_seq - 1
        else:
            cursor = s.seq_of(after)
            if check and not 1 <= cursor < s.next_seq:
                raise EventIDNotFound(after, trimmed=False)
        # Sequence numbers have no holes, so "nothing after the cursor was
        # lost" is exactly "the oldest event held is at most the next one".
        if cursor + 1 < s.first_seq:
            raise EventIDNotFound(s.id_of(cursor), trimmed=True)
        last = min(s.seq_of(upto), cursor + _PAGE)
        if last <= cursor:
            return []
        start = cursor + 1 - s.first_seq
        events = islice(s.events, start, start + last - cursor)
        return [make_frame(e.id, e.data, e.event, self.position(e.id)) for e in events]

    @staticmethod
    def position(event_id: str) -> tuple[int, int]:
        found = _ID.fullmatch(event_id)
        return (0, int(found[2]) if found is not None else 0)

    async def exists(self, stream: str) -> bool:
        s = self._get(stream)
        return s is not None and s.next_seq > 1

    async def last(self, stream: str) -> Event | None:
        s = self._get(stream)
        return s.events[-1] if s is not None and s.events else None

    async def expire(self, stream: str, seconds: float) -> None:
        s = self._get(stream)
        if s is not None:
            s.expires_at = time.monotonic() + seconds


def open_event_log(
    url: str | None = None, maxlen: int = DEFAULT_MAXLEN, max_pending: int = DEFAULT_MAX_PENDING
) -> EventLog:
    """The event log named by ``url``: ``"memory"`` (or ``None``), or a Redis URL.

    ``redis://host:port/db``, ``rediss://`` (TLS) and ``unix://`` select
    :class:`~asgi_stream.RedisEventLog`, which needs the ``redis`` extra (``pip
    install 'asgi-stream[redis]'``); its module, and the ``redis`` package,
    are imported only then. ``redis+cluster://host:port,host:port`` (or
    ``rediss+cluster://``) selects :class:`~asgi_stream.RedisClusterEventLog`,
    for a Redis Cluster or a Valkey cluster; its settings may follow in the
    URL (``?replicas=1``).
    """
    if url in (None, "", "memory"):
        return MemoryEventLog(maxlen, max_pending)
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        from .redis_cluster_eventlog import RedisClusterEventLog

        return RedisClusterEventLog(url, maxlen, max_pending=max_pending)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_eventlog import RedisEventLog  # the backend, imported when named

        return RedisEventLog(url, maxlen, max_pending=max_pending)
    raise ValueError(
        f"unknown event log {url!r}: expected 'memory', a redis:// URL or a redis+cluster:// URL"
    )
