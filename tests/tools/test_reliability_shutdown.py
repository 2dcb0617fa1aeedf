"""Shutdown under load: SIGTERM while 1,000 streams are open and new clients keep coming.

``asgi-stream serve`` on uvicorn and on hypercorn. The 1,000 streams are raw
asyncio connections to an endless stream (one event every half second) whose
generator prints ``finally ran`` as it ends. Once every stream has had its
first event, the server gets SIGTERM while a newcomer connects every 10 ms.

Every open stream must end cleanly (its last chunk, not a cut connection),
at once and not when the grace period runs out, with its ``finally`` run; the process must exit 0;
nothing may be logged at error level. A newcomer gets a 503 JSON answer, or a
whole answer if it came in before the shutdown began, or finds the listener
closed; it never hangs and never gets any other 5xx.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from asgi_stream.tools.rawhttp import connect, fetch, read_body, read_head, request_bytes
from tests.reliability import errors_logged, serve_test_app
from tests.serving import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.slow]

STREAMS = 1000
GRACE = 60.0  # --grace: far past the bound below, which a shutdown that waited for it fails
SHUTDOWN = 20.0  # the bound on a shutdown, from SIGTERM to the last stream's end
CONNECTING_AT_ONCE = 100  # hypercorn's listen backlog is 100


async def hold_stream(port: int, started: asyncio.Semaphore, first_event: list[int]) -> bool:
    """One endless stream: True when it ended with its last chunk."""
    async with started:
        reader, writer = await connect(port)
        writer.write(request_bytes("GET", "/endless?interval=0.5"))
        status, headers = await read_head(reader)
        assert status == 200
        first, _ = await read_body(reader, headers, limit=1)  # one whole chunk
        assert first == b"data: 0\n\n"
        first_event.append(1)
    try:
        _, complete = await read_body(reader, headers)
        return complete
    finally:
        writer.close()


async def newcomer(port: int) -> str:
    try:
        reply = await fetch(port, "GET", "/stream")
    except (ConnectionError, asyncio.IncompleteReadError):
        return "refused"  # the listener was closed, or closed with this one in its backlog
    if reply.status == 503:
        assert json.loads(reply.body) == {"detail": "Service Unavailable"}
        return "503"
    assert reply.status == 200 and reply.complete, reply
    return "served"


async def shut_down_under_load(server: ServerProcess) -> tuple[list[bool], list[str]]:
    started = asyncio.Semaphore(CONNECTING_AT_ONCE)
    first_event: list[int] = []
    streams = [
        asyncio.create_task(hold_stream(server.port, started, first_event)) for _ in range(STREAMS)
    ]
    deadline = time.monotonic() + 60
    while len(first_event) < STREAMS and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        for task in streams:
            if task.done():
                task.result()  # a stream that failed to open fails the test now
    assert len(first_event) == STREAMS

    newcomers: list[asyncio.Task[str]] = []
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    while not all(task.done() for task in streams) and time.monotonic() < signalled + SHUTDOWN:
        newcomers.append(asyncio.create_task(newcomer(server.port)))
        await asyncio.sleep(0.01)
    ended = await asyncio.wait_for(asyncio.gather(*streams), 5)
    outcomes = await asyncio.wait_for(asyncio.gather(*newcomers), 15)
    return ended, outcomes


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn"])
def test_sigterm_with_a_thousand_open_streams_and_newcomers(
    tmp_path: Path, server_name: str
) -> None:
    with serve_test_app(tmp_path, server_name, "--grace", str(GRACE)) as server:
        ended, outcomes = asyncio.run(shut_down_under_load(server))
        returncode = server.process.wait(SHUTDOWN)
        output = server.output()
    assert ended == [True] * STREAMS, f"{ended.count(False)} streams were cut, not ended"
    assert output.count("finally ran") == STREAMS
    assert returncode == 0
    assert errors_logged(output) == []
    # Newcomers kept coming through the shutdown, and were turned away cleanly.
    assert set(outcomes) - {"served"}, outcomes
