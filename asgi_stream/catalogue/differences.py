"""Where the catalogue differs from the tutorial's FastAPI code on purpose, and why.

The catalogue serves the tutorial's fifteen endpoints with the tutorial's bytes
on the wire, except where the tutorial is wrong. Two programs must know those
exceptions: ``asgi-stream compare``, which fails when the two apps differ in a
way not listed here (or do not differ in a way listed here), and the demo page,
which marks each difference beside the two apps' ASGI messages. Both read this
one list, :data:`EXPECTED`, so that they cannot disagree.

Each entry names a request as ``compare`` makes it (a *probe*: method, target,
and a note for a variant such as other request headers), the *aspects* of the
response that differ (``"status"``, ``"header NAME"``, ``"events"``,
``"bytes"``), and the reason. :data:`NOT_SEEN` holds the differences that no
request of ``compare`` shows on the wire, which only the page tells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EXPECTED", "NOT_SEEN", "Expected", "expected_reasons", "for_page"]


@dataclass(frozen=True)
class Expected:
    """Differences that are there on purpose: where, in which aspects, and why."""

    probe: str
    aspects: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The entry as the page reads it: the request split into method, path and note."""
        request, _, note = self.probe.partition(" (")
        method, _, target = request.partition(" ")
        return {
            "probe": self.probe,
            "method": method,
            "path": target.partition("?")[0],
            "note": note.removesuffix(")"),
            "aspects": list(self.aspects),
            "reason": self.reason,
        }


_CONNECTION = (
    "The tutorial (section 4.1) sets Connection: keep-alive. It is a connection-specific "
    "header, forbidden in HTTP/2: only the server may send it, so asgi-stream drops it "
    "(README: The catalogue; Deliberate differences)."
)
_HEARTBEAT = (
    "The tutorial (section 6.2) checks its heartbeat only after sending data, so it sends "
    "': heartbeat' comments between busy events and never when the stream is idle. "
    "asgi-stream sends one only when the stream has been idle for the interval, which this "
    "stream never is (README: The catalogue)."
)
_GZIP_MEMBERS = (
    "The tutorial (section 6.3) gzips every chunk as a separate gzip member; httpx and "
    "browsers decode only the first, so one event of ten arrives. asgi-stream keeps one "
    "compressor per response, flushed after every event, and sends Vary: Accept-Encoding "
    "(README: The catalogue)."
)
_GZIP_UNASKED = (
    "The tutorial (section 6.3) sends gzip even to a client whose Accept-Encoding does not "
    "allow it. asgi-stream compresses only for a client that accepts gzip, and says "
    "Vary: Accept-Encoding (README: The catalogue)."
)
_FRAMING = (
    "The tutorial (sections 7.1, 7.3) pastes text straight after 'data: ', so a newline in "
    "a token or the line ending of a log line ends the event early (and could forge one). "
    "asgi-stream encodes text as SSE defines: one data line per line of text, and sends a "
    "log line without its line ending (README: The catalogue)."
)
_HEAD = (
    "FastAPI's @app.get routes answer only GET, so HEAD is a 405. asgi-stream's GET routes "
    "answer HEAD too, as Starlette's do, with the headers only and without starting the "
    "generator (README: Deliberate differences)."
)
_TRACEBACK = (
    "On an unexpected error the tutorial (section 5.2) sends the Python traceback to the "
    "client. asgi-stream logs it on the server and sends only 'Internal Server Error', "
    "unless the debug setting allows more. This request never meets such an error, so "
    "both send the same recoverable error event (README: The catalogue)."
)
_SYNC_GENERATOR = (
    "When the client leaves while a sync generator streams, Starlette (under FastAPI) runs "
    "the generator's finally only at garbage collection; asgi-stream closes it as soon as "
    "its next() in the worker thread returns. The catalogue's generators are async, so no "
    "card shows it (README: Deliberate differences)."
)

#: The one list of differences between the two applications that are on purpose.
EXPECTED: tuple[Expected, ...] = (
    Expected("GET /stream-headers", ("header connection",), _CONNECTION),
    Expected("GET /stream-heartbeat", ("events", "bytes"), _HEARTBEAT),
    Expected("GET /stream-compressed", ("header vary", "events", "bytes"), _GZIP_MEMBERS),
    Expected(
        "GET /stream-compressed (gzip not accepted)",
        ("header content-encoding", "header vary", "events", "bytes"),
        _GZIP_UNASKED,
    ),
    Expected("POST /chat-stream?message=hello", ("events", "bytes"), _FRAMING),
    Expected("GET /logs (following)", ("bytes",), _FRAMING),
    Expected(
        "HEAD /stream (headers only)",
        ("status", "header content-type", "header allow", "header content-length"),
        _HEAD,
    ),
)

#: Differences on purpose that ``compare``'s requests do not show on the wire,
#: for the page to tell: the first needs an unexpected error, the second a sync
#: generator, which no endpoint of the catalogue has.
NOT_SEEN: tuple[Expected, ...] = (
    Expected("GET /stream-robust", (), _TRACEBACK),
    Expected("", (), _SYNC_GENERATOR),
)


def expected_reasons() -> dict[tuple[str, str], str]:
    """:data:`EXPECTED` as ``{(probe name, aspect): reason}``."""
    return {(e.probe, aspect): e.reason for e in EXPECTED for aspect in e.aspects}


def for_page() -> list[dict[str, Any]]:
    """:data:`EXPECTED` and :data:`NOT_SEEN` as JSON-ready values, for the demo page."""
    return [expected.to_json() for expected in EXPECTED + NOT_SEEN]
