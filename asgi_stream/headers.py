"""HTTP headers, in both directions.

ASGI carries headers as a list of ``(name, value)`` pairs of *bytes*. A response
must send names in lowercase, and the server writes the values to the socket
more or less as given. That makes two things our job, not the server's:

* **Injection.** A value containing CR or LF would end the header line early,
  and whatever follows would become a header (or a body) of the attacker's
  choosing. Servers differ in what they check (uvicorn refuses every control
  character but the tab, h11 a few fewer, and a refusal there is a 500 with a
  traceback in the log). So ``encode_response_headers()`` refuses every
  control character but the tab (RFC 9110 §5.5: CR, LF and NUL are dangerous,
  the rest invalid) with :class:`ValueError` *when the response is built*,
  long before any byte reaches the wire, and names must be RFC 9110 tokens.
* **Connection-specific headers** (``Connection``, ``Keep-Alive``,
  ``Transfer-Encoding``, ``Upgrade``, ``Proxy-Connection``, ``TE``) describe one
  hop of one HTTP/1.1 connection. The server owns the connection, so only the
  server may send them: they are forbidden in HTTP/2 (RFC 9113 §8.2.2), and on
  HTTP/1.1 uvicorn's httptools path sends the app's ``connection: keep-alive``
  *and* its own ``connection: close``. We drop them, with a warning.

Both checks live in one function, ``encode_header()``, and every way into a
response's headers goes through it: ``headers=``, the ``Content-Type`` made
from ``media_type`` and ``charset``, writes to ``response.headers`` and the
headers of an :class:`~asgi_stream.exceptions.HTTPException`.

Request headers go the other way: :class:`Headers` is a read-only,
case-insensitive view of the pairs a server hands us in ``scope["headers"]``.
A response's own :class:`MutableHeaders` is the same view, with writes, over
the response's ``raw_headers`` list itself, so the two never disagree.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from types import FrameType

__all__ = ["ConnectionHeaderWarning", "Headers", "HeadersInput", "MutableHeaders"]

#: What a response may pass as ``headers=``: a mapping, or pairs (to repeat a name).
HeadersInput = Mapping[str, str] | Iterable[tuple[str, str]]

CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"proxy-connection", b"te"}
)

# RFC 9110 §5.6.2: a field name is a "token". Anything else (a space, a colon,
# a CR) is either an injection attempt or a mistake the server would mangle.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB


def is_token(text: str) -> bool:
    """Whether ``text`` is an RFC 9110 token, as a header name or a method must be."""
    return text.isascii() and _TOKEN.fullmatch(text.lower().encode("ascii")) is not None


class ConnectionHeaderWarning(UserWarning):
    """A connection-specific header was given to a response and dropped."""


def encode_header(name: str | bytes, value: str | bytes) -> tuple[bytes, bytes]:
    """Validate one header and give its ASGI pair: *the* check, for every path.

    The name is lowercased and must be an RFC 9110 token; both are encoded as
    latin-1 (the only charset HTTP/1.1 field values are defined in), and the
    value may not contain a control character other than the tab (CR, LF and
    NUL above all). Raises :class:`ValueError` otherwise.
    """
    raw_name = _to_latin1(name, "name").lower()
    raw_value = _to_latin1(value, "value")
    if not _TOKEN.fullmatch(raw_name):
        raise ValueError(f"invalid header name {name!r}: names must be RFC 9110 tokens")
    if _FORBIDDEN_IN_VALUE.search(raw_value):
        raise ValueError(
            f"invalid value for header {name!r}: CR, LF and NUL are not allowed, "
            "nor any other control character but the tab"
        )
    return raw_name, raw_value


def encode_response_headers(headers: HeadersInput | None) -> list[tuple[bytes, bytes]]:
    """Turn ``headers=`` into the ASGI list, validating every pair with :func:`encode_header`.

    Connection-specific headers are dropped with a
    :class:`ConnectionHeaderWarning`, which points at your code.
    """
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    encoded = []
    for name, value in pairs:
        pair = encode_header(name, value)
        if _server_owned(pair[0], name):
            continue
        encoded.append(pair)
    return encoded


def _server_owned(raw_name: bytes, name: str | bytes) -> bool:
    """Whether a response must drop this header (a connection-specific one), warning if so."""
    if raw_name not in CONNECTION_SPECIFIC:
        return False
    warnings.warn(
        f"dropped the connection-specific header {name!r}: only the server may send it "
        "(it is forbidden in HTTP/2)",
        ConnectionHeaderWarning,
        stacklevel=_first_caller_outside_package(),
    )
    return True


def _first_caller_outside_package() -> int:
    """The ``stacklevel`` that blames the first frame outside asgi_stream (the user's code)."""
    level = 1
    frame: FrameType | None = sys._getframe(1)  # the function that will call warnings.warn()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("asgi_stream."):
        frame = frame.f_back
        level += 1
    return level


def _to_latin1(text: str | bytes, what: str) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return str(text).encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {what} {text!r} is not latin-1; percent-encode it") from None


def _lookup_key(name: object) -> bytes | None:
    """The raw form of a header name looked up; ``None`` when no header can have it."""
    if not isinstance(name, str):
        return None
    try:
        return name.lower().encode("latin-1")
    except UnicodeEncodeError:
        return None


class Headers(Mapping[str, str]):
    """The request's headers: case-insensitive, read-only, repeated names kept.

    ``headers["accept"]`` is the first value; :meth:`getlist` gives them all,
    and :meth:`items` every ``(name, value)`` pair in order, repeats included
    (as in Starlette). Iteration and ``len()`` count each name once. Names and
    values are decoded as latin-1, which maps every byte to one character, so
    no header can fail to decode.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._raw = [(name.lower(), value) for name, value in raw]

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The ASGI pairs themselves: lowercase names, bytes."""
        return self._raw

    def __getitem__(self, name: str) -> str:
        key = _lookup_key(name)
        for raw_name, value in self._raw:
            if raw_name == key:
                return value.decode("latin-1")
        raise KeyError(name)

    def getlist(self, name: str) -> list[str]:
        """Every value sent under ``name``, in order."""
        key = _lookup_key(name)
        return [value.decode("latin-1") for raw_name, value in self._raw if raw_name == key]

    # A list rather than Mapping's ItemsView, as Starlette's Headers.items(): a
    # view could not hold a name twice. Hence the ignore.
    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        """Every ``(name, value)`` pair, in order, repeated names included."""
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self._raw]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name.decode("latin-1") for name, _ in self._raw))

    def __len__(self) -> int:
        return len(dict.fromkeys(name for name, _ in self._raw))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items()!r})"


