"""The request, as much of it as a streaming endpoint needs.

Everything except the body is already in the ASGI ``scope``: the method, the
path (percent-decoded by the server), the raw query string and the headers.
:class:`Request` gives them convenient shapes. The body is different: it
arrives in ``http.request`` messages from ``receive()``, possibly in many
pieces, and possibly far bigger than we are willing to hold. :meth:`body`
collects it up to a limit and answers 413 beyond it, before reading more.

Input from the client is hostile until proven otherwise, so every parse that
can fail raises :class:`~asgi_stream.exceptions.HTTPException` with a 4xx
(the router turns it into a JSON error) instead of letting a ``ValueError``
become a 500.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from .exceptions import ClientDisconnect, HTTPException, validation_error
from .headers import Headers
from .types import Receive, Scope

__all__ = ["MAX_BODY_SIZE", "MAX_QUERY_SIZE", "QueryParams", "Request"]

#: The default limit on a request body, in bytes (413 beyond it).
MAX_BODY_SIZE = 1024 * 1024
#: The limit on the raw query string, in bytes (414 beyond it).
MAX_QUERY_SIZE = 8 * 1024

# How FastAPI (pydantic) reads a bool from a query string.
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


class QueryParams:
    """The query string's parameters; repeated keys keep every value, in order."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        """The *last* value of ``name`` (as FastAPI reads a scalar), or ``default``."""
        for key, value in reversed(self._pairs):
            if key == name:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self._pairs)


class Request:
    """One HTTP request: ``Request(scope, receive)``."""

    def __init__(
        self, scope: Scope, receive: Receive, *, max_body_size: int = MAX_BODY_SIZE
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.max_body_size = max_body_size
        self.headers = Headers(scope.get("headers", ()))
        self.path_params: dict[str, str] = scope.get("path_params", {})
        self._query: QueryParams | None = None
        self._body: bytes | None = None

    @property
    def method(self) -> str:
        return self.scope["method"]

    @property
    def path(self) -> str:
        return self.scope["path"]

    @property
    def client(self) -> tuple[str, int] | None:
        """The client's ``(host, port)``, when the server knows it."""
        client = self.scope.get("client")
        return tuple(client) if client else None  # type: ignore[return-value]

    @property
    def query_params(self) -> QueryParams:
        """Parsed on first use; 414 when too long, 400 when not UTF-8."""
        if self._query is None:
            raw: bytes = self.scope.get("query_string", b"")
            if len(raw) > MAX_QUERY_SIZE:
                raise HTTPException(414, "Query string too long")
            try:
                pairs = parse_qsl(
                    raw.decode("utf-8"),  # raw bytes are not allowed in a URI; UTF-8 at most
                    keep_blank_values=True,
                    encoding="utf-8",
                    errors="strict",
                    max_num_fields=1000,
                )
            except (UnicodeDecodeError, ValueError):
                raise HTTPException(400, "Invalid query string") from None
            self._query = QueryParams(pairs)
        return self._query

    def query_bool(self, name: str, default: bool) -> bool:
        """A bool query parameter, read the way FastAPI reads one (422 otherwise)."""
        value = self.query_params.get(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise validation_error(
            "query",
            name,
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
            value,
        )

    def query_str(self, name: str) -> str:
        """A required string query parameter (FastAPI's 422 when missing)."""
        value = self.query_params.get(name)
        if value is None:
            raise validation_error("query", name, "missing", "Field required", None)
        return value

    async def body(self) -> bytes:
        """The whole body, at most :attr:`max_body_size` bytes (413 beyond)."""
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            raise HTTPException(413, "Request body too large")
        chunks = []
        size = 0
        more_body = True
        while more_body:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                raise HTTPException(413, "Request body too large")
            chunks.append(chunk)
            more_body = message.get("more_body", False)
        self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        """The body parsed as JSON (400 when it is not)."""
        try:
            return json.loads(await self.body())
        except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting too
            raise HTTPException(400, "Request body is not valid JSON") from None
