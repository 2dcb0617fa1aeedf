"""Streaming gzip: compress a body while it streams, one event at a time.

A gzip file is one *member*: a header, one deflate stream, a trailer (CRC and
size). ``gzip.compress(chunk)`` makes a whole member per call, so compressing
each chunk that way sends many members back to back. Decoders stop after the
first one: httpx and browsers show the first event and silently drop the
rest. A streaming body needs **one compressor for the whole response**::

    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)   # 31: gzip framing
    for chunk in body:
        send(compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH))
    send(compressor.flush(zlib.Z_FINISH))                     # the trailer

Without ``Z_SYNC_FLUSH`` the compressor keeps everything in its window until
it has enough to compress well, and the client sees nothing until the end.
The sync flush ends each chunk on a byte boundary, so the client can decode
every event the moment it arrives, at a small cost in ratio (about 5 bytes per
flush, and the window keeps its history so repeated text still compresses).

Content negotiation
===================

The server may send gzip only to a client that accepts it (RFC 9110 §12.5.3).
``Accept-Encoding: gzip, br;q=0.5`` lists codings with an optional *q-value*
from 0 to 1; ``q=0`` means "never", and ``*`` stands for every coding not
listed. ``accepts_gzip()`` answers for one header value.

Whether or not we compress, the response depends on ``Accept-Encoding``, so it
carries ``Vary: Accept-Encoding``: otherwise a cache could hand the gzip body
to a client that cannot decode it. ``Content-Encoding: gzip`` is sent only when
the body really is gzip.
"""

from __future__ import annotations

import re
import zlib

from .response import StreamingResponse

__all__ = ["gzip_response"]

# RFC 9110 §12.4.2: a q-value is 0 to 1 with at most three decimals.
_QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")


def parse_accept_encoding(value: str) -> dict[str, float]:
    """Each coding of an ``Accept-Encoding`` value with its q-value (lowercased).

    ``"gzip;q=0.8, br, *;q=0"`` gives ``{"gzip": 0.8, "br": 1.0, "*": 0.0}``.
    A malformed q-value counts as 0: when in doubt, do not compress.
    """
    codings: dict[str, float] = {}
    for element in value.split(","):
        name, *params = (part.strip() for part in element.split(";"))
        if not name:
            continue
        quality = 1.0
        for param in params:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                raw = raw.strip()
                quality = float(raw) if _QVALUE.fullmatch(raw) else 0.0
        codings[name.lower()] = quality
    return codings


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether a client that sent this ``Accept-Encoding`` may get gzip.

    ``gzip`` (or its old alias ``x-gzip``) decides when listed, else ``*``.
    No header at all means no compression: RFC 9110 allows any coding then, but
    a client that says nothing is usually one that cannot decode it.
    ``identity`` listed with a higher q than gzip is honoured.
    """
    if not accept_encoding:
        return False
    codings = parse_accept_encoding(accept_encoding)
    gzip_q = codings.get("gzip", codings.get("x-gzip", codings.get("*", 0.0)))
    return gzip_q > 0 and gzip_q >= codings.get("identity", 0.0)


class GzipEncoder:
    """One gzip stream for one response body, flushed after every chunk.

    :meth:`encode` turns each chunk into output that the client can decode on
    arrival; :meth:`finish` gives the trailer that ends the gzip stream. An
    empty chunk gives no output (a sync flush of nothing would still cost
    bytes). It is a :class:`~asgi_stream.response.ContentEncoder`: a streaming
    response runs every chunk through it, heartbeats included, so the one
    compressor sees every byte in the order they go out. If the generator
    raises, the response never asks for the trailer: the client then sees an
    error, never a truncated body that looks complete.
    """

    __slots__ = ("_compressor",)

    def __init__(self, level: int = 6) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip framing

    def encode(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._compressor.flush(zlib.Z_FINISH)


def gzip_response(
    response: StreamingResponse, accept_encoding: str | None, level: int = 6
) -> StreamingResponse:
    """Compress ``response``'s body with gzip if ``accept_encoding`` allows it.

    Works on any :class:`StreamingResponse` (an ``EventSourceResponse`` too):
    its chunks are encoded as the response would encode them, then compressed
    by a ``GzipEncoder``. ``Vary: Accept-Encoding`` is added either way;
    ``Content-Encoding: gzip`` only when compressing. A response that already
    has a ``Content-Encoding`` is left alone. Returns ``response``, changed in
    place::

        return gzip_response(StreamingResponse(generate()), request.headers.get("accept-encoding"))
    """
    names = {name for name, _ in response.raw_headers}
    if b"content-encoding" in names:
        return response
    if not any(
        name == b"vary" and b"accept-encoding" in value.lower()
        for name, value in response.raw_headers
    ):
        response.raw_headers.append((b"vary", b"Accept-Encoding"))
    if accepts_gzip(accept_encoding):
        response.raw_headers = [
            (name, value) for name, value in response.raw_headers if name != b"content-length"
        ]
        response.raw_headers.append((b"content-encoding", b"gzip"))
        response.content_encoder = GzipEncoder(level)
    return response
