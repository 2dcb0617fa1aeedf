"""A file to download, and to resume: the catalogue's :class:`~asgi_stream.files.FileResponse`.

Theory of operation
===================

``GET /download`` describes the files there are (name, size, SHA-256), and
``GET /download/{name}`` sends one, with everything a download manager, a
video player or ``curl -C -`` relies on: ``Content-Length``, ``ETag``,
``Accept-Ranges: bytes``, ranges and ``If-Range`` (see
:mod:`asgi_stream.files`). The one file, ``sample.bin``, is made when it is
first asked for: :data:`SAMPLE_SIZE` bytes of a seeded random sequence, so it
is the same file in every process and a copy can be checked against its
SHA-256. It lives in a temporary directory that the router's shutdown
removes.

The demo page's download card reads it with ``fetch()``, stops when asked
(the connection is closed, and the server's read stops with it), and resumes
with ``Range: bytes=N-`` and ``If-Range``, then checks the SHA-256 of what it
put together.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import threading
from pathlib import Path

from ..files import FileResponse
from ..request import Request
from ..response import JSONResponse
from ..routing import Router

__all__ = ["SAMPLE_NAME", "SAMPLE_SIZE", "Downloads", "install"]

SAMPLE_NAME = "sample.bin"
#: The sample's size: a few seconds of the demo page's paced reading.
SAMPLE_SIZE = 8 * 1024 * 1024
_SEED = 26


class Downloads:
    """The directory of downloadable files, made on first use and removed at shutdown."""

    def __init__(self) -> None:
        self._directory: Path | None = None
        self._digest = ""
        self._lock = threading.Lock()  # first requests may come from several threads

    def directory(self) -> Path:
        with self._lock:
            if self._directory is None:
                directory = Path(tempfile.mkdtemp(prefix="asgi-stream-downloads-"))
                data = random.Random(_SEED).randbytes(SAMPLE_SIZE)
                (directory / SAMPLE_NAME).write_bytes(data)
                self._digest = hashlib.sha256(data).hexdigest()
                self._directory = directory
            return self._directory

    def remove(self) -> None:
        with self._lock:
            if self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)
                self._directory = None

    def listing(self, request: Request) -> JSONResponse:
        self.directory()
        sample = {"name": SAMPLE_NAME, "size": SAMPLE_SIZE, "sha256": self._digest}
        return JSONResponse({"files": [sample]})

    def download(self, request: Request) -> FileResponse:
        name = request.path_params["name"]
        return FileResponse.from_directory(self.directory(), name, filename=name)


def install(router: Router) -> Downloads:
    """Serve ``GET /download`` and ``GET /download/{name}``."""
    downloads = Downloads()
    router.on_shutdown.append(downloads.remove)
    # Sync endpoints: making the sample writes 8 MB, which must not hold the event loop.
    router.add("/download", downloads.listing)
    router.add("/download/{name}", downloads.download)
    return downloads
