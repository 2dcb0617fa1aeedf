"""The event log in Redis Streams, shared by every worker and host that uses the same Redis.

Theory of operation
===================

A Redis Stream is an append-only log with IDs that only grow, which is what an
:class:`~asgi_stream.eventlog.EventLog` is, so the mapping is direct:

* a log stream ``name`` is the Redis key ``asgi-stream:name``;
* ``append`` is ``XADD key MAXLEN ~ maxlen * data ... [event ...]``, and the
  entry ID Redis chooses (``"1732412345678-0"``) is the SSE event ID;
* ``read`` keeps a cursor, as the in-memory log does, and repeats one
  command: ``XREAD COUNT n BLOCK ms STREAMS key cursor``. It returns at once
  with up to ``n`` entries after the cursor when there is a backlog (the
  replay), and otherwise waits until the next entry is appended (live). It is
  the same command in both phases, so the switch can neither skip nor repeat
  an entry.

``MAXLEN ~`` trims whole internal nodes, which is much cheaper than trimming to
the exact length: a stream keeps *at least* ``maxlen`` entries. ``XREAD`` from
a cursor that has been trimmed away silently starts at the oldest entry held,
so the log checks. It need not check every time: if entries after the cursor
were trimmed, at least ``maxlen`` are held and all of them are after the
cursor, so the batch comes back full (``n`` is at most ``maxlen``). After a
full batch only, ``XRANGE key - cursor COUNT 1`` asks whether any entry at or
before the cursor is left; if none is, the reader gets
:class:`~asgi_stream.eventlog.EventIDNotFound` with ``trimmed`` true. (Redis
cannot say whether the entries right *after* a trimmed cursor are all still
there, so this may report a gap when the oldest entry held is the next one.)
A resumed ``after`` is checked the same way before the first read, in one
``MULTI`` transaction that also tells an unknown ID from a trimmed one.

Because the data lives in Redis, a job started by one process can be read,
and resumed, through any other. ``exists``, ``last`` and ``expire`` are
``EXISTS``, ``XREVRANGE key + - COUNT n`` and ``EXPIRE``.

**Entries we did not write.** Other programs can ``XADD`` to the same key, so
an entry may lack the ``data`` field, carry an ``event`` with a line break,
or hold bytes that are not UTF-8. Sent as an event, such an entry would stop
every reader that resumes from before it, on every reconnection. So each
entry read is checked with :meth:`~asgi_stream.eventlog.EventLog.check_event`,
the rule ``append`` applies, and one that fails is *skipped*, with a warning
that names its ID: the readers go on, and the log says what was left out.
Replies are decoded with ``surrogateescape``, so bytes that are not UTF-8
reach that check instead of failing the whole reply; ``last`` skips such an
entry in the same way.

Each reader that waits in ``XREAD BLOCK`` holds one connection of the pool
while it waits. When the reader is cancelled (its client left), redis-py
closes that connection rather than leave an unread reply on it.

The ``redis`` package is an optional extra. It is imported when a
:class:`RedisEventLog` is created, never when this module is imported.

This module imports the interface from :mod:`asgi_stream.eventlog_base`, never
from :mod:`asgi_stream.eventlog`: that module imports this one (lazily, in
:func:`~asgi_stream.eventlog.open_event_log`), and the imports go one way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, cast

from .eventlog_base import DEFAULT_MAXLEN, Event, EventIDNotFound, EventLog

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.typing import EncodableT, FieldT

__all__ = ["RedisEventLog"]

logger = logging.getLogger(__name__)

_KEY_PREFIX = "asgi-stream:"
_STREAM_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")  # within the 64-bit halves of an ID
_LAST_PAGE = 16  # entries per XREVRANGE when last() looks for the newest event

# One stream entry, its ID and its fields, as our client receives it. redis-py's
# types say bytes | str wherever a reply holds text; decode_responses=True makes it
# always a str, which the types cannot see, so the replies are cast to this.
_Entry = tuple[str, Mapping[str, str]]


class RedisEventLog(EventLog):
    """An :class:`~asgi_stream.eventlog.EventLog` in Redis Streams.

    ``url`` is a redis-py URL such as ``redis://127.0.0.1:6379/0``. ``batch``
    is how many entries one read fetches; ``block_ms`` how long one ``XREAD
    BLOCK`` waits before it asks again.
    """

    def __init__(
        self, url: str, maxlen: int = DEFAULT_MAXLEN, batch: int = 500, block_ms: int = 10_000
    ) -> None:
        from redis.asyncio import Redis  # the optional extra, imported only when used

        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self.batch = min(batch, maxlen)  # so that a trimmed cursor always gives a full batch
        self.block_ms = block_ms
        # surrogateescape: an entry that another program wrote in another
        # encoding is skipped by _event(), and not the end of the reader.
        self.redis: Redis = Redis.from_url(
            url, decode_responses=True, encoding_errors="surrogateescape"
        )

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
        entry_id = await self.redis.xadd(
            self.key(stream), fields, maxlen=self.maxlen, approximate=True
        )
        return cast(str, entry_id)  # decode_responses=True (see _Entry)

    async def read(self, stream: str, after: str | None = None) -> AsyncGenerator[Event, None]:
        self.check_stream(stream)
        key = self.key(stream)
        if after is not None:
            await self._check_resumable(key, after)
        cursor = after or "0-0"
        while True:
            # Returns at once when there is a backlog, else waits for the next entry.
            reply = await self.redis.xread({key: cursor}, count=self.batch, block=self.block_ms)
            batch = _entries(reply)
            if len(batch) == self.batch and cursor != "0-0":
                await self._check_not_trimmed(key, cursor)
            for entry_id, fields in batch:
                cursor = entry_id  # past a skipped entry too
                event = _event(key, entry_id, fields)
                if event is not None:
                    yield event

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
        return bool(await self.redis.exists(self.key(stream)))

    async def last(self, stream: str) -> Event | None:
        key = self.key(stream)
        newest = "+"
        while True:  # back past entries that _event() skips, a page at a time
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
        await self.redis.expire(self.key(stream), max(1, round(seconds)))

    async def aclose(self) -> None:
        await self.redis.aclose()


def _entries(xread_reply: Any) -> list[_Entry]:
    """The entries of one stream from an XREAD reply, in RESP2 or RESP3 shape."""
    if not xread_reply:
        return []
    if isinstance(xread_reply, Mapping):  # RESP3: {key: [entries]}
        (for_key,) = xread_reply.values()
        entries: list[_Entry] = for_key[0]
    else:  # RESP2: [[key, entries]]
        entries = xread_reply[0][1]
    return entries


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
