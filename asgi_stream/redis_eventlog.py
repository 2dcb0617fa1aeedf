"""The event log in Redis Streams, shared by every worker and host that uses the same Redis.

Theory of operation
===================

A Redis Stream is an append-only log with IDs that only grow, which is what an
:class:`~asgi_stream.eventlog.EventLog` is, so the mapping is direct:

* a log stream ``name`` is the Redis key ``asgi-stream:name``;
* ``append`` is ``XADD key MAXLEN ~ maxlen * data ... [event ...]``, and the
  entry ID Redis chooses (``"1732412345678-0"``) is the SSE event ID. ``MAXLEN
  ~`` trims whole internal nodes, which is much cheaper than trimming to the
  exact length: a stream keeps *at least* ``maxlen`` entries;
* ``exists``, ``last`` and ``expire`` are ``EXISTS``, ``XREVRANGE key + -
  COUNT n`` and ``EXPIRE``.

Because the data lives in Redis, a job started by one process can be
followed, and resumed, through any other.

**One reader per process.** Followers share the log's fan-out (see
:mod:`asgi_stream.fanout`). One task per log, started with the first
subscriber, runs ``XREAD COUNT n BLOCK ms STREAMS k1 k2 ... c1 c2 ...`` over
every stream that has local subscribers, each from the last ID it handed out,
on a connection of its own; it hands each entry, encoded once, to that
stream's fan-out. A follower holds no connection and sends no command, so
the pool's 100 connections are never the limit, and a follower that leaves is
forgotten at once (redis-py can lose a cancellation that lands inside a
command; a follower is never inside one). ``XADD`` wakes a blocked
``XREAD``, so this is push, not polling.

A stream gets its first local subscriber while the reader is blocked on the
others. The subscriber wakes it by ``XADD``-ing to a small key of this log's
own that the reader always includes (an entry written before the reader's
next ``XREAD`` still wakes that one: nothing is lost to a race). Before it
reads a new stream, the reader looks up its newest ID with ``XREVRANGE``;
that is the stream's ``live_from``, and its subscribers replay up to it with
``XRANGE``, page by page, over the command pool.

**Faults.** The reader's socket timeout is longer than its ``BLOCK``, so a
quiet stream never times out. When Redis restarts or stalls, the reader logs
one warning, retries with a growing backoff (up to 2 s), and goes on from the
last ID it handed out for each stream: its subscribers see a delay, never a
gap or a duplicate. Any command that meets a fault (an append, a replay, a
look-up) raises :class:`~asgi_stream.EventLogUnavailable`, which a
response turns into "retry later" for the client.

**Trimming.** ``XREAD`` from a cursor that has been trimmed away silently
starts at the oldest entry held. If entries after a cursor were trimmed, at
least ``maxlen`` are held and all are after it, so the batch comes back full
(``n`` is at most ``maxlen``). After a full batch only, ``XRANGE key - cursor
COUNT 1`` asks whether any entry at or before the cursor is left. If none is,
the reader (or a replay) has fallen too far behind: a replay raises
:class:`~asgi_stream.eventlog.EventIDNotFound`, and the shared reader ends
that stream's local subscriptions, whose clients reconnect with their last ID
and are told. A resumed ID is checked before its replay, in one ``MULTI``
transaction that also tells an unknown ID from a trimmed one.

**Entries we did not write.** Other programs can ``XADD`` to the same key, so
an entry may lack the ``data`` field, carry an ``event`` with a line break,
or hold bytes that are not UTF-8. Sent as an event, such an entry would stop
every reader that resumes from before it, on every reconnection. So each
entry read is checked with :meth:`~asgi_stream.eventlog.EventLog.check_event`,
the rule ``append`` applies, and one that fails is *skipped*, with a warning
that names its ID. Replies are decoded with ``surrogateescape``, so bytes
that are not UTF-8 reach that check instead of failing the whole reply.

The ``redis`` package is an optional extra. It is imported when a
:class:`RedisEventLog` is created, never when this module is imported. This
module imports the interface from :mod:`asgi_stream.eventlog_base`, never from
:mod:`asgi_stream.eventlog`, which imports this one lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from .broadcast import Frame
from .eventlog import MemoryEventLog
from .eventlog_base import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAXLEN,
    Event,
    EventIDNotFound,
    EventLog,
    EventLogUnavailable,
    make_frame,
)
from .fanout import LogSubscription

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.typing import EncodableT, FieldT

__all__ = ["RedisEventLog", "open_event_log"]

logger = logging.getLogger(__name__)

_KEY_PREFIX = "asgi-stream:"
_WAKE_PREFIX = "asgi-stream.wake:"  # not a stream name's key: those all start with _KEY_PREFIX
_WAKE_SECONDS = 3600  # a wake key left by a killed process goes away by itself
_STREAM_ID = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")  # within the 64-bit halves of an ID
_LAST_PAGE = 16  # entries per XREVRANGE when last() looks for the newest event
_BACKOFF_FIRST = 0.05  # seconds before the reader's first retry; doubled up to _BACKOFF_MAX
_BACKOFF_MAX = 2.0
_REPLAYS = 16  # replays in flight at once, well under redis-py's 100 connections per pool
_EMPTY = "0-0"  # the cursor of a stream without entries: every ID is after it

# One stream entry, its ID and its fields, as our client receives it. redis-py's
# types say bytes | str wherever a reply holds text; decode_responses=True makes it
# always a str, which the types cannot see, so the replies are cast to this.
_Entry = tuple[str, Mapping[str, str]]


class RedisEventLog(EventLog):
    """An :class:`~asgi_stream.eventlog.EventLog` in Redis Streams.

    ``url`` is a redis-py URL such as ``redis://127.0.0.1:6379/0``. ``batch``
    is how many entries one read fetches; ``block_ms`` how long the shared
    reader's ``XREAD BLOCK`` waits before it asks again; ``socket_timeout``
    (seconds) how long any command may take before the connection counts as
    broken, and must be longer than ``block_ms``. ``max_pending`` bounds
    each subscriber's buffer.
    """

    def __init__(
        self,
        url: str,
        maxlen: int = DEFAULT_MAXLEN,
        batch: int = 500,
        block_ms: int = 5_000,
        *,
        socket_timeout: float = 15.0,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        from redis.asyncio.retry import Retry  # the optional extra, imported only when used
        from redis.backoff import ExponentialBackoff

        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        if not 0 < block_ms < socket_timeout * 1000:
            raise ValueError(
                f"block_ms ({block_ms}) must be positive and shorter than socket_timeout "
                f"({socket_timeout} s), or a quiet stream would break"
            )
        super().__init__(max_pending)
        self.maxlen = maxlen
        self.batch = min(batch, maxlen)  # so that a trimmed cursor always gives a full batch
        self.block_ms = block_ms
        options: dict[str, Any] = {
            # surrogateescape: an entry that another program wrote in another
            # encoding is skipped by _event(), and not the end of the reader.
            "decode_responses": True,
            "encoding_errors": "surrogateescape",
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": min(socket_timeout, 2.0),
        }
        # One quick retry covers a connection that a Redis restart broke while
        # it sat idle; a health check before a command on a connection idle
        # that long finds most of them first.
        commands: dict[str, Any] = {
            **options,
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
            "health_check_interval": max(1, int(socket_timeout)),
        }
        self._url = url
        self._commands = commands
        self._options = options
        self._closing = False
        self._open_connections()

    def _open_connections(self) -> None:
        """Make what belongs to one event loop: connections, tasks, waiters, cursors."""
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Commands: the pool that replays and looks up.
        self.redis: Redis = Redis.from_url(self._url, **self._commands)
        # The publisher's own connection, and the shared reader's, which
        # retries by itself, from its cursors.
        self._publisher_redis: Redis = Redis.from_url(
            self._url, single_connection_client=True, **self._commands
        )
        self._reader_redis: Redis = Redis.from_url(
            self._url, single_connection_client=True, retry=Retry(NoBackoff(), 0), **self._options
        )
        self._reader: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._outbox: list[tuple[str, dict[FieldT, EncodableT], asyncio.Future[str]]] = []
        self._outbox_filled = asyncio.Event()
        #: Per stream the reader reads, the ID of the last entry it handed out.
        self._cursors: dict[str, str] = {}
        self._unresolved: set[str] = set()  # streams whose subscribers wait for a live_from
        self._wake_key = _WAKE_PREFIX + secrets.token_hex(8)
        self._wake_sent = False
        self._replays = asyncio.Semaphore(_REPLAYS)

    def _loop_changed(self) -> None:
        # The old loop is over, and its connections with it: they cannot be
        # closed from here (closing is a coroutine of theirs), only dropped.
        self._open_connections()

    @staticmethod
    def key(stream: str) -> str:
        """The Redis key that holds ``stream``."""
        return _KEY_PREFIX + stream

    async def append(self, stream: str, data: str, event: str | None = None) -> str:
        self.check_stream(stream)
        self.check_event(data, event)
        fields: dict[FieldT, EncodableT] = {"data": data}
        if event is not None:
            fields["event"] = event
        if self._closing:
            raise RuntimeError("the event log is closed")
        self._bind_loop()
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(
                self._publish_forever(), name=f"asgi-stream publisher {self._wake_key}"
            )
        added: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._outbox.append((self.key(stream), fields, added))
        self._outbox_filled.set()
        return await added

    async def _publish_forever(self) -> None:
        """Send every append waiting as one pipeline on one connection; again, until closed.

        Appends made while a pipeline is on its way wait for the next one, so
        a burst of them costs a round trip or two, not one each, and a
        process holds one publishing connection however many tasks append.
        """
        while not self._closing:
            if not self._outbox:
                self._outbox_filled.clear()
                await self._outbox_filled.wait()
                continue
            batch, self._outbox = self._outbox, []
            try:
                async with self._publisher_redis.pipeline(transaction=False) as pipe:
                    for key, fields, _ in batch:
                        pipe.xadd(key, fields, maxlen=self.maxlen, approximate=True)
                    replies = await pipe.execute(raise_on_error=False)
            except _faults() as exc:
                replies = [EventLogUnavailable(f"Redis cannot be reached: {exc}")] * len(batch)
            except Exception as exc:  # the appends fail, not the publisher: it serves the next
                replies = [exc] * len(batch)
            for (_, _, added), reply in zip(batch, replies, strict=True):
                if added.done():  # its caller was cancelled
                    continue
                if isinstance(reply, BaseException):
                    added.set_exception(reply)
                else:
                    added.set_result(cast(str, reply))  # decode_responses=True (see _Entry)

    # The fan-out's side (see asgi_stream.fanout): join, wait for live_from, replay.

    def _join(self, subscription: LogSubscription) -> None:
        cursor = self._cursors.get(subscription.stream)
        if cursor is not None:  # the reader reads it already: its buffer starts after cursor
            subscription.live_from = cursor
        else:
            self._unresolved.add(subscription.stream)

    async def _ready(self, subscription: LogSubscription) -> None:
        self._bind_loop()
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(
                self._read_forever(), name=f"asgi-stream reader {self._wake_key}"
            )
        while subscription.live_from is None and not subscription._ended:
            if not self._wake_sent:
                self._wake_sent = True  # one wake-up serves every stream added meanwhile
                try:
                    await self._wake()
                except EventLogUnavailable:
                    self._wake_sent = False
                    raise
                continue  # the reader may have set live_from while the wake-up was on its way
            await subscription._wait()

    async def _wake(self) -> None:
        """Make the reader's blocked ``XREAD`` return, so that it looks at its streams again."""
        with _unavailable():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": 1}, maxlen=1)
                pipe.expire(self._wake_key, _WAKE_SECONDS)
                await pipe.execute()

    def _forget_stream(self, stream: str) -> None:
        self._cursors.pop(stream, None)  # the reader stops reading it
        self._unresolved.discard(stream)

    async def _history(self, stream: str, after: str | None, upto: str, check: bool) -> list[Frame]:
        if upto == _EMPTY and not (check and after is not None):
            return []  # the stream had no entry when this subscriber joined
        key = self.key(stream)
        # A thousand clients that connect at once replay at most _REPLAYS at a
        # time; the others wait here, in asyncio, where a cancellation is safe.
        async with self._replays:
            with _unavailable():
                if check and after is not None:
                    await self._check_resumable(key, after)
                low = "-" if after is None else "(" + after
                reply = await self.redis.xrange(key, low, upto, count=self.batch)
                entries = cast(list[_Entry], reply)
                if len(entries) == self.batch and after is not None:
                    await self._check_not_trimmed(key, after)
        return [frame for entry in entries if (frame := self._frame(key, *entry)) is not None]

    @staticmethod
    def _position(event_id: str) -> tuple[int, int]:
        found = _STREAM_ID.fullmatch(event_id)
        return (int(found[1]), int(found[2])) if found is not None else (0, 0)

    def _frame(self, key: str, entry_id: str, fields: Mapping[str, str]) -> Frame | None:
        event = _event(key, entry_id, fields)
        if event is None:
            return None
        return make_frame(entry_id, event.data, event.event, self._position(entry_id))

    # The shared reader.

    async def _read_forever(self) -> None:
        """Read every stream with local subscribers, and hand out what comes; until closed."""
        wake_cursor = _EMPTY  # the key is this log's own: any entry in it is a wake-up
        failures = 0
        while not self._closing:
            # A subscriber that joins a new stream from now on sends a wake-up
            # of its own (an earlier one may be spent already); spares only
            # make an XREAD return early.
            self._wake_sent = False
            try:
                if self._unresolved:
                    await self._resolve()
                streams = {self.key(name): cursor for name, cursor in self._cursors.items()}
                streams[self._wake_key] = wake_cursor
                reply = await self._reader_redis.xread(
                    cast(Any, streams), count=self.batch, block=self.block_ms
                )
                for key, entries in _streams_of(reply):
                    if key == self._wake_key:
                        wake_cursor = entries[-1][0]
                    else:
                        await self._hand_out(key, entries)
            except _faults() as exc:
                failures += 1
                if failures == 1:
                    logger.warning("Redis is unreachable (%s); the reader retries", exc)
                await asyncio.sleep(min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (failures - 1)))
                continue
            if failures:
                logger.warning("Redis is back after %d failed attempts; reading on", failures)
                failures = 0

    async def _resolve(self) -> None:
        """Give each new stream its ``live_from``: its newest ID now (``0-0`` if it has none)."""
        streams = list(self._unresolved)
        async with self._reader_redis.pipeline(transaction=False) as pipe:
            for name in streams:
                pipe.xrevrange(self.key(name), "+", "-", count=1)
            newest = await pipe.execute()
        for name, entries in zip(streams, newest, strict=True):
            fanout = self._fanouts.get(name)
            if name not in self._unresolved or fanout is None:
                continue  # its subscribers all left meanwhile
            self._unresolved.discard(name)
            cursor = self._cursors[name] = entries[0][0] if entries else _EMPTY
            for subscription in fanout._subscriptions:
                assert isinstance(subscription, LogSubscription)
                if subscription.live_from is None:
                    subscription.live_from = cursor
                    subscription._wake()

    async def _hand_out(self, key: str, entries: list[_Entry]) -> None:
        """Give one stream's new entries to its fan-out, and move its cursor past them."""
        name = key[len(_KEY_PREFIX) :]
        cursor = self._cursors.get(name)
        if cursor is None:
            return  # its subscribers left (or it awaits a live_from) while the reader waited
        if len(entries) == self.batch and cursor != _EMPTY:
            trimmed = not await self._reader_redis.xrange(key, "-", cursor, count=1)
            fanout = self._fanouts.get(name)
            if trimmed and fanout is not None and self._cursors.get(name) == cursor:
                # Fell more than maxlen behind: end the stream's subscriptions;
                # each client comes back with its last ID and is told.
                logger.warning("the reader fell behind %s past its trimming", key)
                for subscription in list(fanout._subscriptions):
                    subscription._too_slow()
                return
        fanout = self._fanouts.get(name)
        if fanout is None or self._cursors.get(name) != cursor:
            return
        for entry_id, fields in entries:
            self._cursors[name] = entry_id  # past a skipped entry too
            frame = self._frame(key, entry_id, fields)
            if frame is not None:
                fanout.deliver(frame)

    async def _check_resumable(self, key: str, after: str) -> None:
        """Raise :class:`EventIDNotFound` unless ``after`` is an entry of the stream."""
        if not _STREAM_ID.fullmatch(after):
            raise EventIDNotFound(after, trimmed=False)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrange(key, after, after, count=1)
            pipe.xrange(key, "-", after, count=1)
            pipe.exists(key)
            exact, at_or_before, exists = await pipe.execute()
        if not exact:
            raise EventIDNotFound(after, trimmed=bool(exists) and not at_or_before)

    async def _check_not_trimmed(self, key: str, cursor: str) -> None:
        """Raise :class:`EventIDNotFound` when the stream no longer holds ``cursor``."""
        if not await self.redis.xrange(key, "-", cursor, count=1):
            raise EventIDNotFound(cursor, trimmed=True)

    async def exists(self, stream: str) -> bool:
        self._bind_loop()
        with _unavailable():
            return bool(await self.redis.exists(self.key(stream)))

    async def last(self, stream: str) -> Event | None:
        self._bind_loop()
        key = self.key(stream)
        newest = "+"
        while True:  # back past entries that _event() skips, a page at a time
            with _unavailable():
                reply = await self.redis.xrevrange(key, newest, "-", count=_LAST_PAGE)
            entries = cast(list[_Entry] | None, reply) or []  # decode_responses=True
            for entry_id, fields in entries:
                event = _event(key, entry_id, fields)
                if event is not None:
                    return event
            if len(entries) < _LAST_PAGE:
                return None
            newest = "(" + entries[-1][0]  # exclusive: before the oldest one seen

    async def expire(self, stream: str, seconds: float) -> None:
        self._bind_loop()
        with _unavailable():
            await self.redis.expire(self.key(stream), max(1, round(seconds)))

    async def aclose(self) -> None:
        """End every subscription, stop the reader, close the connections."""
        self._bind_loop()
        await super().aclose()
        self._closing = True
        reader, self._reader = self._reader, None
        if reader is not None:
            # Wake it so that it sees _closing between two commands: a
            # cancellation that lands inside a redis-py command can be lost.
            with contextlib.suppress(EventLogUnavailable):
                await asyncio.wait_for(self._wake(), 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 1.0)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            with contextlib.suppress(EventLogUnavailable), _unavailable():
                await self.redis.delete(self._wake_key)
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            self._outbox_filled.set()  # it sees _closing after what it sends now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(publisher), 1.0)
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
        for _, _, added in self._outbox:
            if not added.done():
                added.set_exception(RuntimeError("the event log is closed"))
        self._outbox.clear()
        await self._publisher_redis.aclose()
        await self._reader_redis.aclose()
        await self.redis.aclose()


