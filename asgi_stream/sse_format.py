"""One Server-Sent Event, encoded: the text/event-stream format, and nothing else.

An event stream is UTF-8 text made of *events* separated by a blank line. Each
event is a few ``field: value`` lines::

    event: error            <- the event's type (default "message")
    id: 42                  <- the last ID, which a reconnecting browser sends back
    retry: 3000             <- how long the browser waits before reconnecting, in ms
    data: first line        <- the payload; one data line per line of text
    data: second line
    : a comment             <- ignored by the browser; keeps idle connections alive
    (blank line)            <- dispatches the event

The browser's parser (WHATWG HTML §9.2.6) splits the stream into lines at CR,
LF *or* CRLF. That is the whole security story: a value that contains any of
the three would end its line early, and what follows would be read as a new
field, or, after two line breaks, a new event. So :class:`ServerSentEvent`

* writes ``data`` and ``comment`` as one line per line of text, which the
  browser joins back with LF, so any text arrives intact and cannot escape;
* refuses CR and LF in ``event`` and ``id`` (and NUL in ``id``, which the
  browser ignores) with :class:`ValueError`: those are single-line fields,
  and silently changing them would hide a bug;
* accepts only a non-negative ``int`` for ``retry``.

Only CR and LF break lines here. ``str.splitlines()`` would also split at
U+2028 and friends, and the browser would then receive a different text than
the one sent.

This module imports nothing of the package, so that anything that only
encodes events (:mod:`asgi_stream.broadcast`, the event logs) stands below
the responses; :mod:`asgi_stream.sse` builds the response on it.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["ServerSentEvent"]

#: The line endings an event may use: every parser accepts all three.
SEPARATORS = ("\r\n", "\n", "\r")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field_lines(name: str, text: str) -> str:
    """``name: line`` and a LF for each line of ``text`` (``name`` "" makes comment lines)."""
    if "\n" in text or "\r" in text:
        return "".join(name + ": " + line + "\n" for line in _LINE_BREAK.split(text))
    return name + ": " + text + "\n"


def encode_data(data: str) -> bytes:
    """The bytes of ``ServerSentEvent(data=data)``, without building the event.

    An event that is only data is the most common event by far, and the one a
    stream sends at the highest rate; skipping the object halves its cost.
    """
    if "\n" in data or "\r" in data:
        return (_field_lines("data", data) + "\n").encode("utf-8")
    return ("data: " + data + "\n\n").encode("utf-8")


class ServerSentEvent:
    """One event. ``encode()`` gives its bytes on the wire, blank line included.

    ``data`` is text (anything else is sent as its ``str()``); use
    :meth:`from_json` for JSON. The other fields are checked here, where the
    event is made: a wrong type is a :class:`TypeError`, a bad value a
    :class:`ValueError`.

    * ``event`` and ``comment`` are ``str``; ``event`` may not contain CR or LF.
    * ``id`` is a ``str`` without CR, LF or NUL, or an ``int``, which is sent
      as its ``str()`` (``id=5`` is ``id: 5``, as in sse-starlette: counters
      make natural IDs). Anything else, a ``bool`` included, is refused.
    * ``retry`` is an ``int`` (not a ``bool``) of milliseconds, at least 0.
    * ``sep`` is the line ending of this event, as in sse-starlette: ``"\\n"``,
      ``"\\r\\n"`` or ``"\\r"``. By default (``None``) the event takes the one of
      the :class:`EventSourceResponse` that sends it, and ``encode()`` gives LF.
    """

    __slots__ = ("comment", "data", "event", "id", "retry", "sep")

    def __init__(
        self,
        data: Any = None,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str | None = None,
    ) -> None:
        if sep is not None and sep not in SEPARATORS:
            raise ValueError(f'sep must be "\\r\\n", "\\n" or "\\r", not {sep!r}')
        # Each "type(x) is not ..." is the fast path of a check that
        # _check_type() completes: events are made at the stream's rate.
        if event is not None:
            check_event_type(event)
        if id is not None:
            if type(id) is not str:
                if isinstance(id, int) and not isinstance(id, bool):
                    id = str(id)
                elif not isinstance(id, str):
                    what = type(id).__name__
                    raise TypeError(f"SSE id must be str or int, not {what}: {id!r}")
            if "\r" in id or "\n" in id or "\0" in id:
                raise ValueError(f"an SSE id cannot contain CR, LF or NUL: {id!r}")
        if retry is not None:
            if type(retry) is not int:
                _check_type("retry", retry, int)
            if retry < 0:
                raise ValueError(f"SSE retry must be at least 0 (milliseconds), not {retry!r}")
        if comment is not None and type(comment) is not str:
            _check_type("comment", comment, str)
        # Data that is not text is sent as its str(), as sse-starlette does.
        self.data = data if data is None or type(data) is str else str(data)
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment
        self.sep = sep

    @classmethod
    def from_json(cls, value: Any, **fields: Any) -> ServerSentEvent:
        """An event whose data is ``value`` as JSON (``json.dumps`` defaults).

        The defaults escape non-ASCII (``"\\u6a21"``), which is what the
        tutorial's ``json.dumps`` sends; any JSON parser reads it back the same.
        """
        return cls(data=json.dumps(value), **fields)

    def encode(self) -> bytes:
        if self.sep is not None and self.sep != "\n":
            # Our lines end with LF, and hold no other CR or LF: one replace().
            return self._encode_lf().replace(b"\n", self.sep.encode("ascii"))
        return self._encode_lf()

    def _encode_lf(self) -> bytes:
        if self.event is None and self.id is None and self.retry is None and self.comment is None:
            # Data alone: the event a stream sends most, and at the highest rate.
            return b"\n" if self.data is None else encode_data(self.data)
        text = "" if self.comment is None else _field_lines("", self.comment)
        if self.event is not None:
            text += "event: " + self.event + "\n"
        if self.id is not None:
            text += "id: " + self.id + "\n"
        if self.retry is not None:
            text += f"retry: {self.retry}\n"
        if self.data is not None:
            text += _field_lines("data", self.data)
        return (text + "\n").encode("utf-8")

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self.__slots__
            if getattr(self, name) is not None
        )
        return f"ServerSentEvent({fields})"


def check_event_type(event: str | None) -> None:
    """Refuse an SSE event type that is not a ``str``, or that holds CR or LF
    (``None``, the default type, is fine); the event log checks with it too."""
    if event is None:
        return
    if type(event) is not str:
        _check_type("event", event, str)
    if "\r" in event or "\n" in event:
        raise ValueError(f"an SSE event type cannot contain CR or LF: {event!r}")


def _check_type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind) or isinstance(value, bool):
        what = type(value).__name__
        raise TypeError(f"SSE {name} must be {kind.__name__}, not {what}: {value!r}")