class MutableHeaders(Headers, MutableMapping[str, str]):
    """A response's headers, as Starlette's ``response.headers``: the view, with writes.

    It works on the response's ``raw_headers`` list itself (no copy), so what
    you write is what is sent. Every write is validated by
    ``encode_header()`` (a :class:`ValueError` at the line that wrote it);
    a connection-specific header is dropped with a warning, as in ``headers=``.

    * ``headers[name] = value`` replaces *every* value of ``name``;
    * :meth:`append` adds one more (for ``Set-Cookie``, say);
    * ``del headers[name]`` removes every value of ``name``, and is no error
      when there is none (as in Starlette);
    * :meth:`setdefault` and ``update()`` go through ``headers[name] = value``.

    ``before_write`` is called before each change; a response passes one that
    raises :class:`RuntimeError` once it has started sending.
    """

    __slots__ = ("_before_write",)

    def __init__(
        self,
        raw: list[tuple[bytes, bytes]],
        before_write: Callable[[], None] | None = None,
    ) -> None:
        self._raw = raw  # shared with the response, never copied
        self._before_write = before_write

    def _encode(self, name: str, value: str) -> tuple[bytes, bytes] | None:
        if self._before_write is not None:
            self._before_write()
        pair = encode_header(name, value)
        return None if _server_owned(pair[0], name) else pair

    def __setitem__(self, name: str, value: str) -> None:
        pair = self._encode(name, value)
        if pair is None:
            return
        found = [i for i, (raw_name, _) in enumerate(self._raw) if raw_name == pair[0]]
        if not found:
            self._raw.append(pair)
            return
        self._raw[found[0]] = pair  # the first keeps its place; the others go
        for i in reversed(found[1:]):
            del self._raw[i]

    def __delitem__(self, name: str) -> None:
        if self._before_write is not None:
            self._before_write()
        key = _lookup_key(name)
        self._raw[:] = [pair for pair in self._raw if pair[0] != key]

    def append(self, name: str, value: str) -> None:
        """Add a value for ``name``, keeping those it already has."""
        pair = self._encode(name, value)
        if pair is not None:
            self._raw.append(pair)

    def setdefault(self, name: str, value: str) -> str:
        """The first value of ``name``; if it has none, set it to ``value`` first."""
        try:
            return self[name]
        except KeyError:
            self[name] = value
            return value
