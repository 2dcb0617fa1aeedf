"""The event log in Redis Streams, shared by every worker and host that uses the same Redis.

Theory of operation
===================

A Redis Stream is an append-only log with IDs that only grow, which is what an
:class:`~asgi_stream.eventlog.EventLog` is, so the mapping is direct:

* a log stream ``name`` is the Redis key ``asgi-stream:name``;
* ``append`` is an ``XADD key MAXLEN ~ maxlen * data ... [event ...]`` (inside
  a script, below), and the entry ID Redis chooses (``"1732412345678-0"``) is
  the SSE event ID. ``MAXLEN ~`` trims whole internal nodes, which is much
  cheaper than trimming to the exact length: a stream keeps *at least*
  ``maxlen`` entries;
* ``exists``, ``last`` and ``expire`` are ``EXISTS``, ``XREVRANGE key + -
  COUNT n`` and ``EXPIRE``.

Because the data lives in Redis, a job started by one process can be
followed, and resumed, through any other. The log's own keys:

=========================  ==========================================================
key                        what it is
=========================  ==========================================================
``asgi-stream:NAME``       the stream ``NAME``
``asgi-stream.changed``    the *notification stream*: each publisher round trip adds
                           one entry naming the streams it appended to
``asgi-stream.epoch``      a random value drawn once per Redis data set
``asgi-stream.applied:T``  what round trip ``T`` stored (it expires in a minute or two)
``asgi-stream.wake:P``     process ``P``'s wake-up key (see below)
=========================  ==========================================================

**Appends are stored once.** Every append waiting in the process goes out in
one script call on the publisher's own connection. The script first looks
for the round trip's ``applied`` key: if it is there, the call already ran
(Redis was paused, its reply lost, and the call sent again), and the script
returns the IDs it stored then instead of storing them twice. Otherwise it
``XADD``\\s each event, notes the streams in the notification stream, and
records the IDs under the ``applied`` key. So a call that met a fault
*after* it was sent is sent again, the same, until ``append_timeout`` (30
s): a pause of Redis is a delay for the publisher, never a duplicate. A call
that could not be sent at all (no connection) fails at once with
:class:`~asgi_stream.EventLogUnavailable`. The IDs are still chosen by
Redis, in the script, so any number of publishers on any number of hosts
append to one stream without agreeing on anything.

**One reader per process.** Followers share the log's fan-out (see
:mod:`asgi_stream.fanout`). One task per log, started with the first
subscriber, reads every stream that has local subscribers, each from the last
ID it handed out (its *cursor*), on a connection of its own, and hands each
entry, encoded once, to that stream's fan-out. It waits in an ``XREAD BLOCK``
on two keys, however many streams it follows: the notification stream and
its wake-up key. A notification names the streams that changed; the reader
then reads those of them it follows (one non-blocking ``XREAD`` each, in one
pipeline) and nothing else. A follower holds no connection and sends no
command, and a follower that leaves is forgotten at once (redis-py can lose
a cancellation that lands inside a command; a follower is never inside one).
``XADD`` wakes a blocked ``XREAD``, so this is push, not polling.

A stream gets its first local subscriber while the reader is blocked. The
subscriber wakes it by ``XADD``-ing to the wake-up key (an entry written
before the reader's next ``XREAD`` still wakes that one: nothing is lost to a
race). Before it follows a new stream, the reader looks up its newest ID with
``XREVRANGE``: that is the stream's ``live_from``, and its subscribers
replay up to it with ``XRANGE``, page by page, over the command pool.

**Resume storms queue.** Replays and look-ups go through the command pool, at
most 16 commands at once (fewer if the pool is smaller), and callers that
ask the same thing at once (a worker died, and its clients all resume here
from the same ID, or ask for the same ``last()``) share one read. So however
many clients reconnect at once, they wait their turn in asyncio, and are
never told "Too many connections".

**Faults.** The reader's socket timeout is longer than its ``BLOCK``, so a
quiet stream never times out. When Redis restarts or stalls, the reader logs
one warning, retries with a growing backoff (up to 2 s), and goes on from its
cursors: its subscribers see a delay, never a gap or a duplicate. Any
replay or look-up that meets a fault raises
:class:`~asgi_stream.EventLogUnavailable`, which a response turns into
"retry later" for the client. The reader is *supervised*: an error that is
not a fault of the connection is logged once, ends every subscription with
:class:`~asgi_stream.EventLogUnavailable` (their clients come back a moment
later) and is retried the same way; a stream that alone cannot be read (a key
of another type under the prefix: ``WRONGTYPE``) ends its own subscriptions,
with one warning, and the others go on.

**A log that went back.** Redis without persistence restarts empty, and a
replica promoted after a failover may lack the newest writes. After every
fault, before it reads on, the reader checks. The epoch key is drawn once per
data set (``SET NX``), so a new epoch means the data set is new; a stream
whose newest entry is older than the reader's cursor lost what was handed
out. Either way the stream's subscriptions end with
:class:`~asgi_stream.eventlog.EventIDNotFound` for their last ID, and a
resumable response sends its ``reset`` event (``"reason": "unknown"``: the
log cannot place that ID any more) and goes on from what the log holds now.
A subscriber is told; it never silently skips.

**Trimming.** ``XREAD`` from a cursor that has been trimmed away silently
starts at the oldest entry held. If entries after a cursor were trimmed, at
least ``maxlen`` are held and all are after it, so the batch comes back full
(``n`` is at most ``maxlen``). After a full batch only, ``XRANGE key - cursor
COUNT 1`` asks whether any entry at or before the cursor is left. If none is,
the reader (or a replay) has fallen too far behind: a replay raises
:class:`~asgi_stream.eventlog.EventIDNotFound`, and the shared reader ends
that stream's local subscriptions, whose clients reconnect with their last ID
and are told. A resumed ID is checked before its replay, in one ``MULTI``
transaction that also tells an unknown ID from a trimmed one. The
notification stream is trimmed too (10,000 entries): a reader that finds its
place in it trimmed away reads every stream it follows once.

**Entries we did not write.** Other programs can ``XADD`` to the same key, so
an entry may lack the ``data`` field, carry an ``event`` with a line break,
or hold bytes that are not UTF-8. Sent as an event, such an entry would stop
every reader that resumes from before it, on every reconnection. So each
entry read is checked with :meth:`~asgi_stream.eventlog.EventLog.check_event`,
the rule ``append`` applies, and one that fails is *skipped*, with a warning
that names its ID. Replies are decoded with ``surrogateescape``, so bytes
that are not UTF-8 reach that check instead of failing the whole reply. An
entry written straight into Redis is replayed to clients that resume, but a
live follower gets it only with the next notification: write through
``append`` (or add an entry naming the stream to ``asgi-stream.changed``).

**Event loops.** Connections, tasks and waiters belong to one event loop. A
log used by a new loop after the old one ended (one ``asyncio.run()`` per
test) makes them again; a task of each loop closes that loop's connections
when the loop ends.

The ``redis`` package is an optional extra. It is imported when a
:class:`RedisEventLog` is created, never when this module is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import secrets
from collections.abc import Callable, Coroutine, Iterator, Mapping
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

__all__ = ["RedisEventLog"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_KEY_PREFIX = "asgi-stream:"
# Keys of the log's own, none of which is a stream name's key (those all start with _KEY_PREFIX).
_CHANGED_KEY = "asgi-stream.changed"  # the notification stream: which streams were appended to
_EPOCH_KEY = "asgi-stream.epoch"  # drawn once per Redis data set; gone when the data is gone
_APPLIED_PREFIX = "asgi-stream.applied:"  # one per publisher round trip: what it stored
_WAKE_PREFIX = "asgi-stream.wake:"
_WAKE_SECONDS = 3600  # a wake key left by a killed process goes away by itself
# Notifications kept (MAXLEN ~); a reader that falls further behind reads every stream once.
_CHANGED_MAXLEN = 10_000
_STREAM_ID = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")  # within the 64-bit halves of an ID
_LAST_PAGE = 16  # entries per XREVRANGE when last() looks for the newest event
_BACKOFF_FIRST = 0.05  # seconds before a retry after a fault; doubled up to _BACKOFF_MAX
_BACKOFF_MAX = 2.0
_COMMANDS = 16  # commands in flight at once on the command pool (fewer if the pool is smaller)
_PIPELINE = 500  # streams per pipeline when the reader reads or checks many
_EMPTY = "0-0"  # the cursor of a stream without entries: every ID is after it

# One round trip of the publisher: every append waiting, stored once however
# often the script is sent. KEYS: the round trip's "applied" key, the
# notification stream, then one stream key per append. ARGV: how long the
# applied key lives, MAXLEN, the notification stream's MAXLEN, the names of
# the streams (one per line), then per append its field count and fields.
_APPEND_SCRIPT = """
local applied = redis.call('GET', KEYS[1])
if applied then return cjson.decode(applied) end
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
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 's', ARGV[4])
redis.call('SET', KEYS[1], cjson.encode(ids), 'EX', ARGV[1])
return ids
"""

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
    broken, and must be longer than ``block_ms``. An append that meets a
    fault after it was sent is sent again, and stored once, for up to
    ``append_timeout`` seconds. ``max_pending`` bounds each subscriber's
    buffer.
    """

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
        from redis.asyncio.retry import Retry  # the optional extra, imported only when used
        from redis.backoff import ExponentialBackoff

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
        self.maxlen = maxlen
        self.batch = min(batch, maxlen)  # so that a trimmed cursor always gives a full batch
        self.block_ms = block_ms
        self.append_timeout = append_timeout
        # An "applied" key must outlive every resend of its round trip.
        self._applied_seconds = max(60, math.ceil(2 * (append_timeout + socket_timeout)))
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
        # that long finds most of them first. Only reads and idempotent
        # commands go through this pool.
        commands: dict[str, Any] = {
            **options,
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
            "health_check_interval": max(1, int(socket_timeout)),
        }
        self._url = url
        self._commands = commands
        self._options = options
        self._closing = False
        # A task of the loop that uses the connections, which closes them when
        # the loop ends (asyncio.run() cancels it then) or the log is closed.
        self._keeper: asyncio.Task[None] | None = None
        self._open_connections()

    def _open_connections(self) -> None:
        """Make what belongs to one event loop: connections, tasks, waiters, cursors."""
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Commands: the pool that replays and looks up, _COMMANDS at a time at
        # most, so that a storm of resuming clients queues here, in asyncio,
        # where a cancellation is safe, and never finds the pool exhausted.
        self.redis: Redis = Redis.from_url(
            self._url, client_name="asgi-stream-commands", **self._commands
        )
        pool_size = self.redis.connection_pool.max_connections
        self._gate = asyncio.Semaphore(max(1, min(_COMMANDS, pool_size)))
        self._lookups: dict[tuple[Any, ...], asyncio.Task[Any]] = {}  # see _shared
        # The publisher's own connection, and the shared reader's: both retry
        # by themselves (the publisher with the same script, the reader from
        # its cursors), so redis-py does not.
        no_retry = {**self._options, "retry": Retry(NoBackoff(), 0)}
        self._publisher_redis: Redis = Redis.from_url(
            self._url,
            single_connection_client=True,
            client_name="asgi-stream-publisher",
            **no_retry,
        )
        self._append_script = self._publisher_redis.register_script(_APPEND_SCRIPT)
        self._reader_redis: Redis = Redis.from_url(
            self._url, single_connection_client=True, client_name="asgi-stream-reader", **no_retry
        )
        self._reader: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._outbox: list[tuple[str, list[str], asyncio.Future[str]]] = []
        self._outbox_filled = asyncio.Event()
        #: Per stream the reader reads, the ID of the last entry it handed out.
        self._cursors: dict[str, str] = {}
        self._unresolved: set[str] = set()  # streams whose subscribers wait for a live_from
        self._stale: set[str] = set()  # streams with entries the reader has not read yet
        self._changed_cursor: str | None = None  # where the reader is in _CHANGED_KEY
        self._epoch: str | None = None  # the Redis data set's, when the reader started
        self._unreadable_told: set[str] = set()  # streams whose read error was logged
        self._wake_key = _WAKE_PREFIX + secrets.token_hex(8)
        self._wake_sent = False

    def _new_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._keeper is not None:  # the last loop has ended: so have its tasks and waiters
            self._open_connections()
        clients = (self.redis, self._publisher_redis, self._reader_redis)
        self._keeper = loop.create_task(_close_at_the_end(clients), name="asgi-stream closer")

    @staticmethod
    def key(stream: str) -> str:
        """The Redis key that holds ``stream``."""
        return _KEY_PREFIX + stream

    async def append(self, stream: str, data: str, event: str | None = None) -> str:
        self.check_stream(stream)
        self.check_event(data, event)
        fields = ["data", data] if event is None else ["data", data, "event", event]
        if self._closing:
            raise RuntimeError("the event log is closed")
        self._bind_loop()
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(
                self._publish_forever(), name=f"asgi-stream publisher {self._wake_key}"
            )
        added: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._outbox.append((stream, fields, added))
        self._outbox_filled.set()
        return await added

    async def _publish_forever(self) -> None:
        """Send every append waiting in one script call on one connection; again, until closed.

        Appends made while a call is on its way wait for the next one, so a
        burst of them costs a round trip or two, not one each, and a process
        holds one publishing connection however many tasks append.
        """
        while not self._closing:
            if not self._outbox:
                self._outbox_filled.clear()
                await self._outbox_filled.wait()
                continue
            batch, self._outbox = self._outbox, []
            replies = await self._store(batch)
            for (_, _, added), reply in zip(batch, replies, strict=True):
                if added.done():  # its caller was cancelled
                    continue
                if isinstance(reply, BaseException):
                    added.set_exception(reply)
                else:
                    added.set_result(reply)

    async def _store(
        self, batch: list[tuple[str, list[str], asyncio.Future[str]]]
    ) -> list[str | BaseException]:
        """One round trip of appends, stored once: each one's ID, or its error.

        A command that met a fault after it was sent may have run (Redis was
        paused, not gone): it is sent again, the same, until ``append_timeout``,
        and the script stores it only if its "applied" key is not there yet.
        A command that could not be sent at all (no connection) fails at once.
        """
        from redis.exceptions import ResponseError

        keys = [_APPLIED_PREFIX + secrets.token_hex(16), _CHANGED_KEY]
        keys += [self.key(stream) for stream, _, _ in batch]
        names = "\n".join(dict.fromkeys(stream for stream, _, _ in batch))
        args: list[str | int] = [self._applied_seconds, self.maxlen, _CHANGED_MAXLEN, names]
        for _, fields, _ in batch:
            args += [len(fields), *fields]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.append_timeout
        sent = False
        failures = 0
        while True:
            try:
                if not sent:
                    await self._connect_publisher()
                sent = True
                reply = await self._append_script(keys, args)
                break
            except _faults() as exc:
                if not sent or self._closing or loop.time() >= deadline:
                    maybe = " (the append may have been stored)" if sent else ""
                    error = EventLogUnavailable(f"Redis cannot be reached: {exc}{maybe}")
                    return [error] * len(batch)
                failures += 1
                if failures == 1:
                    logger.warning("Redis did not answer an append (%s); sending it again", exc)
                await asyncio.sleep(min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (failures - 1)))
            except Exception as exc:  # the appends fail, not the publisher: it serves the next
                return [exc] * len(batch)
        if failures:
            logger.warning("Redis answered after %d resends; each append stored once", failures)
        ids = cast(list[str], reply)  # decode_responses=True (see _Entry)
        return [ResponseError(i[1:]) if i.startswith("!") else i for i in ids]

    async def _connect_publisher(self) -> None:
        """Make sure the publisher's connection is open (a fault here means nothing was sent)."""
        client = await self._publisher_redis.initialize()
        connection: Any = client.connection
        if not connection.is_connected:
            await connection.connect()

    # The fan-out's side (see asgi_stream.fanout): join, wait for live_from, replay.

    def _join(self, subscription: LogSubscription) -> None:
        cursor = self._cursors.get(subscription.stream)
        if cursor is not None:  # the reader reads it already: its buffer starts after cursor
            subscription.live_from = cursor
        else:
            self._unresolved.add(subscription.stream)

    async def wait_live_from(self, subscription: LogSubscription) -> None:
        self._bind_loop()
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(
                self._read_forever(), name=f"asgi-stream reader {self._wake_key}"
            )
            self._reader.add_done_callback(self._reader_ended)
        while subscription.live_from is None and not subscription.ended:
            if not self._wake_sent:
                self._wake_sent = True  # one wake-up serves every stream added meanwhile
                try:
                    await self._wake()
                except EventLogUnavailable:
                    self._wake_sent = False
                    raise
                continue  # the reader may have set live_from while the wake-up was on its way
            await subscription.wait()

    async def _wake(self) -> None:
        """Make the reader's blocked ``XREAD`` return, so that it looks at its streams again."""
        async with self._gate:
            with _unavailable():
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(self._wake_key, {"w": 1}, maxlen=1)
                    pipe.expire(self._wake_key, _WAKE_SECONDS)
                    await pipe.execute()

    def _forget_stream(self, stream: str) -> None:
        self._cursors.pop(stream, None)  # the reader stops reading it
        self._unresolved.discard(stream)
        self._stale.discard(stream)

    async def replay_page(
        self, stream: str, after: str | None, upto: str, check: bool
    ) -> list[Frame]:
        if upto == _EMPTY and not (check and after is not None):
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
            with _unavailable(stream):
                if check and after is not None:
                    await self._check_resumable(key, after)
                low = "-" if after is None else "(" + after
                reply = await self.redis.xrange(key, low, upto, count=self.batch)
                entries = cast(list[_Entry], reply)
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

    @staticmethod
    def position(event_id: str) -> tuple[int, int]:
        found = _STREAM_ID.fullmatch(event_id)
        return (int(found[1]), int(found[2])) if found is not None else (0, 0)

    def _frame(self, key: str, entry_id: str, fields: Mapping[str, str]) -> Frame | None:
        event = _event(key, entry_id, fields)
        if event is None:
            return None
        return make_frame(entry_id, event.data, event.event, self.position(entry_id))

    # The shared reader.

    async def _read_forever(self) -> None:
        """Read the streams with local subscribers as they change; until closed.

        Supervised: a fault of the connection is a delay (one warning, a
        backoff, then on from the cursors); any other error is logged once,
        ends every subscription with :class:`~asgi_stream.EventLogUnavailable`
        (their clients come back later), and is retried the same way. A
        stream that alone cannot be read (a key of another type under the
        prefix) ends its own subscriptions only.
        """
        failures = 0
        check = True  # at the start and after a fault: did the log go back?
        wake_cursor = _EMPTY  # the key is this log's own: any entry in it is a wake-up
        while not self._closing:
            # A subscriber that joins a new stream from now on sends a wake-up
            # of its own (an earlier one may be spent already); spares only
            # make an XREAD return early.
            self._wake_sent = False
            try:
                if check:
                    await self._check_not_gone_back()
                    check = False
                if self._unresolved:
                    await self._resolve()
                if self._stale:
                    await self._read_stale()
                wake_cursor = await self._wait_for_changes(wake_cursor)
            except _faults() as exc:
                failures += 1
                check = True
                if failures == 1:
                    logger.warning("Redis is unreachable (%s); the reader retries", exc)
                await asyncio.sleep(min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (failures - 1)))
                continue
            except Exception as exc:
                failures += 1
                check = True
                if failures == 1:
                    logger.error("the event log's reader failed: %s; it retries", exc, exc_info=exc)
                self._fail_all(EventLogUnavailable(f"the event log's reader failed: {exc}"))
                await asyncio.sleep(min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (failures - 1)))
                continue
            if failures:
                logger.warning("the reader reads again, after %d failed attempts", failures)
                failures = 0

    def _reader_ended(self, reader: asyncio.Task[None]) -> None:
        """The last line of supervision: a reader that ended by surprise is made again."""
        if reader.cancelled() or reader.exception() is None:
            return
        logger.error("the event log's reader ended", exc_info=reader.exception())
        if self._reader is reader:
            self._reader = None  # the next subscriber starts another
        self._fail_all(EventLogUnavailable("the event log's reader ended"))

    def _fail_all(self, error: Exception) -> None:
        """End every subscription with ``error``."""
        for fanout in list(self._fanouts.values()):
            fanout.fail(error)

    def _fail_stream(self, name: str, error: Exception) -> None:
        fanout = self._fanouts.get(name)
        self._forget_stream(name)
        if fanout is not None:
            fanout.fail(error)

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

    async def _check_not_gone_back(self) -> None:
        """Tell the subscribers of every stream that lost what it had handed out to reset.

        Redis without persistence restarts empty, and a replica promoted
        after a failover may lack the newest entries. The epoch key, drawn
        once per data set, tells the first; a stream whose newest entry is
        older than the reader's cursor tells the second.
        """
        async with self._reader_redis.pipeline(transaction=False) as pipe:
            pipe.set(_EPOCH_KEY, secrets.token_hex(8), nx=True)
            pipe.get(_EPOCH_KEY)
            pipe.xrevrange(_CHANGED_KEY, "+", "-", count=1)
            _, epoch, newest = await pipe.execute()
        if self._changed_cursor is None:  # the reader's start: notifications from now on
            self._changed_cursor = newest[0][0] if newest else _EMPTY
        if self._epoch is None:
            self._epoch = epoch
            return
        if epoch != self._epoch:
            self._epoch = epoch
            self._changed_cursor = _EMPTY  # every notification of the new data set is news
            gone = [(name, cursor) for name, cursor in self._cursors.items() if cursor != _EMPTY]
            if gone:
                logger.warning(
                    "Redis lost its data (restarted without persistence?): the subscribers "
                    "of %d streams are told to reset",
                    len(gone),
                )
        else:
            gone = []
            held = [(name, cursor) for name, cursor in self._cursors.items() if cursor != _EMPTY]
            for start in range(0, len(held), _PIPELINE):
                chunk = held[start : start + _PIPELINE]
                async with self._reader_redis.pipeline(transaction=False) as pipe:
                    for name, _ in chunk:
                        pipe.xrevrange(self.key(name), "+", "-", count=1)
                    replies = await pipe.execute(raise_on_error=False)
                for (name, cursor), reply in zip(chunk, replies, strict=True):
                    if isinstance(reply, Exception):
                        self._unreadable(name, reply)
                    elif not reply or self.position(reply[0][0]) < self.position(cursor):
                        gone.append((name, cursor))
            for name, cursor in gone:
                logger.warning(
                    "%s went back past %s; its subscribers reset", self.key(name), cursor
                )
        for name, cursor in gone:
            self._fail_stream(name, EventIDNotFound(cursor, trimmed=False))

    async def _resolve(self) -> None:
        """Give each new stream its ``live_from``: its newest ID now (``0-0`` if it has none)."""
        streams = list(self._unresolved)
        for start in range(0, len(streams), _PIPELINE):
            chunk = streams[start : start + _PIPELINE]
            async with self._reader_redis.pipeline(transaction=False) as pipe:
                for name in chunk:
                    pipe.xrevrange(self.key(name), "+", "-", count=1)
                newest = await pipe.execute(raise_on_error=False)
            for name, entries in zip(chunk, newest, strict=True):
                fanout = self._fanouts.get(name)
                if name not in self._unresolved or fanout is None:
                    continue  # its subscribers all left meanwhile
                if isinstance(entries, Exception):
                    self._unreadable(name, entries)
                    continue
                self._unresolved.discard(name)
                self._unreadable_told.discard(name)
                cursor = self._cursors[name] = entries[0][0] if entries else _EMPTY
                fanout.start_live(cursor)

    async def _wait_for_changes(self, wake_cursor: str) -> str:
        """Wait for a notification (or a wake-up); mark the streams it names as stale.

        The reader blocks on two keys however many streams it follows: the
        notification stream, which every append of the script writes to,
        and this log's wake key. Returns the new wake cursor.
        """
        assert self._changed_cursor is not None  # _check_not_gone_back set it
        streams = {_CHANGED_KEY: self._changed_cursor, self._wake_key: wake_cursor}
        block = None if self._stale else self.block_ms  # more to read: do not wait
        reply = await self._reader_redis.xread(cast(Any, streams), count=self.batch, block=block)
        for key, entries in _streams_of(reply):
            if key == self._wake_key:
                wake_cursor = entries[-1][0]
                continue
            if len(entries) == self.batch and self._changed_cursor != _EMPTY:
                lost = not await self._reader_redis.xrange(
                    _CHANGED_KEY, "-", self._changed_cursor, count=1
                )
                if lost:  # notifications trimmed before this reader saw them: read everything
                    self._stale.update(self._cursors)
            self._changed_cursor = entries[-1][0]
            for _, fields in entries:
                for name in fields.get("s", "").split("\n"):
                    if name in self._cursors:
                        self._stale.add(name)
        return wake_cursor

    async def _read_stale(self) -> None:
        """Read each stale stream from its cursor, one pipeline per few hundred streams."""
        names = list(self._stale)
        self._stale.clear()
        for start in range(0, len(names), _PIPELINE):
            chunk = [
                (n, self._cursors[n])
                for n in names[start : start + _PIPELINE]
                if n in self._cursors
            ]
            if not chunk:
                continue
            async with self._reader_redis.pipeline(transaction=False) as pipe:
                for name, cursor in chunk:
                    pipe.xread({self.key(name): cursor}, count=self.batch)
                replies = await pipe.execute(raise_on_error=False)
            for (name, _), reply in zip(chunk, replies, strict=True):
                if isinstance(reply, Exception):
                    self._unreadable(name, reply)
                    continue
                for key, entries in _streams_of(reply):
                    if len(entries) == self.batch:
                        self._stale.add(name)  # there may be more: read on before blocking
                    await self._hand_out(key, entries)

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
                fanout.drop_all()
                return
        fanout = self._fanouts.get(name)
        if fanout is None or self._cursors.get(name) != cursor:
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
        async with self._gate:
            with _unavailable():
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
                with _unavailable(stream):
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
        async with self._gate:
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
        for lookup in list(self._lookups.values()):
            lookup.cancel()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper


async def _close_at_the_end(clients: tuple[Redis, ...]) -> None:
    """Wait until cancelled, then close ``clients``: at the end of their event loop."""
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        for client in clients:
            await client.aclose()


def _faults() -> tuple[type[Exception], ...]:
    """The exceptions that mean "Redis cannot be reached now"."""
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError)


@contextlib.contextmanager
def _unavailable(stream: str | None = None) -> Iterator[None]:
    """Raise a Redis fault as :class:`EventLogUnavailable`, which callers can answer.

    With ``stream``, an error of a read of that stream too (``WRONGTYPE``: a
    key of another type under the prefix): its clients are asked to come
    back later, and the log goes on with the others.
    """
    from redis.exceptions import ResponseError

    try:
        yield
    except _faults() as exc:
        raise EventLogUnavailable(f"Redis cannot be reached: {exc}") from exc
    except ResponseError as exc:
        if stream is None:
            raise
        raise EventLogUnavailable(f"stream {stream!r} cannot be read: {exc}") from exc


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
