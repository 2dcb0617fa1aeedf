"""HTTP headers, in both directions.

ASGI carries headers as a list of ``(name, value)`` pairs of *bytes*. A response
must send names in lowercase, and the server writes the values to the socket
more or less as given. That makes two things our job, not the server's:

* **Injection.** A value containing CR or LF would end the header line early,
  and whatever follows would become a header (or a body) of the attacker's
  choosing. Servers differ in what they check (uvicorn refuses every control
  character but the tab, h11 a few fewer, and a refusal there is a 500 with a
  traceback in the log). So :func:`encode_response_headers` refuses every
  control character but the tab (RFC 9110 §5.5: CR, LF and NUL are dangerous,
  the rest invalid) with :class:`ValueError` *when the response is built*,
  long before any byte reaches the wire, and names must be RFC 9110 tokens.
* **Connection-specific headers** (``Connection``, ``Keep-Alive``,
  ``Transfer-Encoding``, ``Upgrade``, ``Proxy-Connection``, ``TE``) describe one
  hop of one HTTP/1.1 connection. The server owns the connection, so only the
  server may send them: they are forbidden in HTTP/2 (RFC 9113 §8.2.2), and on
  HTTP/1.1 uvicorn's httptools path sends the app's ``connection: keep-alive``
  *and* its own ``connection: close``. We drop them, with a warning.

Request headers go the other way: :class:`Headers` is a read-only,
case-insensitive view of the pairs a server hands us in ``scope["headers"]``.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "CONNECTION_SPECIFIC",
    "ConnectionHeaderWarning",
    "Headers",
    "HeadersInput",
    "encode_response_headers",
]

#: What a response may pass as ``headers=``: a mapping, or pairs (to repeat a name).
HeadersInput = Mapping[str, str] | Iterable[tuple[str, str]]

CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"proxy-connection", b"te"}
)

# RFC 9110 §5.6.2: a field name is a "token". Anything else (a space, a colon,
# a CR) is either an injection attempt or a mistake the server would mangle.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB


class ConnectionHeaderWarning(UserWarning):
    """A connection-specific header was given to a response and dropped."""


def encode_response_headers(headers: HeadersInput | None) -> list[tuple[bytes, bytes]]:
    """Turn ``headers=`` into the ASGI list, validating every pair.

    Names are lowercased and must be tokens; values are encoded as latin-1 (the
    only charset HTTP/1.1 field values are defined in) and may not contain
    control characters other than the tab (CR, LF and NUL above all).
    Connection-specific headers are dropped with a
    :class:`ConnectionHeaderWarning`, which points at your code.
    """
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    encoded = []
    for name, value in pairs:
        raw_name = _to_latin1(name, "name").lower()
        raw_value = _to_latin1(value, "value")
        if not _TOKEN.fullmatch(raw_name):
            raise ValueError(f"invalid header name {name!r}: names must be RFC 9110 tokens")
        if _FORBIDDEN_IN_VALUE.search(raw_value):
            raise ValueError(
                f"invalid value for header {name!r}: CR, LF and NUL are not allowed, "
                "nor any other control character but the tab"
            )
        if raw_name in CONNECTION_SPECIFIC:
            warnings.warn(
                f"dropped the connection-specific header {name!r}: only the server may send it "
                "(it is forbidden in HTTP/2)",
                ConnectionHeaderWarning,
                stacklevel=_first_caller_outside_package(),
            )
            continue
        encoded.append((raw_name, raw_value))
    return encoded


def _first_caller_outside_package() -> int:
    """The ``stacklevel`` that blames the first frame outside asgi_stream (the user's code)."""
    level = 1
    frame = sys._getframe(1)  # the function that will call warnings.warn()
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


class Headers(Mapping[str, str]):
    """The request's headers: case-insensitive, read-only, repeated names kept.

    ``headers["accept"]`` is the first value; :meth:`getlist` gives them all.
    Names and values are decoded as latin-1, which maps every byte to one
    character, so no header can fail to decode.
    """

    __slots__ = ("_pairs",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._pairs = [
            (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw
        ]

    def __getitem__(self, name: str) -> str:
        name = name.lower()
        for key, value in self._pairs:
            if key == name:
                return value
        raise KeyError(name)

    def getlist(self, name: str) -> list[str]:
        """Every value sent under ``name``, in order."""
        name = name.lower()
        return [value for key, value in self._pairs if key == name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._pairs))

    def __len__(self) -> int:
        return len(dict.fromkeys(key for key, _ in self._pairs))

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"
