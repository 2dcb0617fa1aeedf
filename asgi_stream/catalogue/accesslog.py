"""An access log in a file: one line per request, written when the response starts.

The catalogue's ``/logs`` follows a log file. A new user has none at hand, so
when no file is configured the app writes its own access log to a temporary
file and follows that: open ``/logs`` in one tab, any other page in another,
and a line arrives for every request.

:class:`AccessLog` watches the ``http.response.start`` message (the moment the
status is known) through a wrapped ``send``, and writes a line like::

    2026-11-24 09:00:00 "GET /stream HTTP/1.1" 200

A streaming response is logged when it *starts*, not when it ends: a stream may
last for hours. The path is logged as the client sent it (raw, still
percent-encoded), with control characters escaped, so a request cannot forge
a line of the log. ``/logs`` shows this file to anyone who asks, so it holds
neither the client's address nor the query string (where a chat message, or
a token, may travel).

The file is created by :meth:`AccessLog.open` and removed by
:meth:`AccessLog.close`, the router's lifespan hooks; with several workers
each writes its own. Writes are line-buffered appends of a few dozen bytes
from the event loop, too short to hold it up.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import TextIO

from ..tracer import escape_control
from ..types import Message, Scope, Send

__all__ = ["AccessLog"]


class AccessLog:
    """A temporary access-log file; :attr:`path` is ``None`` until :meth:`open`."""

    def __init__(self) -> None:
        self.path: str | None = None
        self._file: TextIO | None = None

    async def open(self) -> None:
        """Create the file (a lifespan startup hook)."""
        fd, self.path = tempfile.mkstemp(prefix="asgi-stream-access-", suffix=".log")
        self._file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")

    async def close(self) -> None:
        """Close and remove the file (a lifespan shutdown hook)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            os.unlink(self.path)
            self.path = None

    def watch(self, scope: Scope, send: Send) -> Send:
        """``send``, logging the request when its response starts."""
        if self._file is None:
            return send

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.write(scope, message["status"])
            await send(message)

        return logging_send

    def write(self, scope: Scope, status: int) -> None:
        """Append one line for the request of ``scope``."""
        if self._file is None:
            return
        # Only the path: the query string may carry what a user typed (a chat
        # message), and /logs shows this file to every visitor.
        path = (scope.get("raw_path") or scope["path"].encode("utf-8")).partition(b"?")[0]
        request_line = escape_control(
            f"{scope['method']} {path.decode('latin-1')} HTTP/{scope.get('http_version', '1.1')}"
        )
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._file.write(f'{stamp} "{request_line}" {status}\n')
