"""A raw HTTP/1.1 client over asyncio streams, for tools and tests that must choose every byte.

Theory of operation
===================

An ordinary client (httpx, a browser) hides the wire: it sends the request it
thinks right, decodes chunked framing for you, and never lets you leave in the
middle of a chunk or with a TCP reset. A soak test and a reliability test need
exactly those things, so they speak HTTP/1.1 themselves, with the few
functions here. The protocol they need is small:

* **The request** (:func:`request_bytes`) is text lines ended by CRLF: the
  request line (``GET /stream HTTP/1.1``), a ``Host`` header, the other
  headers, an empty line, then the body, whose size ``Content-Length`` gives.
  Every request says ``Connection: close``, so a connection carries one
  request, and the server may end the connection when the response ends. The
  target is sent exactly as given, so a test can send a malformed one.
* **The response head** (:func:`read_head`) is everything up to the first
  empty line: a status line (``HTTP/1.1 200 OK``) and ``name: value`` headers,
  whose names are case-insensitive (they are lowercased here).
* **The body** (:func:`read_body`) has one of three framings, and the framing
  is also how a client knows whether the body *ended cleanly*, which is what
  a streaming server must get right. ``Transfer-Encoding: chunked``: each chunk
  is its size in hex, CRLF, the bytes, CRLF, and a chunk of size 0 ends the
  body; a connection that closes before that chunk was cut short (by an error
  after the headers, say). ``Content-Length``: exactly that many bytes. Neither:
  the body ends when the connection does, and a cut cannot be told from an end.

:func:`fetch` does all three for one request and returns a :class:`Reply`;
:func:`connect` and the pieces let a caller stop anywhere in between, and
:func:`abort` leaves with a reset, as a crashed client or a lost network does.
Every wait is bounded by :data:`TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "HOST",
    "TIMEOUT",
    "Reply",
    "abort",
    "connect",
    "fetch",
    "read_body",
    "read_head",
    "request_bytes",
]

HOST = "127.0.0.1"
#: Seconds that connecting, or any single read, may wait before it raises :class:`TimeoutError`.
TIMEOUT = 10.0


@dataclass
class Reply:
    """What a client got: status, headers (lowercased names), body, and whether it ended cleanly."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    complete: bool = False


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A new connection to ``port`` of 127.0.0.1, as asyncio streams."""
    return await asyncio.wait_for(asyncio.open_connection(HOST, port), TIMEOUT)


def request_bytes(
    method: str, target: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """An HTTP/1.1 request with ``Connection: close``; ``target`` is sent as given."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status and headers of a response (the last value of a repeated name)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


async def read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], limit: int | None = None
) -> tuple[bytes, bool]:
    """The body, and whether it ended cleanly (its last chunk, or its full length).

    Reading stops after ``limit`` bytes, if given (the body is then not complete).
    """
    body = bytearray()
    if headers.get("transfer-encoding", "").lower() != "chunked":
        length = headers.get("content-length")
        if length is None:  # the body ends with the connection: it cannot be checked
            body += await asyncio.wait_for(reader.read(limit or -1), TIMEOUT)
            return bytes(body), False
        with contextlib.suppress(asyncio.IncompleteReadError):
            body += await asyncio.wait_for(reader.readexactly(int(length)), TIMEOUT)
        return bytes(body), len(body) == int(length)
    while limit is None or len(body) < limit:
        try:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), TIMEOUT)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                await asyncio.wait_for(reader.readuntil(b"\r\n"), TIMEOUT)
                return bytes(body), True
            body += await asyncio.wait_for(reader.readexactly(size + 2), TIMEOUT)
            del body[-2:]
        except (asyncio.IncompleteReadError, ValueError):
            break  # the server cut the connection: the body is incomplete
    return bytes(body), False


async def fetch(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    limit: int | None = None,
) -> Reply:
    """One request on a new connection; the body is read to its end (or ``limit`` bytes)."""
    reader, writer = await connect(port)
    try:
        writer.write(request_bytes(method, target, body, headers))
        await writer.drain()
        status, response_headers = await read_head(reader)
        if method == "HEAD":
            return Reply(status, response_headers, complete=True)
        content, complete = await read_body(reader, response_headers, limit)
        return Reply(status, response_headers, content, complete)
    finally:
        writer.close()


def abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset instead of a FIN, as a crashed client or a lost network does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
