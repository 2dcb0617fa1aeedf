"""asgi_stream.serverstop: a server's stop ends open streams cleanly, in-process.

The end-to-end check, with real servers and SIGTERM, is
tests/compat/test_server_stop.py.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import StreamingResponse, stop_streams
from tests.asgi import Endless, http_scope

END = {"type": "http.response.body", "body": b"", "more_body": False}


async def open_stream(stream: Endless) -> ApplicationCommunicator:
    comm = ApplicationCommunicator(StreamingResponse(stream.generate()), http_scope())
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    assert (await comm.receive_output(2))["type"] == "http.response.start"
    assert (await comm.receive_output(2))["more_body"] is True
    return comm


async def until_end(comm: ApplicationCommunicator) -> dict[str, Any]:
    while (message := await comm.receive_output(2)).get("more_body", False):
        pass
    await comm.wait(2)
    assert comm.future.done() and comm.future.exception() is None
    return message


def test_stop_streams_closes_the_generator_and_ends_the_body_cleanly() -> None:
    async def main() -> None:
        streams = [Endless(), Endless()]
        comms = [await open_stream(stream) for stream in streams]
        stop_streams()
        for comm in comms:
            assert await until_end(comm) == END
        assert all(stream.finally_ran for stream in streams)

    asyncio.run(main())


def test_a_stream_started_while_the_server_stops_is_a_503_and_never_runs() -> None:
    async def main() -> list[dict[str, Any]]:
        stop_streams()
        stream = Endless()
        comm = ApplicationCommunicator(StreamingResponse(stream.generate()), http_scope())
        messages = [await comm.receive_output(2), await comm.receive_output(2)]
        await comm.wait(2)
        assert not stream.finally_ran  # never started: nothing to clean up
        return messages

    start, body = asyncio.run(main())
    assert start["status"] == 503
    assert body["body"] == b'{"detail":"Service Unavailable"}'


def test_a_new_event_loop_starts_afresh() -> None:
    async def stopped() -> None:
        stop_streams()

    asyncio.run(stopped())  # a server that stopped, in an earlier loop

    async def main() -> None:
        stream = Endless()
        comm = await open_stream(stream)  # streams, not a 503
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(2)
        assert stream.finally_ran

    asyncio.run(main())


@pytest.fixture
def server_handlers() -> Iterator[list[int]]:
    """A SIGTERM and SIGINT handler such as a server installs; the signals it saw."""
    seen: list[int] = []

    def handle_exit(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = {sig: signal.signal(sig, handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield seen
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_servers_signal_handler_is_chained_and_still_called(server_handlers: list[int]) -> None:
    async def main() -> None:
        stream = Endless()
        comm = await open_stream(stream)
        signal.raise_signal(signal.SIGTERM)
        assert await until_end(comm) == END
        assert stream.finally_ran

    asyncio.run(main())
    assert server_handlers == [signal.SIGTERM]


def test_without_a_server_handler_no_signal_handler_is_touched() -> None:
    """SIGTERM's default (die) stays, and so does the SIGINT handler of asyncio.run()."""

    async def main() -> None:
        before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        comm = await open_stream(Endless())
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(2)

    asyncio.run(main())
