"""Files that resume: a file response with ranges, validators and zero-copy sends.

Theory of operation
===================

Sending a file is streaming with two gifts a generator does not have: the
length is known before the first byte, and any part of the body can be made
again on demand. HTTP turns both into features.

* **Validators.** ``Last-Modified`` (the file's mtime) and ``ETag`` (a
  fingerprint: here the mtime in nanoseconds and the size, so a file
  rewritten within the same second still gets a new tag) let a client that
  has a copy ask "has it changed?" with ``If-None-Match`` or
  ``If-Modified-Since``; the answer ``304 Not Modified`` has no body.
* **Ranges.** ``Accept-Ranges: bytes`` says a client may ask for a part:
  ``Range: bytes=1000-`` (from byte 1000), ``bytes=0-99`` (the first 100),
  ``bytes=-500`` (the last 500). One range is answered ``206 Partial Content``
  with a ``Content-Range``; several, with a ``multipart/byteranges`` body that
  holds each part with its own ``Content-Range``. A range that starts past
  the end is ``416 Range Not Satisfiable``, with ``Content-Range: bytes */N``
  so the client learns the size. ``If-Range`` makes a resume safe: "send me
  the range if the file is still the one with this ETag (or date), else the
  whole file", so a resumed download never glues two versions together.

The decision, made from the request's headers and one ``stat()`` of the
file, before anything is opened (RFC 9110 §13.2.2 gives the order; a
response made with a status other than 200 skips all of it):

=========================================  ======================================
The request                                 The answer
=========================================  ======================================
``If-Match`` names no current ETag          ``412``, JSON
(or ``If-Unmodified-Since`` is older
than the file; only without ``If-Match``)
``If-None-Match`` matches the ETag          ``304`` (GET and HEAD), no body
(or, without it, ``If-Modified-Since``
is not older than the file)
no ``Range``, a method other than GET or    ``200``, the whole file
HEAD, or a ``Range`` we ignore (below)
``If-Range`` does not match (weak ETag,     ``200``, the whole file
other ETag, other date)
``Range`` satisfiable: one range left       ``206``, ``Content-Range: bytes a-b/N``
after overlapping ones are merged
``Range`` satisfiable: several ranges       ``206``, ``multipart/byteranges``
``Range`` well formed, no range             ``416``, ``Content-Range: bytes */N``,
satisfiable (each starts past the end)      JSON
=========================================  ======================================

A ``Range`` is *ignored* (the whole file, as RFC 9110 §14.2 lets a server
do) when it is malformed (not ``bytes=``, a range that is not numbers, an
end before its start), or names more than :attr:`FileResponse.max_ranges`
ranges: answering it would cost more than the file. Ranges are checked from
the file's size alone, so no request can make the server read in order to
refuse it. Overlapping and adjacent ranges are merged, so a body is never
longer than the file plus its part headers.

Sending
-------

The body is a sync generator that reads the file in chunks of
:attr:`FileResponse.chunk_size`. It is given to a
:class:`~asgi_stream.response.StreamingResponse`, so everything that module
says about endings holds: each ``read()`` runs on the stream's one thread
(:mod:`asgi_stream.concurrency`), the client leaving stops it at once, a
server's stop never cuts it (it has a ``Content-Length``), HEAD never starts
it, and in every ending the generator is closed, and the file with it. The
file is opened at the generator's first step, so HEAD and ``304`` open
nothing.

A file that changes while it is sent cannot be sent right: the validators
already went out with the headers. So before each chunk leaves, the
generator checks the open file's size and mtime against the ones it
announced; if either moved, or a read comes back short (the file was
truncated), it raises, and the response ends *unfinished*, with no final
``more_body: False``: the client sees a broken download, never wrong bytes
passed off as complete. Found before the first chunk, while the headers
still wait for it (:mod:`asgi_stream.response`, "Before the first chunk"),
the change is answered with a JSON 500 instead. (A file deleted once opened
is still readable on POSIX systems: the client gets the version it asked
for.)

Where the server sends files itself, the whole-file case is handed over
(ranges and HEAD never are): with the ASGI ``http.response.pathsend``
extension (granian offers it) the server gets the path, with
``http.response.zerocopysend`` an open file, for ``sendfile()``.

Errors
------

A path that is missing or not a regular file is answered ``404`` with the
JSON ``{"detail": "Not Found"}``, when the response is sent (it is checked
then, as the file may come and go). :meth:`FileResponse.from_directory` is for
a name that comes from the request: it refuses, with the same ``404``
(:class:`~asgi_stream.exceptions.HTTPException`), any name that leaves the
directory, by ``..``, an absolute path, or a symbolic link pointing outside.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import re
import secrets
import stat
from collections.abc import Generator, Iterator, Sequence
from typing import Any
from urllib.parse import quote

from .background import BackgroundTask, BackgroundTasks
from .concurrency import run_in_threadpool
from .exceptions import ClientDisconnect, HTTPException
from .headers import Headers, HeadersInput, encode_header, is_token
from .response import JSONResponse, Response, StreamingResponse
from .types import Receive, Scope, Send

__all__ = ["FileResponse"]

# RFC 9110 §14.1.2: one range-spec, "first-last", "first-" or "-suffix".
_RANGE_SPEC = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")
# Beyond any file: a number of more digits is taken as this (int() refuses 4,300 digits).
_HUGE = 10**18
# What a 304 does not repeat: the metadata of a body it does not have (RFC 9110 §15.4.5).
_NOT_FOR_304 = frozenset(
    {b"content-length", b"content-type", b"content-disposition", b"content-encoding"}
)
# Characters a quoted filename="..." may hold as they are; anything else goes in filename*.
_PLAIN_FILENAME = re.compile(r"[ !#-\[\]-~]+")


class FileChangedError(RuntimeError):
    """The file changed while it was sent: the body is ended unfinished."""


class FileResponse(Response):
    """The file at ``path``, whole or in ranges, with validators and conditional requests.

    The signature is Starlette's. ``media_type`` is guessed from ``filename``
    (else ``path``), ``application/octet-stream`` if nothing fits.
    ``filename`` adds a ``Content-Disposition`` of ``content_disposition_type``
    (``"attachment"``: a download; ``"inline"``: shown), with an RFC 5987
    ``filename*`` for a name that is not plain ASCII. ``stat_result`` saves
    the ``stat()`` of each send, and fixes the headers at construction.

    What is sent for each request is the table at the top of this module. The
    object may be sent any number of times, as Starlette's; the file is
    looked at anew each time.
    """

    #: The bytes read, and sent, at a time.
    chunk_size = 256 * 1024
    #: More ranges than this in one ``Range`` header, and it is ignored.
    max_ranges = 100

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: HeadersInput | None = None,
        media_type: str | None = None,
        background: BackgroundTask | BackgroundTasks | None = None,
        filename: str | None = None,
        content_disposition_type: str = "attachment",
        stat_result: os.stat_result | None = None,
    ) -> None:
        self.path = os.fspath(path)
        #: What ``http.response.pathsend`` is given: the ASGI spec asks for an absolute path.
        self.absolute_path = os.path.abspath(self.path)
        self.filename = filename
        if media_type is None:
            media_type = mimetypes.guess_type(filename or self.path)[0]
        super().__init__(
            None, status_code, headers, media_type or "application/octet-stream", background
        )
        given = {name for name, _ in self.raw_headers}
        if b"accept-ranges" not in given:
            self.raw_headers.append((b"accept-ranges", b"bytes"))
        if filename is not None and b"content-disposition" not in given:
            if not is_token(content_disposition_type):
                raise ValueError(
                    f"content_disposition_type must be a token such as 'attachment' or "
                    f"'inline', not {content_disposition_type!r}"
                )
            self.raw_headers.append(
                encode_header(
                    "content-disposition", content_disposition(content_disposition_type, filename)
                )
            )
        self.stat_result = stat_result
        if stat_result is not None:
            self.raw_headers = _with_stat_headers(self.raw_headers, stat_result)

    def set_content(self, content: Any) -> None:
        return None  # the length is the file's, known once it is looked at

    @classmethod
    def from_directory(
        cls, directory: str | os.PathLike[str], name: str, **options: Any
    ) -> FileResponse:
        """The file ``name`` (a relative path, from the request) in ``directory``.

        Raises :class:`~asgi_stream.exceptions.HTTPException` ``404`` unless
        ``name`` resolves, symbolic links followed, to a regular file inside
        ``directory``: ``..``, an absolute path, a NUL byte or a link out of
        the directory all end there, as a missing file does. ``options`` are
        those of :class:`FileResponse`.
        """
        root = os.path.realpath(directory)
        if not name or "\x00" in name or os.path.isabs(name):
            raise HTTPException(404, "Not Found")
        found = os.path.realpath(os.path.join(root, name))
        if os.path.commonpath([root, found]) != root or not os.path.isfile(found):
            raise HTTPException(404, "Not Found")
        return cls(found, **options)

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Look at the file, decide (the module's table), and send that."""
        try:
            info = self.stat_result or await run_in_threadpool(os.stat, self.path)
        except OSError:  # missing, a name too long, not ours to read: not found, to the client
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            await JSONResponse({"detail": "Not Found"}, 404).send_response(scope, receive, send)
            return
        raw = _with_stat_headers(self.raw_headers, info)
        answer = self._decide(scope, raw, info)
        if isinstance(answer, Response):
            await answer.send_response(scope, receive, send)
            return
        status, ranges = answer
        size = info.st_size
        if len(ranges) > 1:
            body, length, content_type = self._multipart(raw, ranges, info)
            raw = [pair for pair in raw if pair[0] not in (b"content-length", b"content-type")]
            raw += [encode_header("content-type", content_type), _length(length)]
        else:
            start, end = ranges[0]
            body = read_parts(self.path, [(start, end, b"")], b"", self.chunk_size, info)
            if status == 206:
                raw = [pair for pair in raw if pair[0] != b"content-length"]
                raw += [
                    (b"content-range", f"bytes {start}-{end - 1}/{size}".encode()),
                    _length(end - start),
                ]
            elif scope.get("method") != "HEAD" and await self._send_zero_copy(
                scope, send, raw, size
            ):
                body.close()
                return
        stream = StreamingResponse(body, status)
        stream.raw_headers = raw
        await stream.send_response(scope, receive, send)

    def _decide(
        self, scope: Scope, raw: list[tuple[bytes, bytes]], info: os.stat_result
    ) -> Response | tuple[int, list[tuple[int, int]]]:
        """The module's table: a ready answer (304, 412, 416), or a status and ranges."""
        whole = (self.status_code, [(0, info.st_size)])
        method = scope.get("method")
        if self.status_code != 200:
            return whole
        request = Headers(scope.get("headers") or ())
        etag = next(value.decode("latin-1") for name, value in raw if name == b"etag")
        mtime = int(info.st_mtime)
        if_match = request.get("if-match")
        if if_match is not None:
            if not _etag_listed(if_match, etag, weak=False):
                return _json(412, "Precondition Failed", raw)
        elif _older_than(request.get("if-unmodified-since"), mtime):
            return _json(412, "Precondition Failed", raw)
        if method not in ("GET", "HEAD"):
            return whole
        if_none_match = request.get("if-none-match")
        if if_none_match is not None:
            if _etag_listed(if_none_match, etag, weak=True):
                return _not_modified(raw)
        elif _not_older_than(request.get("if-modified-since"), mtime):
            return _not_modified(raw)
        range_header = request.get("range")
        if range_header is None:
            return whole
        if_range = request.get("if-range")
        if if_range is not None and not _if_range_holds(if_range, etag, raw):
            return whole
        ranges = parse_range(range_header, info.st_size, self.max_ranges)
        if ranges is None:
            return whole
        if not ranges:
            unsatisfiable = _json(416, "Range Not Satisfiable", raw)
            unsatisfiable.raw_headers.append((b"content-range", f"bytes */{info.st_size}".encode()))
            return unsatisfiable
        return 206, ranges

    def _multipart(
        self, raw: list[tuple[bytes, bytes]], ranges: list[tuple[int, int]], info: os.stat_result
    ) -> tuple[Iterator[bytes], int, str]:
        """The ``multipart/byteranges`` body of ``ranges``, its length and its Content-Type."""
        boundary = secrets.token_hex(16).encode("ascii")
        part_type = next((value for name, value in raw if name == b"content-type"), b"")
        parts = []
        for number, (start, end) in enumerate(ranges):
            head = b"%s--%s\r\ncontent-type: %s\r\ncontent-range: bytes %d-%d/%d\r\n\r\n" % (
                b"\r\n" if number else b"",  # each part after the first starts a new line
                boundary,
                part_type,
                start,
                end - 1,
                info.st_size,
            )
            parts.append((start, end, head))
        closing = b"\r\n--%s--\r\n" % boundary
        length = sum(len(head) + end - start for start, end, head in parts) + len(closing)
        body = read_parts(self.path, parts, closing, self.chunk_size, info)
        return body, length, f"multipart/byteranges; boundary={boundary.decode()}"

    async def _send_zero_copy(
        self, scope: Scope, send: Send, raw: list[tuple[bytes, bytes]], size: int
    ) -> bool:
        """Hand the whole file to the server, if it offers to send files; whether it did."""
        extensions = scope.get("extensions") or {}
        start = {"type": "http.response.start", "status": self.status_code, "headers": raw}
        try:
            if "http.response.pathsend" in extensions:
                await send(start)
                await send({"type": "http.response.pathsend", "path": self.absolute_path})
                return True
            if "http.response.zerocopysend" in extensions:
                file = await run_in_threadpool(open, self.path, "rb")
                try:
                    await send(start)
                    await send(
                        {
                            "type": "http.response.zerocopysend",
                            "file": file,
                            "offset": 0,
                            "count": size,
                            "more_body": False,
                        }
                    )
                finally:
                    file.close()
                return True
        except OSError as exc:  # ASGI 2.4: the client is gone
            raise ClientDisconnect from exc
        return False


