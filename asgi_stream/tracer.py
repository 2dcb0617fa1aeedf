"""Every ASGI message, as it happens: a tracer for learners.

Theory of operation
===================

An ASGI application never touches a socket. The server calls
``await app(scope, receive, send)`` once per connection, and everything the
application learns or says passes through those two functions as small dicts,
the *messages*. So to see what an application really does, it is enough to
stand between it and the server: :class:`Tracer` is an ASGI application that
wraps another one, hands it a ``receive`` and a ``send`` of its own, and writes
down every message that goes through them before passing it on untouched.

What a learner sees for one ``GET /stream`` of the catalogue (real output of
``asgi-stream serve --trace --tick 0.01`` and ``curl -N``; the number after
``#`` tells concurrent calls apart)::

    #2      0.0 ms  scope    http GET /stream HTTP/1.1
                              host: 127.0.0.1:8791
                              user-agent: curl/7.88.1
                              accept: */*
    #2      0.3 ms  send     http.response.start  status=200
                              content-type: text/event-stream; charset=utf-8
    #2      0.6 ms  send     http.response.body  body=9 B more_body=True  b'data: 0\\n\\n'
    #2      0.8 ms  receive  http.request  body=0 B more_body=False
    #2      6.0 ms  send     http.response.body  body=9 B more_body=True  b'data: 1\\n\\n'
    ...
    #2     27.1 ms  send     http.response.body  body=0 B more_body=False
    #2     27.3 ms  return

Read it as a conversation:

* ``scope`` is not a message but the call itself: the request line and the
  request headers, known before any body arrives.
* ``send http.response.start`` is the status line and headers. Nothing of the
  body exists yet.
* each ``send http.response.body`` with ``more_body=True`` becomes one chunk on
  the wire, at the time shown. The gaps between those times are the stream's
  rhythm, the thing a ``StreamingResponse`` exists to keep.
* ``receive http.request`` is the request body (empty for a GET). Nobody asked
  for it until the stream had started: asgi-stream's response calls
  ``receive()`` from a watcher task, because the message after this one is
  ``http.disconnect``, the news that the client has gone.
* the last body message has ``more_body=False``: the response is complete.
  A stream that ends without it was cut off.
* ``return`` (or ``raise``) is the application's call finishing. Anything
  between the last body message and ``return``, such as a background task,
  happens after the client has its response.

Times are milliseconds since the server called the application; a ``send`` is
written down when the application calls ``send()``, a ``receive`` when the
message is handed to the application. Bodies show their size and the first
bytes as a Python bytes literal. The same records can also be written as JSON
lines (one object per line, bodies as size and preview), for programs such as
``asgi-stream compare --trace``.

The tracer costs something on every message, so it is never built in: an
application runs untraced unless you wrap it (``Tracer(app)``), and
``asgi-stream serve`` wraps its application only when given ``--trace`` (text)
or ``--trace-json PATH``. Any server can run a traced application by import
string: ``ASGI_STREAM_TRACE_APP=module:app uvicorn asgi_stream.tools.traced:app``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Tracer"]

_STDERR: Any = object()  # "sys.stderr as it is when a line is written" (pytest swaps it)
_INDENT = " " * 26
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Tracer:
    """ASGI middleware that records every message between a server and ``app``.

    ``text`` receives the human-readable lines (standard error by default;
    ``None`` for none). ``json_lines`` is a path (appended to) or an open text
    stream that receives one JSON object per record. ``sink``, when given, is
    called with each record as a dict (the JSON object, before encoding), for a
    program that shows records its own way, such as a web page.
    ``preview_bytes`` is how much of each body is shown.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        text: TextIO | None = _STDERR,
        json_lines: TextIO | str | os.PathLike[str] | None = None,
        sink: Callable[[dict[str, Any]], None] | None = None,
        preview_bytes: int = 40,
    ) -> None:
        self.app = app
        self.text = text
        if isinstance(json_lines, str | os.PathLike):
            # Line-buffered, so that a reader sees each record as it happens.
            json_lines = Path(json_lines).open("a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self.json_lines = json_lines
        self.sink = sink
        self.preview_bytes = preview_bytes
        self._numbers = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        number = next(self._numbers)
        started = time.perf_counter()

        def record(event: str, fields: dict[str, Any]) -> None:
            elapsed = time.perf_counter() - started
            self.write({"connection": number, "time": round(elapsed, 6), "event": event, **fields})

        async def traced_receive() -> Message:
            message = await receive()
            record("receive", self.describe(message))
            return message

        async def traced_send(message: Message) -> None:
            headers = message.get("headers")
            if headers is not None and not isinstance(headers, list | tuple):
                # ASGI allows any iterable; one we read here would reach the server empty.
                message = {**message, "headers": list(headers)}
            record("send", self.describe(message))
            await send(message)

        record("scope", self.describe_scope(scope))
        try:
            await self.app(scope, traced_receive, traced_send)
        except BaseException as exc:
            record("raise", {"error": repr(exc)})
            raise
        record("return", {})

    def describe_scope(self, scope: Scope) -> dict[str, Any]:
        """The parts of a scope that say what was asked, as JSON-ready values."""
        fields: dict[str, Any] = {"type": scope["type"]}
        for key in ("http_version", "method", "path"):
            if key in scope:
                fields[key] = scope[key]
        if scope.get("query_string"):
            fields["query_string"] = scope["query_string"].decode("latin-1")
        if "headers" in scope:
            fields["headers"] = _decode_headers(scope["headers"])
        return fields

    def describe(self, message: Message) -> dict[str, Any]:
        """A message as JSON-ready values: bodies become their size and a preview."""
        fields: dict[str, Any] = {}
        for key, value in message.items():
            if key == "headers":
                fields["headers"] = _decode_headers(value)
            elif key in ("body", "bytes", "text") and value is not None:
                data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
                fields[f"{key}_size"] = len(data)
                if data:
                    fields["preview"] = self.preview(data)
            elif value is None or isinstance(value, str | int | float | bool):
                fields[key] = value
            else:
                fields[key] = repr(value)
        return fields

    def preview(self, data: bytes) -> str:
        """The first bytes of a body as a bytes literal, with what was cut."""
        shown = repr(data[: self.preview_bytes])
        if len(data) > self.preview_bytes:
            shown += f"... (+{len(data) - self.preview_bytes} B)"
        return shown

    def write(self, record: dict[str, Any]) -> None:
        if self.json_lines is not None:
            self.json_lines.write(json.dumps(record, ensure_ascii=False) + "\n")
        text = sys.stderr if self.text is _STDERR else self.text
        if text is not None:
            text.write(format_record(record) + "\n")
            text.flush()
        if self.sink is not None:
            self.sink(record)


def format_record(record: dict[str, Any]) -> str:
    """One record as the tracer prints it: the summary line, then any headers."""
    fields = dict(record)
    number, elapsed, event = fields.pop("connection"), fields.pop("time"), fields.pop("event")
    headers = fields.pop("headers", [])
    line = f"#{number} {elapsed * 1000:8.1f} ms  {event:<8} "
    if event == "scope":
        line += " ".join(
            str(part)
            for part in (
                fields.pop("type"),
                fields.pop("method", None),
                _path_with_query(fields),
                "HTTP/" + fields.pop("http_version") if "http_version" in fields else None,
            )
            if part
        )
    else:
        line += fields.pop("type", "")
        preview = fields.pop("preview", None)
        details = " ".join(
            f"{key.removesuffix('_size')}={value} B" if key.endswith("_size") else f"{key}={value}"
            for key, value in fields.items()
        )
        line += "  " + details if details else ""
        line += "  " + preview if preview else ""
    # A path or a header comes from the client: escaped, it cannot forge a line
    # of the trace or send escape codes to the terminal.
    lines = [line.rstrip(), *(f"{_INDENT}{name}: {value}" for name, value in headers)]
    return "\n".join(escape_control(text) for text in lines)


def _path_with_query(fields: dict[str, Any]) -> str:
    path = fields.pop("path", "")
    query = fields.pop("query_string", "")
    return f"{path}?{query}" if query else path


def _decode_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[list[str]]:
    return [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers]


def escape_control(text: str) -> str:
    """``text`` with every control character written as ``\\xNN``, so that it
    cannot end a line or drive a terminal."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
