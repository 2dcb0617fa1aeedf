"""Server-Sent Events: the text/event-stream format, and a response for it.

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
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .response import StreamingResponse

__all__ = ["EventSourceResponse", "ServerSentEvent"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field_lines(name: str, text: str) -> str:
    """``name: line`` and a LF for each line of ``text`` (``name`` "" makes comment lines)."""
    if "\n" in text or "\r" in text:
        return "".join(name + ": " + line + "\n" for line in _LINE_BREAK.split(text))
    return name + ": " + text + "\n"


def _encode_data(data: str) -> bytes:
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
    :meth:`from_json` for JSON.
    """

    __slots__ = ("comment", "data", "event", "id", "retry")

    def __init__(
        self,
        data: Any = None,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        if event is not None and ("\r" in event or "\n" in event):
            raise ValueError(f"an SSE event type cannot contain CR or LF: {event!r}")
        if id is not None and ("\r" in id or "\n" in id or "\0" in id):
            raise ValueError(f"an SSE id cannot contain CR, LF or NUL: {id!r}")
        if retry is not None and (type(retry) is not int or retry < 0):
            raise ValueError(f"SSE retry must be a non-negative int (milliseconds): {retry!r}")
        # Data that is not text is sent as its str(), as sse-starlette does.
        self.data = data if data is None or type(data) is str else str(data)
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment

    @classmethod
    def from_json(cls, value: Any, **fields: Any) -> ServerSentEvent:
        """An event whose data is ``value`` as JSON (``json.dumps`` defaults).

        The defaults escape non-ASCII (``"\\u6a21"``), which is what the
        tutorial's ``json.dumps`` sends; any JSON parser reads it back the same.
        """
        return cls(data=json.dumps(value), **fields)

    def encode(self) -> bytes:
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


class EventSourceResponse(StreamingResponse):
    """A streaming response in the SSE format, with the headers SSE needs.

    Items from ``content`` may be

    * a :class:`ServerSentEvent`;
    * a ``str``: the data of one event;
    * a ``dict``: the fields of one event, as in sse-starlette
      (``{"event": "done", "data": "Completed"}``);
    * ``bytes``: already encoded, sent as they are (never wrapped twice).

    ``Cache-Control: no-cache`` stops caches from replaying a live stream and
    ``X-Accel-Buffering: no`` stops nginx from holding events back; your own
    ``headers`` win over both.
    """

    media_type = "text/event-stream"
    default_headers = ((b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"))

    def encode_chunk(self, chunk: Any) -> bytes:
        if isinstance(chunk, str):
            return _encode_data(chunk)
        if isinstance(chunk, ServerSentEvent):
            return chunk.encode()
        if isinstance(chunk, Mapping):
            return ServerSentEvent(**chunk).encode()
        return super().encode_chunk(chunk)