def _faults() -> tuple[type[Exception], ...]:
    """The exceptions that mean "Redis cannot be reached now"."""
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError)


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Raise a Redis fault as :class:`EventLogUnavailable`, which callers can answer."""
    try:
        yield
    except _faults() as exc:
        raise EventLogUnavailable(f"Redis cannot be reached: {exc}") from exc


def _streams_of(xread_reply: Any) -> list[tuple[str, list[_Entry]]]:
    """Each stream's entries from an XREAD reply, in RESP2 or RESP3 shape."""
    if not xread_reply:
        return []
    if isinstance(xread_reply, Mapping):  # RESP3: {key: [entries]}
        return [(key, value[0]) for key, value in xread_reply.items()]
    return [(key, entries) for key, entries in xread_reply]  # RESP2: [[key, entries], ...]


def _event(key: str, entry_id: str, fields: Mapping[str, str]) -> Event | None:
    """The entry as an :class:`Event`; ``None``, with a warning, if it cannot be one."""
    data = fields.get("data")
    event = fields.get("event")
    try:
        if data is None:
            raise ValueError("it has no data field")
        EventLog.check_event(data, event)
    except (TypeError, ValueError) as exc:
        logger.warning("skipped entry %s of %s, which is not an event: %s", entry_id, key, exc)
        return None
    return Event(entry_id, data, event)


def open_event_log(
    url: str | None = None, maxlen: int = DEFAULT_MAXLEN, max_pending: int = DEFAULT_MAX_PENDING
) -> EventLog:
    """The event log named by ``url``: ``"memory"`` (or ``None``), or a Redis URL.

    ``redis://host:port/db``, ``rediss://`` (TLS) and ``unix://`` select
    :class:`RedisEventLog`, which needs the ``redis`` extra (``pip install
    'asgi-stream[redis]'``); the ``redis`` package is imported only then.
    """
    if url in (None, "", "memory"):
        return MemoryEventLog(maxlen, max_pending)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisEventLog(url, maxlen, max_pending=max_pending)
    raise ValueError(f"unknown event log {url!r}: expected 'memory' or a redis:// URL")
