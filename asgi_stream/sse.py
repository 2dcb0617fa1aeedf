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
import reprlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .background import BackgroundTask, BackgroundTasks
from .headers import HeadersInput
from .response import FIRST_CHUNK_WAIT, Content, StreamingResponse

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
        if sep is not None and sep not in _SEPARATORS:
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
            return b"\n" if self.data is None else _encode_data(self.data)
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


class EventSourceResponse(StreamingResponse):
    r"""A streaming response in the SSE format, with the headers SSE needs.

    Items from ``content`` may be

    * a :class:`ServerSentEvent`;
    * a ``str``: the data of one event;
    * a mapping (a ``dict``): the fields of one event, as in sse-starlette
      (``{"event": "done", "data": "Completed"}``);
    * ``bytes`` (or ``bytearray``, ``memoryview``): already encoded, sent as
      they are (never wrapped twice);
    * a number (``int`` or ``float``): the data of one event is its text, as
      in sse-starlette (yielding ``100`` sends ``data: 100``);
    * an event of sse-starlette (``ServerSentEvent``, ``JSONServerSentEvent``)
      or of FastAPI (``fastapi.sse.ServerSentEvent``, whose ``data`` is sent
      as JSON and ``raw_data`` as it is): its fields are made into our
      :class:`ServerSentEvent`, which checks them, so a line break in its
      ``event`` or ``id`` is a :class:`ValueError` (sse-starlette deletes it
      silently), and the response's ``sep`` is used.

    Anything else (a Pydantic model, a list, any object) is a
    :class:`TypeError` that says what to yield instead, never its ``str()``
    on the wire. Under FastAPI's ``response_class=``, FastAPI serializes
    such items itself (see :mod:`asgi_stream.starlette`).

    ``Cache-Control: no-cache`` stops caches from replaying a live stream and
    ``X-Accel-Buffering: no`` stops nginx from holding events back; your own
    ``headers`` win over both.

    sse-starlette's keywords work here too:

    * ``ping=SECONDS`` sends a heartbeat whenever the stream has been silent
      that long, so that proxies do not close an idle connection. A timer
      beside the generator sends it (see :class:`StreamingResponse`); the
      generator is never disturbed. It is off by default (sse-starlette pings
      every 15 s unless told otherwise).
    * ``ping_message_factory`` is called for each heartbeat and returns the
      :class:`ServerSentEvent` to send (the default is the comment
      ``: heartbeat``). It needs ``ping``.
    * ``sep`` is the line ending of everything the response writes, heartbeats
      included: ``"\n"`` (the default), ``"\r\n"`` (sse-starlette's default)
      or ``"\r"``; anything else is a :class:`ValueError`. Every parser
      accepts all three. Items given as bytes are sent as they are.
    """

    media_type = "text/event-stream"
    default_headers = ((b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"))
    #: The ``ping`` of a response made without one: seconds, or ``None`` for
    #: none. sse-starlette's name; set it on a subclass (or here) to turn
    #: heartbeats on for every response.
    DEFAULT_PING_INTERVAL: float | None = None

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: HeadersInput | None = None,
        media_type: str | None = None,
        background: BackgroundTask | BackgroundTasks | None = None,
        *,
        ping: float | None = None,
        sep: str = "\n",
        ping_message_factory: Callable[[], ServerSentEvent] | None = None,
        send_timeout: float | None = None,
        coalesce: bool | None = None,
        first_chunk_wait: float = FIRST_CHUNK_WAIT,
        data_sender_callable: None = None,
        client_close_handler_callable: None = None,
    ) -> None:
        _refuse_callbacks(data_sender_callable, client_close_handler_callable)
        if sep not in _SEPARATORS:
            raise ValueError(f'sep must be "\\r\\n", "\\n" or "\\r", not {sep!r}')
        ping = self.DEFAULT_PING_INTERVAL if ping is None else ping
        if ping is None and ping_message_factory is not None:
            raise ValueError("ping_message_factory needs ping=SECONDS")
        super().__init__(
            content,
            status_code,
            headers,
            media_type,
            background,
            send_timeout=send_timeout,
            coalesce=coalesce,
            ping=ping,
            ping_message=ping_message_factory or _HEARTBEAT,
            first_chunk_wait=first_chunk_wait,
        )
        # Our encoders end lines with LF, and put no CR or LF anywhere else
        # (see the module's docstring), so another line ending is one replace().
        self._line_end = None if sep == "\n" else sep.encode("ascii")

    def encode_chunk(self, chunk: Any) -> bytes:
        if isinstance(chunk, str):
            encoded = _encode_data(chunk)
        elif isinstance(chunk, ServerSentEvent):
            if chunk.sep is not None:
                return chunk.encode()  # the event's own line ending wins
            encoded = chunk.encode()
        elif isinstance(chunk, Mapping):
            return self.encode_chunk(ServerSentEvent(**chunk))
        elif isinstance(chunk, bytes | bytearray | memoryview):
            return super().encode_chunk(chunk)
        elif isinstance(chunk, int | float) and not isinstance(chunk, bool):
            encoded = _encode_data(str(chunk))
        else:
            return self.encode_chunk(_event_of_another_library(chunk))
        return encoded if self._line_end is None else encoded.replace(b"\n", self._line_end)


def _event_of_another_library(item: object) -> ServerSentEvent:
    """Our event with the fields of sse-starlette's or FastAPI's event ``item``;
    a :class:`TypeError` that says what to yield for anything else.

    Their fields are copied into ours rather than their ``encode()`` trusted:
    ours checks every field, so no value, however it was made, can add a line
    to the stream. A class is looked up in ``sys.modules``, not imported: if
    its module was never imported, no item can be one of its instances.
    """
    sse_starlette = sys.modules.get("sse_starlette.event")
    if sse_starlette is not None and isinstance(item, sse_starlette.ServerSentEvent):
        # JSONServerSentEvent, its subclass, holds its JSON in data already.
        # Its own line ending is not kept: the response's is used.
        return ServerSentEvent(item.data, item.event, item.id, item.retry, item.comment)
    fastapi = sys.modules.get("fastapi.sse")
    if fastapi is not None and isinstance(item, fastapi.ServerSentEvent):
        # FastAPI's data is sent as JSON, its raw_data as it is.
        data = item.raw_data if item.raw_data is not None else _fastapi_json(item.data)
        return ServerSentEvent(data, item.event, item.id, item.retry, item.comment)
    raise TypeError(
        "an EventSourceResponse item is str, bytes, a number, a ServerSentEvent or a dict "
        f"of its fields, not {type(item).__qualname__}: {reprlib.repr(item)}. For data as "
        "JSON, yield ServerSentEvent.from_json(value) (a Pydantic model: model.model_dump_json())"
    )


def _fastapi_json(value: Any) -> str | None:
    """The JSON FastAPI sends for the ``data`` of its event (it is installed: the
    event is one of its objects)."""
    if value is None:
        return None
    if hasattr(value, "model_dump_json"):
        return str(value.model_dump_json())
    from fastapi.encoders import jsonable_encoder  # here: only FastAPI's events come here

    return json.dumps(jsonable_encoder(value))


def _refuse_callbacks(data_sender: object, client_close_handler: object) -> None:
    """sse-starlette's callbacks are a :class:`TypeError` that says what to do instead."""
    for name, value in (
        ("data_sender_callable", data_sender),
        ("client_close_handler_callable", client_close_handler),
    ):
        if value is not None:
            raise TypeError(
                f"EventSourceResponse takes no {name}: the generator does that job here. "
                'See "sse-starlette\'s callbacks, here" in docs/migrating.rst for the recipe.'
            )


_SEPARATORS = ("\r\n", "\n", "\r")
_HEARTBEAT = ServerSentEvent(comment="heartbeat")
