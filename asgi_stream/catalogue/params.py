"""Query parameters read the way FastAPI reads them, with FastAPI's 422 when they are bad.

The tutorial's endpoints take ``stream: bool = Query(False)`` and ``message:
str``; FastAPI answers a value it cannot read, or a missing one, with a 422 of
a known shape, and a client written for the tutorial expects that body. The
library's :class:`~asgi_stream.Request` gives the raw strings; the catalogue
reads them here.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import HTTPException
from ..request import Request

__all__ = ["query_bool", "query_str", "validation_error"]

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def validation_error(
    location: str, name: str, kind: str, message: str, value: Any
) -> HTTPException:
    """FastAPI's 422 for one bad parameter, e.g. ``("query", "stream", ...)``."""
    return HTTPException(
        422, [{"type": kind, "loc": [location, name], "msg": message, "input": value}]
    )


def query_bool(request: Request, name: str, default: bool) -> bool:
    """A bool query parameter, read the way FastAPI reads one (422 otherwise)."""
    value = request.query_params.get(name)
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


def query_str(request: Request, name: str) -> str:
    """A required string query parameter (FastAPI's 422 when missing)."""
    value = request.query_params.get(name)
    if value is None:
        raise validation_error("query", name, "missing", "Field required", None)
    return value
