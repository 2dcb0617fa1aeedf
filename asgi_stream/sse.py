"""Server-Sent Events: a response in the text/event-stream format.

:class:`EventSourceResponse` streams its content as events, with the
headers SSE needs. The format itself, and how each field is kept from
breaking out of its line, is :mod:`asgi_stream.sse_format`'s
(:class:`ServerSentEvent` is importable from here too).
"""

from __future__ import annotations

import json
import reprlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .background import BackgroundTask, BackgroundTasks
from .headers import HeadersInput
from .response import FIRST_CHUNK_WAIT, Content, StreamingResponse
from .sse_format import SEPARATORS as _SEPARATORS
from .sse_format import ServerSentEvent
from .sse_format import encode_data as _encode_data

__all__ = ["EventSourceResponse", "ServerSentEvent"]


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


_HEARTBEAT = ServerSentEvent(comment="heartbeat")
