"""SIGTERM to a *plain* server command (no ``asgi-stream serve``, no middleware)
with 100 open streams: every stream ends cleanly, every ``finally`` runs, and
the server exits, without the clients hanging up first.

sse-starlette gets there by patching uvicorn's ``Server.handle_exit``; here the
library chains the server's signal handler (:mod:`asgi_stream.serverstop`).
The app is ``tests/endless_app.py``: endless streams that print ``finally
ran`` when their generator ends.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from asgi_stream.tools.rawhttp import connect, read_body, read_head, request_bytes
from tests.reliability import errors_logged
from tests.serving import ServerProcess, serve

pytestmark = pytest.mark.server

STREAMS = 100
BOUND = 15.0  # seconds: generous; a server that waits for its streams never gets there

COMMANDS = {
    "uvicorn": ["-m", "uvicorn", "tests.endless_app:app", "--host", "127.0.0.1"],
    # --workers 0: serve in the process that gets the signal (see asgi_stream.serverstop).
    "hypercorn": [
        *("-m", "hypercorn", "tests.endless_app:app", "--workers", "0"),
        *("--bind", "127.0.0.1:{port}"),
    ],
}


async def hold_stream(port: int, opened: asyncio.Queue[None]) -> bool:
    """One endless stream; True when it ended with its last chunk (a clean end)."""
    reader, writer = await connect(port)
    try:
        writer.write(request_bytes("GET", "/endless"))
        status, headers = await read_head(reader)
        assert status == 200
        await read_body(reader, headers, limit=1)
        opened.put_nowait(None)
        _, complete = await asyncio.wait_for(read_body(reader, headers), BOUND)
        return complete
    finally:
        writer.close()


async def stop_with_open_streams(server: ServerProcess) -> tuple[list[bool], float]:
    opened: asyncio.Queue[None] = asyncio.Queue()
    streams = [asyncio.create_task(hold_stream(server.port, opened)) for _ in range(STREAMS)]
    for _ in range(STREAMS):
        await asyncio.wait_for(opened.get(), BOUND)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    ended = await asyncio.wait_for(asyncio.gather(*streams), BOUND)
    await asyncio.get_running_loop().run_in_executor(None, server.process.wait, BOUND)
    return ended, time.monotonic() - signalled


@pytest.mark.parametrize("server_name", COMMANDS)
def test_sigterm_ends_every_open_stream_cleanly_under_the_plain_command(
    tmp_path: Path, server_name: str
) -> None:
    with serve(COMMANDS[server_name], tmp_path) as server:
        ended, took = asyncio.run(stop_with_open_streams(server))
        output = server.output()
    print(f"{server_name}: exited {took:.2f} s after SIGTERM with {STREAMS} open streams")
    assert ended == [True] * STREAMS, f"{ended.count(False)} streams were cut, not ended"
    assert output.count("finally ran") == STREAMS
    assert errors_logged(output) == []
