"""Shared by the reliability tests: the test app's server, its stats, and a bounded poll."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from asgi_stream.tools.process import raise_open_files_limit
from asgi_stream.tools.rawhttp import fetch
from tests.serving import ServerProcess, serve

ERROR_MARKERS = ("ERROR", "Traceback", "CRITICAL")


@contextlib.contextmanager
def serve_test_app(
    tmp_path: Path, server: str = "uvicorn", *options: str
) -> Iterator[ServerProcess]:
    """``asgi-stream serve`` of :mod:`tests.reliability_app`, at a fast catalogue tick."""
    raise_open_files_limit()  # for this process's clients; the servers inherit it
    argv = ["-m", "asgi_stream", "serve", "--app", "tests.reliability_app:app"]
    argv += ["--server", server, "--tick", "0.01", *options]
    with serve(argv, tmp_path) as process:
        yield process


async def stats(port: int) -> dict[str, int]:
    """The test app's ``/_stats``: tasks, threads, fds, rss_kib, open_streams."""
    reply = await fetch(port, "GET", "/_stats")
    assert reply.status == 200 and reply.complete
    return json.loads(reply.body)


async def poll_until(
    probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 15.0
) -> Any:
    """Await ``probe()`` until ``done(result)`` or ``timeout``; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


def errors_logged(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(m in line for m in ERROR_MARKERS)]
