"""The small value types a :class:`~asgi_stream.request.Request` hands out.

Each has Starlette's semantics, so code written against ``request.url``,
``request.query_params`` or ``request.state`` there reads the same here. The
request's headers are :class:`~asgi_stream.headers.Headers`, next to the code
that writes response headers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlencode, urlsplit

__all__ = ["URL", "Address", "QueryParams", "State", "URLPath"]


class URL(str):
    """A URL: a ``str``, with its parts as attributes (``url.path``, ``url.query``...).

    ``str(url)``, comparison with a string and string methods all work as
    they do on the plain text.
    """

    __slots__ = ()

    @property
    def parts(self) -> SplitResult:
        return urlsplit(self)

    @property
    def scheme(self) -> str:
        return self.parts.scheme

    @property
    def netloc(self) -> str:
        return self.parts.netloc

    @property
    def hostname(self) -> str | None:
        return self.parts.hostname

    @property
    def port(self) -> int | None:
        return self.parts.port

    @property
    def path(self) -> str:
        return self.parts.path

    @property
    def query(self) -> str:
        return self.parts.query

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")


class URLPath(str):
    """The path of a route, found by name (``router.url_path_for("item", id=5)``).

    A ``str``, like Starlette's ``URLPath``, with its ``protocol`` ("http")
    and :meth:`make_absolute_url`, so that Starlette's routing, walking into a
    mounted :class:`~asgi_stream.routing.Router`, can use what it returns.
    """

    __slots__ = ("host", "protocol")

    protocol: str
    host: str

    def __new__(cls, path: str, protocol: str = "http", host: str = "") -> URLPath:
        url_path = super().__new__(cls, path)
        url_path.protocol = protocol
        url_path.host = host
        return url_path

    def make_absolute_url(self, base_url: str) -> URL:
        """This path's URL under ``base_url``: the app's root, a ``str`` or Starlette's URL."""
        base = urlsplit(str(base_url))
        return URL(f"{base.scheme}://{self.host or base.netloc}{base.path.rstrip('/')}{self}")


class QueryParams(Mapping[str, str]):
    """The query string's parameters: a read-only mapping that keeps every value.

    ``params["tag"]`` (and ``get``, ``dict(params)``) is the *last* value of a
    repeated key, as FastAPI reads a scalar and Starlette's mapping does;
    :meth:`getlist` gives every value, in order. Iteration and ``len`` see
    each key once.
    """

    __slots__ = ("_last", "_pairs")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._last = dict(pairs)  # a later value replaces an earlier one

    def __getitem__(self, name: str) -> str:
        return self._last[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(key, value)`` pair, repeated keys included, in order."""
        return list(self._pairs)

    def __str__(self) -> str:
        """The query string, percent-encoded: ``a=1&a=2``, as Starlette gives it."""
        return urlencode(self._pairs)

    def __repr__(self) -> str:
        return f"QueryParams({self._pairs!r})"


class FormData(QueryParams):
    """The fields of a form (``await request.form()``): the same multi-value
    mapping as :class:`QueryParams`, since an urlencoded form *is* a query string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"FormData({self._pairs!r})"


class Address(NamedTuple):
    """The client's address: ``request.client.host`` and ``.port`` (a tuple too)."""

    host: str
    port: int


class State:
    """Attributes stored in a dict: ``request.state.user = ...``.

    A request's state lives in ``scope["state"]``, so middleware and the
    endpoint share it, and a server that supports lifespan state starts each
    request's copy from what the lifespan yielded.
    """

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"the state has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._data[name]
        except KeyError:
            raise AttributeError(name) from None
