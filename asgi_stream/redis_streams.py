"""What the two Redis event logs share: streams, appends stored once, replays, one reader's cursors.

Theory of operation
===================

A Redis Stream is an append-only log with IDs that only grow, which is what an
:class:`~asgi_stream.eventlog.EventLog` is, so the mapping is direct:

* a log stream is one Redis key (the log's ``key(stream)`` says which);
* ``append`` is an ``XADD key MAXLEN ~ maxlen * data ... [event ...]`` (inside
  the append script, below), and the entry ID Redis chooses
  (``"1732412345678-0"``) is the SSE event ID. ``MAXLEN ~`` trims whole
  internal nodes, which is much cheaper than trimming to the exact length: a
  stream keeps *at least* ``maxlen`` entries;
* ``exists``, ``last`` and ``expire`` are ``EXISTS``, ``XREVRANGE key + -
  COUNT n`` and ``EXPIRE``.

Because the data lives in Redis, a job started by one process can be
followed, and resumed, through any other. This module holds what does not
depend on how many Redis nodes there are; the two logs built on it differ in
how their one reader per process learns that a stream changed:
:class:`~asgi_stream.RedisEventLog` (one Redis) and
:class:`~asgi_stream.RedisClusterEventLog` (a Redis Cluster).

**Appends are stored once.** Every append waiting in the process goes out in
one round trip of the publisher: one call of the append script per group of
streams that share a hash slot (one group on a single Redis). Each call
first looks for its own *applied* key: if it is there, the call already ran
(Redis was paused, its reply lost, and the call sent again), and the script
returns the IDs it stored then instead of storing them twice. Otherwise it
``XADD``\\s each event, tells the readers which streams changed, and records
the IDs under the applied key. So a round trip that met a fault *after* it
was sent is sent again, the same, until ``append_timeout`` (30 s): a pause
of Redis is a delay for the publisher, never a duplicate. The IDs are still
chosen by Redis, in the script, so any number of publishers on any number of
hosts append to one stream without agreeing on anything.

**Resume storms queue.** Replays and look-ups go through the command client,
at most 16 commands at once, and callers that ask the same thing at once (a
worker died, and its clients all resume here from the same ID, or ask for
the same ``last()``) share one read. So however many clients reconnect at
once, they wait their turn in asyncio, and are never told "Too many
connections". A replay or look-up that meets a fault raises
:class:`~asgi_stream.EventLogUnavailable`, which a response turns into "retry
later" for the client.

**One reader's cursors.** Per stream that has local subscribers, the reader
keeps the ID of the last entry it handed out (its *cursor*) and reads on from
there. A stream gets its ``live_from`` (see :mod:`asgi_stream.fanout`) from
the reader, which looks up its newest ID with ``XREVRANGE`` before it reads
it; its subscribers replay up to that ID with ``XRANGE``, page by page.

**Trimming.** ``XREAD`` from a cursor that has been trimmed away silently
starts at the oldest entry held. If entries after a cursor were trimmed, at
least ``maxlen`` are held and all are after it, so the batch comes back full
(``n`` is at most ``maxlen``). After a full batch only, ``XRANGE key - cursor
COUNT 1`` asks whether any entry at or before the cursor is left. If none is,
the reader (or a replay) has fallen too far behind: a replay raises
:class:`~asgi_stream.eventlog.EventIDNotFound`, and the reader ends that
stream's local subscriptions, whose clients reconnect with their last ID and
are told. A resumed ID is checked before its replay, in one ``MULTI``
transaction that also tells an unknown ID from a trimmed one.

**A log that went back.** Redis without persistence restarts empty, and a
replica promoted after a failover may lack the newest writes. After every
fault, before it reads on, the reader checks: an *epoch* key drawn once per
data set (``SET NX``) that has changed means the data set is new, and a
stream whose newest entry is older than the reader's cursor lost what was
handed out. Either way the stream's subscriptions end with
:class:`~asgi_stream.eventlog.EventIDNotFound` for their last ID, and a
resumable response sends its ``reset`` event (``"reason": "unknown"``) and
goes on from what the log holds now. A subscriber is told; it never silently
skips.

**Entries we did not write.** Other programs can ``XADD`` to the same key, so
an entry may lack the ``data`` field, carry an ``event`` with a line break,
or hold bytes that are not UTF-8. Sent as an event, such an entry would stop
every reader that resumes from before it, on every reconnection. So each
entry read is checked with :meth:`~asgi_stream.eventlog.EventLog.check_event`,
the rule ``append`` applies, and one that fails is *skipped*, with a warning
that names its ID. Replies are decoded with ``surrogateescape``, so bytes
that are not UTF-8 reach that check instead of failing the whole reply. A
stream that cannot be read at all (a key of another type under the prefix:
``WRONGTYPE``) ends its own subscriptions, with one warning; the others go
on.

**Event loops.** Connections, tasks and waiters belong to one event loop. A
log used by a new loop after the old one ended (one ``asyncio.run()`` per
test) makes them again; a task of each loop closes that loop's connections
when the loop ends.

The ``redis`` package is an optional extra, imported when a log is created,
never when this module is imported.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .broadcast import Frame
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
    from redis.asyncio.cluster import RedisCluster

# Nothing here is public: the two Redis logs import what they share by name.
__all__: list[str] = []

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: The cursor of a stream without entries: every ID is after it.
EMPTY = "0-0"
#: The longest wait, in seconds, between two attempts after a fault.
BACKOFF_MAX = 2.0
_BACKOFF_FIRST = 0.05
_STREAM_ID = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")  # within the 64-bit halves of an ID
_LAST_PAGE = 16  # entries per XREVRANGE when last() looks for the newest event
_COMMANDS = 16  # commands in flight at once on the command client (fewer if its pool is smaller)
_PIPELINE = 500  # streams per pipeline when the reader reads or checks many

#: One stream entry, its ID and its fields, as our client receives it. redis-py's
#: types say bytes | str wherever a reply holds text; decode_responses=True makes it
#: always a str, which the types cannot see, so the replies are cast to this.
Entry = tuple[str, Mapping[str, str]]

# An append in the outbox: its stream, its fields, and the future its caller awaits.
_Append = tuple[str, list[str], "asyncio.Future[str]"]


# One round trip's appends to the streams of one hash slot, stored once however
# often the script is sent. KEYS: the call's "applied" key, where to tell the
# readers (a notification stream, or a shard's pub/sub channel), then one stream
# key per append. ARGV: how long the applied key lives, MAXLEN, the notification
# stream's MAXLEN ("" to publish to the channel instead), the names of the streams
# (one per line), then per append its field count and fields. A call sent again
# still writes (the EXPIRE), so that a WAIT after it covers what the first stored.
APPEND_SCRIPT = """
local applied = redis.call('GET', KEYS[1])
if applied then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return cjson.decode(applied)
end
local ids = {}
local at = 5
for k = 3, #KEYS do
  local count = tonumber(ARGV[at])
  local fields = {}
  for f = 1, count do fields[f] = ARGV[at + f] end
  at = at + count + 1
  local id = redis.pcall('XADD', KEYS[k], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
  if type(id) == 'table' then id = '!' .. id.err end
  ids[#ids + 1] = id
end
if ARGV[3] == '' then
  redis.call('SPUBLISH', KEYS[2], ARGV[4])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 's', ARGV[4])
end
redis.call('SET', KEYS[1], cjson.encode(ids), 'EX', ARGV[1])
return ids
"""


class Resend(Exception):
    """The reply of a call that may not have run, and is sent again (a slot on the move...)."""


class AppendCall:
    """One call of the append script: the keys and arguments it is sent with, every time.

    ``appends`` are the positions, in the publisher's round trip, of the
    appends it stores, in the order of the IDs it returns.
    """

    __slots__ = ("appends", "args", "keys")

    def __init__(self, keys: list[str], args: list[str | int], appends: list[int]) -> None:
        self.keys = keys
        self.args = args
        self.appends = appends


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th fault in a row: doubled each time, up to 2 s."""
    return float(min(BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (failures - 1)))


@functools.cache  # asked of every reply the reader reads
def faults() -> tuple[type[Exception], ...]:
    """The exceptions that mean "Redis cannot serve this now": wait, and ask again.

    A connection that breaks or times out; and, in a cluster, a slot on the
    move (``MOVED``, ``ASK``, ``TRYAGAIN``), a master that is gone
    (``CLUSTERDOWN``, a slot no node holds, no node that answers) or that
    has become a replica (``READONLY``).
    """
    from redis.exceptions import (
        AskError,
        ClusterError,
        ConnectionError,
        ReadOnlyError,
        RedisClusterUnreachableError,
        SlotNotCoveredError,
        TimeoutError,
        TryAgainError,
    )

    return (
        *(ConnectionError, TimeoutError, OSError),
        *(AskError, TryAgainError, ClusterError, ReadOnlyError),
        *(SlotNotCoveredError, RedisClusterUnreachableError),
    )


@contextlib.contextmanager
def unavailable(stream: str | None = None) -> Iterator[None]:
    """Raise a Redis fault as :class:`EventLogUnavailable`, which callers can answer.

    With ``stream``, an error of a read of that stream too (``WRONGTYPE``: a
    key of another type under the prefix): its clients are asked to come
    back later, and the log goes on with the others.
    """
    from redis.exceptions import ResponseError

    try:
        yield
    except faults() as exc:
        raise EventLogUnavailable(f"Redis cannot be reached: {exc}") from exc
    except ResponseError as exc:
        if stream is None:
            raise
        raise EventLogUnavailable(f"stream {stream!r} cannot be read: {exc}") from exc


def streams_of(xread_reply: Any) -> list[tuple[str, list[Entry]]]:
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


class _Lane:
    """One publisher: the appends waiting for its next round trip, and its task."""

    __slots__ = ("filled", "outbox", "task")

    def __init__(self) -> None:
        self.outbox: list[_Append] = []
        self.filled = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class RedisStreamsLog(EventLog):
    """The part of a Redis event log that does not depend on the number of nodes.

    Arguments: see :class:`~asgi_stream.RedisEventLog`. The two logs are
    its subclasses, and this is the whole of what they and it say to each
    other (underscored: it is no user's API):

    ===============================  =============================================
    the subclass provides            this class provides
    ===============================  =============================================
    ``key``, ``_open_connections``,  the outbox, ``_lane_of`` (one publisher per
    ``_clients``                     lane), ``_store`` (resends, stored once)
    ``_calls``, ``_send``,           ``wait_live_from``, ``_wakes_sent``
    ``_before_send``
    ``_start_reading``,              the cursors (``_cursors``, ``_unresolved``,
    ``_wake_group``, ``_wake``       ``_stale``), ``_resolve``, ``_read_streams``,
                                     ``_gone_back``, ``_reset_all``
    its reader's rounds              ``_supervise`` (faults are delays),
                                     ``_fail_stream``, ``_reader_ended``,
                                     ``_stop_publisher``
    ===============================  =============================================
    """

    #: The client of replays and look-ups, bounded to a few commands at once.
    redis: Redis | RedisCluster

    def __init__(
        self,
        url: str,
        maxlen: int = DEFAULT_MAXLEN,
        batch: int = 500,
        block_ms: int = 5_000,
        *,
        socket_timeout: float = 15.0,
        append_timeout: float = 30.0,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        if not 0 < block_ms < socket_timeout * 1000:
            raise ValueError(
                f"block_ms ({block_ms}) must be positive and shorter than socket_timeout "
                f"({socket_timeout} s), or a quiet stream would break"
            )
        if not append_timeout > 0:
            raise ValueError(
                f"append_timeout must be a positive number of seconds, not {append_timeout!r}"
            )
        super().__init__(max_pending)
        self._url = url
        self.maxlen = maxlen
        self.batch = min(batch, maxlen)  # so that a trimmed cursor always gives a full batch
        self.block_ms = block_ms
        self.append_timeout = append_timeout
        #: Seconds an applied key lives: longer than every resend of its round trip.
        self.applied_seconds = max(60, math.ceil(2 * (append_timeout + socket_timeout)))
        #: redis-py options of every connection. surrogateescape: an entry that
        #: another program wrote in another encoding is skipped by _event(),
        #: and is not the end of the reader.
        self.options: dict[str, Any] = {
            "decode_responses": True,
            "encoding_errors": "surrogateescape",
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": min(socket_timeout, 2.0),
        }
        self._closing = False
        # A task of the loop that uses the connections, which closes them when
        # the loop ends (asyncio.run() cancels it then) or the log is closed.
        self._keeper: asyncio.Task[None] | None = None
        self._open_connections()

    @abc.abstractmethod
    def key(self, stream: str) -> str:
        """The Redis key that holds ``stream``."""

    def _open_connections(self) -> None:
        """Make what belongs to one event loop: connections, tasks, waiters, cursors.

        A subclass makes its clients first (``self.redis`` among them), then
        calls this.
        """
        # A cluster client has a pool per node, each as large as a single one.
        pool: Any = getattr(self.redis, "connection_pool", None)
        pool_size = _COMMANDS if pool is None else pool.max_connections
        self._gate = asyncio.Semaphore(max(1, min(_COMMANDS, pool_size)))
        self._lookups: dict[tuple[Any, ...], asyncio.Task[Any]] = {}  # see _shared
        self._lanes: dict[int, _Lane] = {}  # see append
        self._wakes_sent: set[int] = set()  # see wait_live_from
        #: Per stream the reader reads, the ID of the last entry it handed out.
        self._cursors: dict[str, str] = {}
        self._unresolved: set[str] = set()  # streams whose subscribers wait for a live_from
        self._stale: set[str] = set()  # streams with entries the reader has not read yet
        self._unreadable_told: set[str] = set()  # streams whose read error was logged

    @abc.abstractmethod
    def _clients(self) -> tuple[Redis | RedisCluster, ...]:
        """Every client of this event loop, closed when it ends."""

    def _new_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._keeper is not None:  # the last loop has ended: so have its tasks and waiters
            self._open_connections()
        self._keeper = loop.create_task(_close_at_the_end(self._clients), name="asgi-stream closer")

    # Appends: the outbox, and the publisher that empties it.

    async def append(self, stream: str, data: str, event: str | None = None) -> str:
        self.check_stream(stream)
        self.check_event(data, event)
        fields = ["data", data] if event is None else ["data", data, "event", event]
        if self._closing:
            raise RuntimeError("the event log is closed")
        self._bind_loop()
        number = self._lane_of(stream)
        lane = self._lanes.get(number)
        if lane is None:
            lane = self._lanes[number] = _Lane()
            lane.task = asyncio.get_running_loop().create_task(
                self._publish_forever(lane), name=f"asgi-stream publisher {number}"
            )
        added: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        lane.outbox.append((stream, fields, added))
        lane.filled.set()
        return await added

    def _lane_of(self, stream: str) -> int:
        """Which publisher sends ``stream``'s appends: one per hash slot that may stall alone.

        Each lane sends one round trip at a time, so the appends of one
        stream are stored in the order they were made.
        """
        return 0

    async def _publish_forever(self, lane: _Lane) -> None:
        """Send every append waiting in the lane in one round trip; again, until closed.

        Appends made while a round trip is on its way wait for the next one,
        so a burst of them costs a round trip or two, not one each, however
        many tasks append.
        """
        while not self._closing:
            if not lane.outbox:
                lane.filled.clear()
                await lane.filled.wait()
                continue
            batch, lane.outbox = lane.outbox, []
            replies = await self._store(batch)
            for (_, _, added), reply in zip(batch, replies, strict=True):
                if added.done():  # its caller was cancelled
                    continue
                if isinstance(reply, BaseException):
                    added.set_exception(reply)
                else:
                    added.set_result(reply)

    @abc.abstractmethod
    def _calls(self, streams: list[str], fields: list[list[str]]) -> list[AppendCall]:
        """The script calls that store these appends (``streams[i]`` gets ``fields[i]``)."""

    @abc.abstractmethod
    async def _send(self, calls: list[AppendCall]) -> list[Any]:
        """Send the calls in one round trip: each one's reply (its IDs), or its exception."""

    async def _before_send(self) -> None:
        """Raise a fault if nothing can be sent now (then no append is tried again)."""

    async def _store(self, batch: list[_Append]) -> list[str | BaseException]:
        """One round trip of appends, stored once: each one's ID, or its error.

        A call that met a fault after it was sent may have run (Redis was
        paused, not gone): it is sent again, the same, until
        ``append_timeout``, and the script stores it only if its applied key
        is not there yet. A call that could not be sent at all (no
        connection, see :meth:`_before_send`) fails at once.
        """
        from redis.exceptions import ResponseError

        calls = self._calls([s for s, _, _ in batch], [f for _, f, _ in batch])
        results: list[str | BaseException] = [RuntimeError("not sent")] * len(batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.append_timeout
        try:
            await self._before_send()
        except faults() as exc:
            return [EventLogUnavailable(f"Redis cannot be reached: {exc}")] * len(batch)
        failures = 0
        while calls:
            replies = await self._send(calls)
            again: list[AppendCall] = []
            for call, reply in zip(calls, replies, strict=True):
                if isinstance(reply, (*faults(), Resend)):
                    if self._closing or loop.time() >= deadline:
                        error = EventLogUnavailable(
                            f"Redis cannot be reached: {reply} (the append may have been stored)"
                        )
                        for i in call.appends:
                            results[i] = error
                    else:
                        again.append(call)
                elif isinstance(reply, BaseException):
                    for i in call.appends:  # the appends fail, not the publisher
                        results[i] = reply
                else:
                    ids = cast(list[str], reply)  # decode_responses=True (see Entry)
                    for i, entry_id in zip(call.appends, ids, strict=True):
                        failed = entry_id.startswith("!")
                        results[i] = ResponseError(entry_id[1:]) if failed else entry_id
            calls = again
            if calls:
                failures += 1
                if failures == 1:
                    logger.warning("Redis did not answer an append; sending it again")
                await asyncio.sleep(backoff(failures))
        if failures:
            logger.warning("Redis answered after %d resends; each append stored once", failures)
        return results

    # The fan-out's side (see asgi_stream.fanout): join, replay.

    def _join(self, subscription: LogSubscription) -> None:
        cursor = self._cursors.get(subscription.stream)
        if cursor is not None:  # the reader reads it already: its buffer starts after cursor
            subscription.live_from = cursor
        else:
            self._unresolved.add(subscription.stream)

    def _forget_stream(self, stream: str) -> None:
        self._cursors.pop(stream, None)  # the reader stops reading it
        self._unresolved.discard(stream)
        self._stale.discard(stream)

    async def wait_live_from(self, subscription: LogSubscription) -> None:
        """Start the reader if need be, and wake it: it gives the new stream its ``live_from``."""
        self._bind_loop()
        self._start_reading()
        group = self._wake_group(subscription.stream)
        while subscription.live_from is None and not subscription.ended:
            if group not in self._wakes_sent:
                self._wakes_sent.add(group)  # one wake-up serves every stream added meanwhile
                try:
                    await self._wake(group)
                except EventLogUnavailable:
                    self._wakes_sent.discard(group)
                    raise
                continue  # the reader may have set live_from while the wake-up was on its way
            await subscription.wait()

    @abc.abstractmethod
    def _start_reading(self) -> None:
        """Start the reader of this process, unless it runs."""

    def _wake_group(self, stream: str) -> int:
        """Which wake-up reaches the reader of ``stream`` (the reader forgets it each round)."""
        return 0

    @abc.abstractmethod
    async def _wake(self, group: int) -> None:
        """Make the reader of ``group`` look at its streams again, now."""

    async def replay_page(
        self, stream: str, after: str | None, upto: str, check: bool
    ) -> list[Frame]:
        if upto == EMPTY and not (check and after is not None):
            return []  # the stream had no entry when this subscriber joined
        # Subscribers that resume from the same ID at once (a worker died, and
        # its clients all come here) share one read.
        page = await self._shared(("history", stream, after, upto, check), self._read_page)
        return list(page)

    async def _read_page(
        self, _: str, stream: str, after: str | None, upto: str, check: bool
    ) -> list[Frame]:
        key = self.key(stream)
        async with self._gate:
            with unavailable(stream):
                if check and after is not None:
                    await self._check_resumable(key, after)
                low = "-" if after is None else "(" + after
                reply = await self.redis.xrange(key, low, upto, count=self.batch)
                entries = cast(list[Entry], reply)
                if len(entries) == self.batch and after is not None:
                    await self._check_not_trimmed(key, after)
        return [frame for entry in entries if (frame := self._frame(key, *entry)) is not None]

    async def _shared(
        self, what: tuple[Any, ...], read: Callable[..., Coroutine[Any, Any, T]]
    ) -> T:
        """``await read(*what)``, shared with every caller that asks the same meanwhile.

        The read runs in a task of its own, so a caller that is cancelled
        (its client left) cancels nothing that the others wait for.
        """
        lookup = self._lookups.get(what)
        if lookup is None:
            lookup = asyncio.get_running_loop().create_task(read(*what))
            self._lookups[what] = lookup
            lookup.add_done_callback(functools.partial(self._looked_up, what))
        return cast(T, await asyncio.shield(lookup))

    def _looked_up(self, what: tuple[Any, ...], lookup: asyncio.Task[Any]) -> None:
        if self._lookups.get(what) is lookup:
            del self._lookups[what]
        if not lookup.cancelled():
            lookup.exception()  # retrieved, even when every caller was cancelled meanwhile

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

    @staticmethod
    def position(event_id: str) -> tuple[int, int]:
        found = _STREAM_ID.fullmatch(event_id)
        return (int(found[1]), int(found[2])) if found is not None else (0, 0)

    def _frame(self, key: str, entry_id: str, fields: Mapping[str, str]) -> Frame | None:
        event = _event(key, entry_id, fields)
        if event is None:
            return None
        return make_frame(entry_id, event.data, event.event, self.position(entry_id))

    # Look-ups.

    async def exists(self, stream: str) -> bool:
        self._bind_loop()
        async with self._gate:
            with unavailable():
                return bool(await self.redis.exists(self.key(stream)))

    async def last(self, stream: str) -> Event | None:
        """The newest event of ``stream``; callers that ask at once share one look-up."""
        self._bind_loop()
        return await self._shared(("last", stream), self._find_last)

    async def _find_last(self, _: str, stream: str) -> Event | None:
        key = self.key(stream)
        newest = "+"
        while True:  # back past entries that _event() skips, a page at a time
            async with self._gate:
                with unavailable(stream):
                    reply = await self.redis.xrevrange(key, newest, "-", count=_LAST_PAGE)
            entries = cast(list[Entry] | None, reply) or []  # decode_responses=True
            for entry_id, fields in entries:
                event = _event(key, entry_id, fields)
                if event is not None:
                    return event
            if len(entries) < _LAST_PAGE:
                return None
            newest = "(" + entries[-1][0]  # exclusive: before the oldest one seen

    async def expire(self, stream: str, seconds: float) -> None:
        self._bind_loop()
        async with self._gate:
            with unavailable():
                await self.redis.expire(self.key(stream), max(1, round(seconds)))

    # The reader's side: cursors, read from a client the subclass chooses.

    async def _pipelined(
        self,
        client: Redis | RedisCluster,
        items: list[T],
        command: Callable[[Any, T], object],
    ) -> AsyncIterator[tuple[T, Any]]:
        """Each item with its reply: ``command(pipe, item)``, a pipeline per few hundred items.

        A fault in any reply is raised (the reader retries); any other error
        is the item's reply.
        """
        for start in range(0, len(items), _PIPELINE):
            chunk = items[start : start + _PIPELINE]
            async with client.pipeline(transaction=False) as pipe:
                for item in chunk:
                    command(pipe, item)
                replies = await pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, faults()):
                    raise reply
            for pair in zip(chunk, replies, strict=True):
                yield pair

    def _handed_out(self, streams: Iterable[str]) -> list[tuple[str, str]]:
        """Each of these streams whose reader has handed out events, with its cursor."""
        return [(n, c) for n in streams if (c := self._cursors.get(n)) not in (None, EMPTY)]

    async def _resolve(self, client: Redis | RedisCluster, streams: Iterable[str]) -> None:
        """Give each of these new streams its ``live_from``: its newest ID now (``0-0`` if none)."""
        names = [name for name in streams if name in self._unresolved]

        def newest(pipe: Any, name: str) -> None:
            pipe.xrevrange(self.key(name), "+", "-", count=1)

        async for name, entries in self._pipelined(client, names, newest):
            fanout = self._fanouts.get(name)
            if name not in self._unresolved or fanout is None:
                continue  # its subscribers all left meanwhile
            if isinstance(entries, Exception):
                self._unreadable(name, entries)
                continue
            self._unresolved.discard(name)
            self._unreadable_told.discard(name)
            cursor = self._cursors[name] = entries[0][0] if entries else EMPTY
            fanout.start_live(cursor)

    async def _gone_back(self, client: Redis | RedisCluster, streams: Iterable[str]) -> None:
        """End the subscriptions of each stream here that no longer holds the entry of its cursor.

        The last entry handed out must still be there: a promoted replica
        that lacked it may have taken newer appends since, which a look at
        the newest entry alone would not tell from a stream that went on.
        """

        def entry(pipe: Any, item: tuple[str, str]) -> None:
            name, cursor = item
            pipe.xrange(self.key(name), cursor, cursor, count=1)

        async for (name, cursor), reply in self._pipelined(
            client, self._handed_out(streams), entry
        ):
            if isinstance(reply, Exception):
                self._unreadable(name, reply)
            elif not reply and self._cursors.get(name) == cursor:
                logger.warning(
                    "%s went back past %s (that entry is gone); its subscribers reset",
                    self.key(name),
                    cursor,
                )
                self._fail_stream(name, EventIDNotFound(cursor, trimmed=False))

    def _reset_all(self, streams: Iterable[str]) -> None:
        """The data set is new: the subscribers of each stream that had handed out events reset."""
        gone = self._handed_out(streams)
        if gone:
            logger.warning(
                "Redis lost its data (restarted without persistence?): the subscribers "
                "of %d streams are told to reset",
                len(gone),
            )
        for name, cursor in gone:
            self._fail_stream(name, EventIDNotFound(cursor, trimmed=False))

    async def _read_streams(self, client: Redis | RedisCluster, streams: Iterable[str]) -> None:
        """Read each of these streams from its cursor, a pipeline per few hundred streams.

        A stream stays stale until what was read of it is handed out: after a
        fault, the reader reads it again. One whose batch came back full may
        have more: it stays stale too.
        """
        held = []
        for name in streams:
            cursor = self._cursors.get(name)
            if cursor is None:
                self._stale.discard(name)  # forgotten meanwhile: nothing to read
            else:
                held.append((name, cursor))

        def read(pipe: Any, item: tuple[str, str]) -> None:
            name, cursor = item
            pipe.xread({self.key(name): cursor}, count=self.batch)

        async for (name, cursor), reply in self._pipelined(client, held, read):
            if isinstance(reply, Exception):
                self._unreadable(name, reply)
                continue
            full = False
            for key, entries in streams_of(reply):
                full = len(entries) == self.batch  # there may be more: read on
                await self._hand_out(client, name, key, cursor, entries)
            if not full:
                self._stale.discard(name)

    async def _hand_out(
        self,
        client: Redis | RedisCluster,
        name: str,
        key: str,
        read_from: str,
        entries: list[Entry],
    ) -> None:
        """Give one stream's new entries, read after ``read_from``, to its fan-out.

        Nothing is handed out unless the cursor is still ``read_from``: a
        stream read twice at once (two readers while its slot changes hands)
        hands each entry out once.
        """
        if self._cursors.get(name) != read_from:
            return  # its subscribers left, or another read moved the cursor meanwhile
        if len(entries) == self.batch and read_from != EMPTY:
            trimmed = not await client.xrange(key, "-", read_from, count=1)
            fanout = self._fanouts.get(name)
            if trimmed and fanout is not None and self._cursors.get(name) == read_from:
                # Fell more than maxlen behind: end the stream's subscriptions;
                # each client comes back with its last ID and is told.
                logger.warning("the reader fell behind %s past its trimming", key)
                fanout.drop_all()
                return
        fanout = self._fanouts.get(name)
        if fanout is None or self._cursors.get(name) != read_from:
            return
        for entry_id, fields in entries:
            if self._fanouts.get(name) is not fanout:
                # Its last subscriber was dropped for being slow: the stream is
                # forgotten, and a new one starts from a fresh look-up.
                return
            self._cursors[name] = entry_id  # past a skipped entry too
            frame = self._frame(key, entry_id, fields)
            if frame is not None:
                fanout.deliver(frame)

    def _unreadable(self, name: str, exc: Exception) -> None:
        """``name`` cannot be read (``WRONGTYPE``...): its subscriptions end; the others go on."""
        if name not in self._unreadable_told:
            self._unreadable_told.add(name)
            logger.warning(
                "stream %s cannot be read (%s); its subscribers are asked to come back later",
                self.key(name),
                exc,
            )
        self._fail_stream(name, EventLogUnavailable(f"stream {name!r} cannot be read: {exc}"))

    def _fail_all(self, error: Exception) -> None:
        """End every subscription with ``error``."""
        for fanout in list(self._fanouts.values()):
            fanout.fail(error)

    def _fail_stream(self, name: str, error: Exception) -> None:
        fanout = self._fanouts.get(name)
        self._forget_stream(name)
        if fanout is not None:
            fanout.fail(error)

    async def _supervise(
        self,
        step: Callable[[bool], Coroutine[Any, Any, bool]],
        what: str,
        delays: tuple[type[Exception], ...] = (),
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Run ``step`` again and again until it returns false or the log closes.

        ``step(after_fault)`` is told whether the last attempt failed (then it
        checks whether the log went back before it reads on). A fault of the
        connection (or one of ``delays``) is a delay: one warning, a backoff,
        then on from the cursors. Any other error is logged once, ends the
        subscriptions ``on_error`` names (every one by default) with
        :class:`~asgi_stream.EventLogUnavailable` (their clients come back
        later), and is retried the same way.
        """
        failures = 0
        after_fault = True  # at the start too: did the log go back?
        while not self._closing:
            try:
                if not await step(after_fault):
                    return
                after_fault = False
            except (*faults(), *delays) as exc:
                failures += 1
                after_fault = True
                if failures == 1:
                    logger.warning("%s waits for Redis (%s) and retries", what, exc)
                await asyncio.sleep(backoff(failures))
                continue
            except Exception as exc:
                failures += 1
                after_fault = True
                if failures == 1:
                    logger.error("%s failed: %s; it retries", what, exc, exc_info=exc)
                (on_error or self._fail_all)(EventLogUnavailable(f"{what} failed: {exc}"))
                await asyncio.sleep(backoff(failures))
                continue
            if failures:
                logger.warning("%s reads again, after %d failed attempts", what, failures)
                failures = 0

    def _reader_ended(self, reader: asyncio.Task[None]) -> None:
        """The last line of supervision: a reader that ended by surprise ends every subscription."""
        if reader.cancelled() or reader.exception() is None:
            return
        logger.error("the event log's reader ended", exc_info=reader.exception())
        self._fail_all(EventLogUnavailable("the event log's reader ended"))

    async def _stop_publisher(self) -> None:
        """Let the publishers send what they hold (a second at most), then stop them."""
        lanes = list(self._lanes.values())
        self._lanes = {}
        for lane in lanes:
            lane.filled.set()  # it sees _closing after what it sends now
        tasks = [lane.task for lane in lanes if lane.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for lane in lanes:
            for _, _, added in lane.outbox:
                if not added.done():
                    added.set_exception(RuntimeError("the event log is closed"))
        for lookup in list(self._lookups.values()):
            lookup.cancel()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper


async def _close_at_the_end(clients: Callable[[], tuple[Redis | RedisCluster, ...]]) -> None:
    """Wait until cancelled, then close ``clients()``: at the end of their event loop."""
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        for client in clients():
            await client.aclose()
