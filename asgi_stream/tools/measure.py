"""What one client sees of one streamed response, and when.

Theory of operation
===================

:func:`measure` makes one request with an httpx client and writes down what
a user of the response could observe (a :class:`Measurement`), and nothing
that only the server knows:

* the status, and the headers in the order they came, except ``date`` and
  ``server``, which the server writes whatever the application does;
* the body exactly as it came off the wire: de-chunked, not decompressed;
* the *events* in it, read as a browser's ``EventSource`` reads them (see
  :func:`parse_events`), after decoding the body as httpx and browsers decode
  it. That matters for gzip: a body made of several gzip members decodes to
  its first member only, silently, in httpx, Chromium and Firefox alike. A
  body that is not an event stream counts as one "event", its whole text;
* the time from sending the request to the first complete event (to the
  first byte, for a body that is not an event stream), to the end of the
  body, and between the arrivals of two chunks. A chunk here is one read from
  the socket: the kernel may merge two of the server's writes into one read,
  so the gaps show the stream's rhythm, not its exact number of sends.

An endless stream is measured up to ``stop_after`` events; then the client
closes the connection, as a user closing the page would.
"""

from __future__ import annotations

import codecs
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

__all__ = ["SERVER_HEADERS", "Measurement", "measure", "parse_events"]

#: Headers the server writes, not the application.
SERVER_HEADERS = frozenset({"date", "server"})


@dataclass
class Measurement:
    """What one client saw of one response. Times are in seconds from sending the request."""

    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    body: bytes = b""
    first_event: float | None = None
    total: float = 0.0
    gaps: list[float] = field(default_factory=list)
    error: str | None = None

    def header(self, name: str) -> str:
        """Every value of header ``name``, joined with commas; ``-`` when there is none."""
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else "-"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headers"] = [list(pair) for pair in self.headers]
        data["body"] = self.body.decode("latin-1")
        data["body_size"] = len(self.body)
        return data


def parse_events(text: str) -> list[str]:
    """The complete events and comments in the text of an event stream.

    Lines end at CR, LF or CRLF, and a blank line ends an event. Fields are
    read as the browser reads them (one optional space after the colon;
    ``data`` lines joined with LF), and each event becomes one canonical line
    such as ``event: error / data: {"code": 1}``, so two streams that a browser
    cannot tell apart give the same list. A comment counts as an item of its
    own (``: heartbeat``): the browser ignores it, but it is on the wire. Blank
    lines that end no event count for nothing, and an event that has not been
    ended yet is not in the list.
    """
    items: list[str] = []
    block: list[str] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line in lines[:-1]:  # what follows the last line break is not a line yet
        if line:
            block.append(line)
        elif block:
            items.extend(_canonical(block))
            block = []
    return items


def _canonical(block: list[str]) -> list[str]:
    comments = [line[1:].removeprefix(" ") for line in block if line.startswith(":")]
    fields: dict[str, list[str]] = {}
    for line in block:
        if not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
    items = [f": {comment}" for comment in comments]
    if fields:
        parts = [f"{name}: {values[-1]}" for name, values in fields.items() if name != "data"]
        if "data" in fields:
            parts.append("data: " + "\\n".join(fields["data"]))
        items.append(" / ".join(parts))
    return items


class BodyDecoder:
    """Decodes a body as httpx and browsers do: gzip (its first member only), then UTF-8."""

    def __init__(self, content_encoding: str | None) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise ValueError(f"cannot decode Content-Encoding {encoding!r}")
        self._gzip = zlib.decompressobj(zlib.MAX_WBITS | 16) if encoding == "gzip" else None
        self._text = codecs.getincrementaldecoder("utf-8")("replace")

    def decode(self, chunk: bytes) -> str:
        if self._gzip is not None:
            # Bytes after the end of the first member would land in unused_data: ignored.
            chunk = b"" if self._gzip.eof else self._gzip.decompress(chunk)
        return self._text.decode(chunk)


def measure(
    client: Any,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]] = (),
    *,
    stop_after: int | None = None,
    on_response: Callable[[], object] | None = None,
) -> Measurement:
    """Make one request with ``client`` (an ``httpx.Client``) and measure the response.

    ``on_response`` is called once the status and headers have arrived, before
    the body is read. An error (a connection cut mid-body, a body that cannot
    be decoded) is recorded in the measurement, with what arrived before it.
    """
    import httpx  # needed by the comparison only, not by the library

    result = Measurement()
    arrivals: list[float] = []
    body = bytearray()
    text = ""
    started = time.perf_counter()
    try:
        with client.stream(method, url, headers=list(headers)) as response:
            result.status = response.status_code
            for raw_name, raw_value in response.headers.raw:
                name = raw_name.decode("latin-1").lower()
                if name not in SERVER_HEADERS:
                    result.headers.append((name, raw_value.decode("latin-1")))
            is_event_stream = result.header("content-type").startswith("text/event-stream")
            decoder = BodyDecoder(response.headers.get("content-encoding"))
            if on_response is not None:
                on_response()
            for chunk in response.iter_raw():
                arrivals.append(time.perf_counter())
                body += chunk
                text += decoder.decode(chunk)
                if is_event_stream:  # parsed again from the start: a CRLF may span two chunks
                    result.events = parse_events(text)
                if result.first_event is None and (result.events or not is_event_stream):
                    result.first_event = arrivals[-1] - started
                if stop_after is not None and len(result.events) >= stop_after:
                    break
            if not is_event_stream and text:
                result.events = [text]
    except (httpx.HTTPError, ValueError, zlib.error) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.total = time.perf_counter() - started
    result.body = bytes(body)
    result.gaps = [later - earlier for earlier, later in pairwise(arrivals)]
    return result
