"""Errors that become HTTP answers.

An endpoint (or :class:`~asgi_stream.request.Request`) raises
:class:`HTTPException` to answer with a 4xx; the router turns it into a JSON
body of the shape FastAPI uses, ``{"detail": ...}``, so clients written for a
FastAPI service read our errors unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from .headers import encode_header

__all__ = ["ClientDisconnect", "HTTPException"]


class HTTPException(Exception):
    """Answer the request with ``status_code`` and ``{"detail": detail}``.

    ``headers`` go with the answer (``{"Retry-After": "1"}``). They are
    validated here, by ``encode_header()`` (:mod:`asgi_stream.headers`), so a bad
    one is a :class:`ValueError` at the line that raises the exception, never
    a header on the wire.
    """

    def __init__(
        self, status_code: int, detail: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        for name, value in (headers or {}).items():
            encode_header(name, value)
        self.status_code = status_code
        self.detail = HTTPStatus(status_code).phrase if detail is None else detail
        self.headers = headers
        super().__init__(status_code, self.detail)


class ClientDisconnect(Exception):
    """The client went away while we were still reading its request body."""