def read_parts(
    path: str,
    parts: Sequence[tuple[int, int, bytes]],
    closing: bytes,
    chunk_size: int,
    announced: os.stat_result,
) -> Generator[bytes, None, None]:
    """Yield, for each ``(start, end, head)`` of ``parts``, ``head`` then the
    file's bytes ``start`` to ``end``; then ``closing``.

    The file is opened at the first step and closed when the generator is.
    Before each chunk leaves, the open file's size and mtime are compared with
    ``announced`` (what the headers said); a change, or a short read, raises
    :class:`FileChangedError`.
    """
    with open(path, "rb", buffering=0) as file:
        for start, end, head in parts:
            if head:
                yield head
            file.seek(start)
            position = start
            while position < end:
                chunk = file.read(min(chunk_size, end - position))
                now = os.fstat(file.fileno())
                if (
                    not chunk
                    or now.st_size != announced.st_size
                    or now.st_mtime_ns != announced.st_mtime_ns
                ):
                    raise FileChangedError(f"{path} changed while it was being sent")
                position += len(chunk)
                yield chunk
        if closing:
            yield closing


def parse_range(header: str, size: int, max_ranges: int) -> list[tuple[int, int]] | None:
    """The ranges a ``Range`` header asks of a ``size``-byte file, as ``(start, end)``
    with ``end`` exclusive, sorted and merged where they overlap or touch.

    ``None``: the header is to be ignored (malformed, not bytes, more than
    ``max_ranges`` ranges). ``[]``: well formed, but no range is satisfiable.
    """
    unit, equals, specs = header.partition("=")
    if not equals or unit.strip().lower() != "bytes" or specs.count(",") >= max_ranges:
        return None
    ranges = []
    for spec in specs.split(","):
        if not spec.strip():
            continue  # RFC 9110 §5.6.1: empty list elements are allowed, and mean nothing
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            return None
        first, last = (_number(text) for text in match.groups())
        if first is None:
            if last is None:
                return None  # a lone "-"
            if last > 0 and size > 0:  # a suffix: the last `last` bytes
                ranges.append((max(size - last, 0), size))
        else:
            if last is not None and last < first:
                return None  # RFC 9110 §14.1.1: invalid
            if first < size:
                ranges.append((first, size if last is None else min(last + 1, size)))
    if not ranges and not any(spec.strip() for spec in specs.split(",")):
        return None
    ranges.sort()
    merged = [ranges[0]] if ranges else []
    for start, end in ranges[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def content_disposition(disposition_type: str, filename: str) -> str:
    """A ``Content-Disposition`` value that names ``filename`` safely.

    A plain printable-ASCII name goes in ``filename="..."``. Any other gets an
    ASCII stand-in there (for old clients) and the real name, UTF-8 and
    percent-encoded, in RFC 5987's ``filename*``, which every current browser
    prefers. Either way no character of the name can end the header.
    """
    if _PLAIN_FILENAME.fullmatch(filename):
        return f'{disposition_type}; filename="{filename}"'
    fallback = "".join(c if _PLAIN_FILENAME.fullmatch(c) else "_" for c in filename)
    return (
        f"{disposition_type}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
    )


def _number(text: str) -> int | None:
    if not text:
        return None
    return int(text) if len(text) < 19 else _HUGE


def _length(length: int) -> tuple[bytes, bytes]:
    return b"content-length", str(length).encode("ascii")


def _with_stat_headers(
    raw: list[tuple[bytes, bytes]], info: os.stat_result
) -> list[tuple[bytes, bytes]]:
    """A copy of ``raw`` with the file's Content-Length, Last-Modified and ETag,
    unless the caller gave them."""
    given = {name for name, _ in raw}
    found = [
        (b"content-length", str(info.st_size).encode("ascii")),
        (b"last-modified", email.utils.formatdate(info.st_mtime, usegmt=True).encode("ascii")),
        (b"etag", f'"{info.st_mtime_ns:x}-{info.st_size:x}"'.encode("ascii")),
    ]
    return [*raw, *(pair for pair in found if pair[0] not in given)]


def _etag_listed(header: str, etag: str, weak: bool) -> bool:
    """Whether ``If-Match`` / ``If-None-Match`` names ``etag`` (or is ``*``).

    ``weak``: the weak comparison of RFC 9110 §8.8.3.2 (``W/`` ignored), which
    ``If-None-Match`` uses; otherwise the strong one, which ``If-Match`` does.
    """
    if header.strip() == "*":
        return True
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            if not weak:
                continue
            tag = tag[2:]
        if tag == etag.removeprefix("W/") and (weak or not etag.startswith("W/")):
            return True
    return False


def _http_date(value: str | None) -> float | None:
    """The timestamp of an HTTP date, or ``None`` if there is none or it is not one."""
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _older_than(value: str | None, mtime: int) -> bool:
    """Whether the date ``value`` is valid and older than the file (``If-Unmodified-Since``)."""
    date = _http_date(value)
    return date is not None and mtime > date


def _not_older_than(value: str | None, mtime: int) -> bool:
    """Whether the date ``value`` is valid and the file not newer (``If-Modified-Since``: 304)."""
    date = _http_date(value)
    return date is not None and mtime <= date


def _if_range_holds(value: str, etag: str, raw: list[tuple[bytes, bytes]]) -> bool:
    """Whether ``If-Range`` still describes the file: the same strong ETag, or the
    very Last-Modified date sent (a weak ETag never does, RFC 9110 §13.1.5)."""
    value = value.strip()
    if value.startswith('"'):
        return value == etag and not etag.startswith("W/")
    last_modified = next((v.decode("latin-1") for n, v in raw if n == b"last-modified"), None)
    return value == last_modified


def _answer_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [pair for pair in raw if pair[0] not in _NOT_FOR_304]


def _not_modified(raw: list[tuple[bytes, bytes]]) -> Response:
    answer = Response(status_code=304)
    answer.raw_headers = _answer_headers(raw)
    return answer


def _json(status: int, detail: str, raw: list[tuple[bytes, bytes]]) -> Response:
    answer = JSONResponse({"detail": detail}, status)
    answer.raw_headers += _answer_headers(raw)
    return answer
