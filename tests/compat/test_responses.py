"""What Starlette's response tests check of ``StreamingResponse``: the messages
on the wire, sync and async content, headers, the background task, the
disconnect. Where we differ (HEAD, a second use), docs/differences.rst says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import BackgroundTask, StreamingResponse
from tests.asgi import Endless, body_of, headers_of, http_scope, request


def run(response: Any, method: str = "GET") -> list[dict[str, Any]]:
    return asyncio.run(request(response, http_scope(method)))


def call(response: Any) -> list[dict[str, Any]]:
    """Call the response directly, so that what it raises reaches the test at once."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        await asyncio.wait_for(response(http_scope(), receive, send), 5)

    asyncio.run(main())
    return sent


async def numbers() -> AsyncIterator[str]:
    for n in range(1, 6):
        yield str(n)
        if n < 5:
            yield ", "
        await asyncio.sleep(0)


def test_an_async_generator_streams_one_message_per_chunk_then_the_end() -> None:
    messages = run(StreamingResponse(numbers(), media_type="text/plain"))
    assert messages[0]["status"] == 200
    assert body_of(messages) == b"1, 2, 3, 4, 5"
    assert all(m["more_body"] for m in messages[1:-1])
    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert headers_of(messages)[b"content-type"] == b"text/plain; charset=utf-8"
    assert b"content-length" not in headers_of(messages)


def test_a_sync_iterator_streams_from_a_thread() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a"
        yield memoryview(b"b")  # type: ignore[misc]
        yield b""  # skipped
        yield b"c"

    assert body_of(run(StreamingResponse(chunks()))) == b"abc"


def test_status_headers_and_a_known_size() -> None:
    response = StreamingResponse(
        iter([b"12345"]), status_code=201, headers={"content-length": "5", "x-a": "1"}
    )
    messages = run(response)
    assert messages[0]["status"] == 201
    assert headers_of(messages)[b"content-length"] == b"5"
    assert headers_of(messages)[b"x-a"] == b"1"


def test_a_chunk_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="chunk"):  # after the first: the stream is cut
        call(StreamingResponse(iter([b"fine", {"a": 1}])))


def test_the_background_task_runs_after_the_body() -> None:
    order: list[str] = []

    async def body() -> AsyncIterator[bytes]:
        order.append("body")
        yield b"x"

    run(StreamingResponse(body(), background=BackgroundTask(order.append, "task")))
    assert order == ["body", "task"]


def test_a_disconnect_stops_the_stream_and_runs_the_finally() -> None:
    stream = Endless()

    async def main() -> None:
        comm = ApplicationCommunicator(StreamingResponse(stream.generate()), http_scope())
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await comm.receive_output(2))["type"] == "http.response.start"
        assert (await comm.receive_output(2))["body"] == b"tick\n"
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(2)
        assert comm.future.done() and comm.future.exception() is None
        assert stream.finally_ran

    asyncio.run(main())


def test_head_sends_headers_only_and_never_starts_the_generator() -> None:
    """A difference: Starlette runs the generator for HEAD."""
    started = []

    async def body() -> AsyncIterator[bytes]:
        started.append(True)
        yield b"x"

    messages = run(StreamingResponse(body()), "HEAD")
    assert messages[0]["status"] == 200
    assert body_of(messages) == b""
    assert started == []


def test_a_second_use_is_refused_before_anything_is_sent() -> None:
    """A difference: Starlette sends an empty 200 (the generator is spent)."""
    response = StreamingResponse(iter([b"x"]))
    call(response)
    with pytest.raises(RuntimeError, match="already been sent"):
        call(response)
