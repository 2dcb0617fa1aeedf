"""GracefulShutdown: the exact ASGI messages around a shutdown, without a server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.testing import ApplicationCommunicator

from asgi_stream import StreamingResponse
from asgi_stream.shutdown import GracefulShutdown
from tests.asgi import Endless, http_scope, request
from tests.waiting import BOUND

START = "http.response.start"
BODY = "http.response.body"
END = {"type": BODY, "body": b"", "more_body": False}
UNAVAILABLE = b'{"detail":"Service Unavailable"}'


async def open_stream(app: Any) -> ApplicationCommunicator:
    """Start a request and read up to its first body chunk."""
    comm = ApplicationCommunicator(app, http_scope())
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    assert (await comm.receive_output(BOUND))["type"] == START
    assert (await comm.receive_output(BOUND))["type"] == BODY
    return comm


async def rest_of_response(comm: ApplicationCommunicator) -> list[dict[str, Any]]:
    """Every message up to the final body message (bounded), then the app's end."""
    messages = []
    while not messages or messages[-1].get("more_body", False):
        messages.append(await comm.receive_output(BOUND))
    await comm.wait(BOUND)
    assert comm.future.done() and not comm.future.cancelled()
    assert comm.future.exception() is None
    return messages


def test_shut_down_ends_an_open_stream_at_once_and_completes_its_response() -> None:
    stream = Endless()
    app = GracefulShutdown(StreamingResponse(stream.generate()), grace=30)

    async def main() -> None:
        comm = await open_stream(app)
        app.shut_down()
        # A stream left to run until the grace period is over fails this bound.
        messages = await asyncio.wait_for(rest_of_response(comm), BOUND)
        assert messages[-1] == END
        assert all(m["type"] == BODY for m in messages)
        await asyncio.wait_for(app.drained(), BOUND)

    asyncio.run(main())
    assert stream.finally_ran
    assert app.requests_in_flight == 0


def test_requests_after_shut_down_are_answered_503() -> None:
    app = GracefulShutdown(StreamingResponse(Endless().generate()))

    async def main() -> list[dict[str, Any]]:
        app.shut_down()
        return await request(app, http_scope())

    start, body = asyncio.run(main())
    assert start["status"] == 503
    assert body == {"type": BODY, "body": UNAVAILABLE, "more_body": False}


def test_a_request_whose_response_had_not_started_is_answered_503() -> None:
    waiting = asyncio.Event()

    async def long_poll(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the request
        waiting.set()
        if (await receive())["type"] == "http.disconnect":
            return  # the client left (as far as the app knows): nothing to answer
        raise AssertionError("a second request message, but none was sent")

    app = GracefulShutdown(long_poll)

    async def main() -> list[dict[str, Any]]:
        comm = ApplicationCommunicator(app, http_scope())
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        await asyncio.wait_for(waiting.wait(), BOUND)  # the app now waits in its second receive()
        assert app.requests_in_flight == 1
        app.shut_down()
        start = await comm.receive_output(BOUND)
        return [start, *await rest_of_response(comm)]

    start, body = asyncio.run(main())
    assert start["status"] == 503
    assert body["body"] == UNAVAILABLE


def test_a_request_that_ignores_the_disconnect_is_cancelled_after_the_grace_period() -> None:
    cleaned_up = []

    async def deaf(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": START, "status": 200, "headers": []})
        await send({"type": BODY, "body": b"never ends", "more_body": True})
        try:
            await asyncio.sleep(3600)  # never calls receive(), so never hears the disconnect
        finally:
            cleaned_up.append(True)

    app = GracefulShutdown(deaf, grace=0.2)

    async def main() -> tuple[float, list[dict[str, Any]]]:
        comm = ApplicationCommunicator(app, http_scope())
        await comm.receive_output(BOUND)
        await comm.receive_output(BOUND)
        began = time.monotonic()
        app.shut_down()
        messages = await rest_of_response(comm)  # bounded: "never" fails it
        return time.monotonic() - began, messages

    took, messages = asyncio.run(main())
    assert messages == [END]
    assert cleaned_up == [True]
    assert took >= 0.2  # not cancelled before the grace period was over


def test_a_response_with_content_length_keeps_the_grace_period_to_finish() -> None:
    async def five_parts() -> Any:
        for part in b"abcde":
            await asyncio.sleep(0.02)
            yield bytes([part])

    app = GracefulShutdown(StreamingResponse(five_parts(), headers={"content-length": "5"}))

    async def main() -> list[dict[str, Any]]:
        comm = await open_stream(app)
        app.shut_down()
        return await rest_of_response(comm)

    messages = asyncio.run(main())
    assert b"".join(m["body"] for m in messages) == b"bcde"  # "a" was read by open_stream
    assert messages[-1] == END


def test_the_servers_own_cancellation_is_not_swallowed() -> None:
    app = GracefulShutdown(StreamingResponse(Endless().generate()))

    async def main() -> ApplicationCommunicator:
        comm = await open_stream(app)
        comm.future.cancel()
        await asyncio.wait([comm.future], timeout=BOUND)
        return comm

    assert asyncio.run(main()).future.cancelled()
