"""The event log in one Redis: shared by every worker and host that uses the same Redis.

Theory of operation
===================

What every Redis log does (streams as keys, appends stored once, replays,
trimming, entries we did not write) is in :mod:`asgi_stream.redis_streams`.
This module adds how the one reader of a process learns, with one Redis,
which streams changed. The log's own keys:

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

**Appends.** Every append waiting in the process goes out in one script
call on the publisher's own connection, which ``XADD``\\s each event and
adds one entry to the notification stream naming the streams. A call that
could not be sent at all (no connection) fails at once with
:class:`~asgi_stream.EventLogUnavailable`; one that met a fault after it was
sent is sent again, and stored once.

**One reader per process.** Followers share the log's fan-out (see
:mod:`asgi_stream.fanout`). One task per log, started with the first
subscriber, reads every stream that has local subscribers, each from its
cursor, on a connection of its own, and hands each entry, encoded once, to
that stream's fan-out. It waits in an ``XREAD BLOCK`` on two keys, however
many streams it follows: the notification stream and its wake-up key. A
notification names the streams that changed; the reader then reads those of
them it follows (one non-blocking ``XREAD`` each, in one pipeline) and
nothing else. A follower holds no connection and sends no command, and a
follower that leaves is forgotten at once (redis-py can lose a cancellation
that lands inside a command; a follower is never inside one). ``XADD`` wakes
a blocked ``XREAD``, so this is push, not polling.

A stream gets its first local subscriber while the reader is blocked. The
subscriber wakes it by ``XADD``-ing to the wake-up key (an entry written
before the reader's next ``XREAD`` still wakes that one: nothing is lost to a
race), and the reader gives the stream its ``live_from``.

**Faults.** The reader's socket timeout is longer than its ``BLOCK``, so a
quiet stream never times out. When Redis restarts or stalls, the reader logs
one warning, retries with a growing backoff (up to 2 s), checks whether the
log went back (one epoch key for the whole data set), and goes on from its
cursors: its subscribers see a delay, never a gap or a duplicate. The
notification stream is trimmed too (10,000 entries): a reader that finds its
place in it trimmed away reads every stream it follows once.

An entry written straight into Redis is replayed to clients that resume, but
a live follower gets it only with the next notification: write through
``append`` (or add an entry naming the stream to ``asgi-stream.changed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any, cast

from .eventlog_base import EventLogUnavailable
from .redis_streams import (
    APPEND_SCRIPT,
    EMPTY,
    AppendCall,
    RedisStreamsLog,
    streams_of,
    unavailable,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = ["RedisEventLog"]

logger = logging.getLogger(__name__)

_KEY_PREFIX = "asgi-stream:"
# Keys of the log's own, none of which is a stream name's key (those all start with _KEY_PREFIX).
_CHANGED_KEY = "asgi-stream.changed"  # the notification stream: which streams were appended to
_EPOCH_KEY = "asgi-stream.epoch"  # drawn once per Redis data set; gone when the data is gone
_APPLIED_PREFIX = "asgi-stream.applied:"  # one per publisher round trip: what it stored
_WAKE_PREFIX = "asgi-stream.wake:"
_WAKE_SECONDS = 3600  # a wake key left by a killed process goes away by itself
# Notifications kept (MAXLEN ~); a reader that falls further behind reads every stream once.
_CHANGED_MAXLEN = 10_000


class RedisEventLog(RedisStreamsLog):
    """An :class:`~asgi_stream.eventlog.EventLog` in the Redis Streams of one Redis.

    ``url`` is a redis-py URL such as ``redis://127.0.0.1:6379/0``. ``batch``
    is how many entries one read fetches; ``block_ms`` how long the shared
    reader's ``XREAD BLOCK`` waits before it asks again; ``socket_timeout``
    (seconds) how long any command may take before the connection counts as
    broken, and must be longer than ``block_ms``. An append that meets a
    fault after it was sent is sent again, and stored once, for up to
    ``append_timeout`` seconds. ``max_pending`` bounds each subscriber's
    buffer.
    """

    def _open_connections(self) -> None:
        from redis.asyncio import Redis  # the optional extra, imported only when used
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff, NoBackoff

        # Commands: the pool that replays and looks up, a few at a time at
        # most, so that a storm of resuming clients queues in asyncio, where
        # a cancellation is safe, and never finds the pool exhausted. One
        # quick retry covers a connection that a Redis restart broke while it
        # sat idle; a health check before a command on a connection idle that
        # long finds most of them first. Only reads and idempotent commands
        # go through this pool.
        timeout = self.options["socket_timeout"]
        self.redis: Redis = Redis.from_url(
            self._url,
            client_name="asgi-stream-commands",
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
            health_check_interval=max(1, int(timeout)),
            **self.options,
        )
        # The publisher's own connection, and the shared reader's: both retry
        # by themselves (the publisher with the same script, the reader from
        # its cursors), so redis-py does not.
        no_retry = {**self.options, "retry": Retry(NoBackoff(), 0)}
        self._publisher_redis: Redis = Redis.from_url(
            self._url,
            single_connection_client=True,
            client_name="asgi-stream-publisher",
            **no_retry,
        )
        self._append_script = self._publisher_redis.register_script(APPEND_SCRIPT)
        self._reader_redis: Redis = Redis.from_url(
            self._url, single_connection_client=True, client_name="asgi-stream-reader", **no_retry
        )
        super()._open_connections()
        self._wake_key = _WAKE_PREFIX + secrets.token_hex(8)
        self._reader: asyncio.Task[None] | None = None
        self._changed_cursor: str | None = None  # where the reader is in _CHANGED_KEY
        self._epoch: str | None = None  # the Redis data set's, when the reader started
        self._wake_cursor = EMPTY  # the key is this log's own: any entry in it is a wake-up

    def _clients(self) -> tuple[Redis | RedisCluster, ...]:
        return (self.redis, self._publisher_redis, self._reader_redis)

    @staticmethod
    def key(stream: str) -> str:
        """The Redis key that holds ``stream``."""
        return _KEY_PREFIX + stream

    # The publisher.

    def _calls(self, streams: list[str], fields: list[list[str]]) -> list[AppendCall]:
        keys = [_APPLIED_PREFIX + secrets.token_hex(16), _CHANGED_KEY]
        keys += [self.key(stream) for stream in streams]
        names = "\n".join(dict.fromkeys(streams))
        args: list[str | int] = [self.applied_seconds, self.maxlen, _CHANGED_MAXLEN, names]
        for each in fields:
            args += [len(each), *each]
        return [AppendCall(keys, args, list(range(len(streams))))]

    async def _send(self, calls: list[AppendCall]) -> list[Any]:
        (call,) = calls
        try:
            return [await self._append_script(call.keys, call.args)]
        except Exception as exc:  # a fault is sent again; any other error fails its appends
            return [exc]

    async def _before_send(self) -> None:
        """Make sure the publisher's connection is open (a fault here means nothing was sent)."""
        client = await self._publisher_redis.initialize()
        connection: Any = client.connection
        if not connection.is_connected:
            await connection.connect()

    # The reader's start, and its wake-up (see RedisStreamsLog.wait_live_from).

    def _start_reading(self) -> None:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(
                self._supervise(self._read_step, "the event log's reader"),
                name=f"asgi-stream reader {self._wake_key}",
            )
            self._reader.add_done_callback(self._reader_gone)

    def _reader_gone(self, reader: asyncio.Task[None]) -> None:
        if self._reader is reader and not reader.cancelled() and reader.exception() is not None:
            self._reader = None  # the next subscriber starts another
        self._reader_ended(reader)

    async def _wake(self, group: int = 0) -> None:
        """Make the reader's blocked ``XREAD`` return, so that it looks at its streams again."""
        async with self._gate:
            with unavailable():
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(self._wake_key, {"w": 1}, maxlen=1)
                    pipe.expire(self._wake_key, _WAKE_SECONDS)
                    await pipe.execute()

    # The shared reader.

    async def _read_step(self, after_fault: bool) -> bool:
        """One round of the reader: new streams, stale streams, then wait for a change."""
        # A subscriber that joins a new stream from now on sends a wake-up of
        # its own (an earlier one may be spent already); spares only make an
        # XREAD return early.
        self._wakes_sent.clear()
        if after_fault:
            await self._check_not_gone_back()
        if self._unresolved:
            await self._resolve(self._reader_redis, list(self._unresolved))
        if self._stale:
            await self._read_streams(self._reader_redis, list(self._stale))
        await self._wait_for_changes()
        return True

    async def _check_not_gone_back(self) -> None:
        """Tell the subscribers of every stream that lost what it had handed out to reset."""
        async with self._reader_redis.pipeline(transaction=False) as pipe:
            pipe.set(_EPOCH_KEY, secrets.token_hex(8), nx=True)
            pipe.get(_EPOCH_KEY)
            pipe.xrevrange(_CHANGED_KEY, "+", "-", count=1)
            _, epoch, newest = await pipe.execute()
        if self._changed_cursor is None:  # the reader's start: notifications from now on
            self._changed_cursor = newest[0][0] if newest else EMPTY
        if self._epoch is None:
            self._epoch = epoch
        elif epoch != self._epoch:
            self._epoch = epoch
            self._changed_cursor = EMPTY  # every notification of the new data set is news
            self._reset_all(list(self._cursors))
        else:
            await self._gone_back(self._reader_redis, list(self._cursors))

    async def _wait_for_changes(self) -> None:
        """Wait for a notification (or a wake-up); mark the streams it names as stale.

        The reader blocks on two keys however many streams it follows: the
        notification stream, which every append of the script writes to,
        and this log's wake key.
        """
        assert self._changed_cursor is not None  # _check_not_gone_back set it
        streams = {_CHANGED_KEY: self._changed_cursor, self._wake_key: self._wake_cursor}
        block = None if self._stale else self.block_ms  # more to read: do not wait
        reply = await self._reader_redis.xread(cast(Any, streams), count=self.batch, block=block)
        for key, entries in streams_of(reply):
            if key == self._wake_key:
                self._wake_cursor = entries[-1][0]
                continue
            if len(entries) == self.batch and self._changed_cursor != EMPTY:
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
            with contextlib.suppress(EventLogUnavailable), unavailable():
                await self.redis.delete(self._wake_key)
        await self._stop_publisher()
