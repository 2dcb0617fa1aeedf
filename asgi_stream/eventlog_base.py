"""What every event log is: the :class:`EventLog` interface and the types it shares.

This module is the bottom of the event-log modules, so that they import in one
direction only:

* :mod:`asgi_stream.eventlog_base` (this module) imports nothing from the others;
* :mod:`asgi_stream.redis_eventlog` imports it, to implement :class:`EventLog`;
* :mod:`asgi_stream.eventlog` imports it too, re-exports its names, adds the
  in-memory log, and imports :mod:`asgi_stream.redis_eventlog` only inside
  :func:`~asgi_stream.eventlog.open_event_log`, when a Redis URL asks for it.

A backend never imports :mod:`asgi_stream.eventlog`, which would make the two
import each other. Users need not import this module: every name in it is also
importable from :mod:`asgi_stream.eventlog`, whose docstring explains how a log
works.
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from .sse import ServerSentEvent

__all__ = ["Event", "EventIDNotFound", "EventLog"]

#: How many events each stream keeps, unless told otherwise.
DEFAULT_MAXLEN = 10_000

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


class EventLog(abc.ABC):
    """Named, bounded, append-only streams of events; see :mod:`asgi_stream.eventlog`."""

    @abc.abstractmethod
    async def append(self, stream: str, data: str, event: str | None = None) -> str:
        """Add an event at the end of ``stream`` (created if needed); its ID.

        Raises :class:`TypeError` or :class:`ValueError`, and stores nothing,
        when :meth:`check_stream` or :meth:`check_event` refuses the arguments.
        """

    @abc.abstractmethod
    def read(self, stream: str, after: str | None = None) -> AsyncGenerator[Event, None]:
        """The events after ``after`` (all held ones if ``None``), then new ones, forever.

        Raises :class:`EventIDNotFound` when ``after`` cannot be resumed, or
        when the reader falls so far behind that events after its position
        were trimmed. An async generator: close it (``contextlib.aclosing``)
        when done.
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
        ServerSentEvent(event=event)  # the SSE rules for an event type
        _check_utf8("event data", data)
        if event is not None:
            _check_utf8("event type", event)

    async def aclose(self) -> None:  # noqa: B027 - a hook; the in-memory log has nothing to close
        """Release connections and the like. The log is not used afterwards."""


def _check_utf8(what: str, text: str) -> None:
    if text.isascii():  # the common case, and an O(1) check: CPython knows it already
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not UTF-8 text (it holds a lone surrogate)") from None
