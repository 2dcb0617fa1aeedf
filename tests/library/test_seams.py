"""Issue 24, in-process: what a stream sends when other code sits around it.

* Every message is a fresh dict: middleware that rewrites the messages it is
  handed (as Starlette's ``GZipMiddleware`` does) changes nothing for the
  next send or the next stream.
* Nothing is sent after the final message, and no two sends of one stream
  overlap, heartbeats included.
* An error before the first chunk is answered as itself: an HTTP error with
  its status, headers and JSON; anything else a logged JSON 500.
* The disconnect watch never takes the request body from a generator that
  reads it (:class:`~asgi_stream.KeepRequestBody`), and still sees the client
  leave at once.
* The resumable response takes ``ping=`` and ``send_timeout=``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import (
    EventSourceResponse,
    HTTPException,
    JSONResponse,
    KeepRequestBody,
    MemoryEventLog,
    Request,
    ResumableEventSourceResponse,
    Router,
    StreamingResponse,
)
from asgi_stream.types import ASGIApp, Message, Receive, Scope, Send
from tests.asgi import body_of, headers_of, http_scope, request

BOUND = 5.0
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def mangling(app: ASGIApp) -> ASGIApp:
    """Middleware that rewrites, in place, every message it is handed, as the
    worst-behaved middleware may: it adds a header to the list and replaces
    the body, then passes the message on."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def mangle(message: Message) -> None:
            copy = dict(message)
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-mangled", b"1"))
            elif message["type"] == "http.response.body":
                message["body"] = b"<mangled>"
            await send(copy)

        await app(scope, receive, mangle)

    return wrapped


async def twice(app: ASGIApp) -> list[list[Message]]:
    return [await request(app, http_scope()) for _ in range(2)]


async def test_a_reusable_response_is_the_same_after_middleware_rewrote_its_messages() -> None:
    response = JSONResponse({"n": 1})
    first, second = await twice(mangling(response))
    assert first == second
    assert body_of(second) == b'{"n":1}'
    assert response.raw_headers.count((b"x-mangled", b"1")) == 0


async def test_a_stream_after_a_rewritten_stream_sends_its_own_bytes() -> None:
    def app() -> ASGIApp:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks())

    await request(mangling(app()), http_scope())  # rewrites the final message, among others
    messages = await request(app(), http_scope())
    assert body_of(messages) == b"ab"
    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


class Recorder:
    """A server's ``send`` that takes ``delay`` seconds per body message (a
    slow client) and records any overlap, and any send after the last."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[Message] = []
        self.in_flight = 0
        self.overlaps = 0
        self.after_end = 0
        self.ended = False

    async def send(self, message: Message) -> None:
        if self.ended:
            self.after_end += 1
        self.in_flight += 1
        self.overlaps += self.in_flight > 1
        try:
            if message["type"] == "http.response.body":
                await asyncio.sleep(self.delay)
            self.messages.append(message)
        finally:
            self.in_flight -= 1
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.ended = True


async def never_disconnects() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("coalesce", [None, True, False])
async def test_no_heartbeat_overlaps_the_final_send_or_follows_it(coalesce: bool | None) -> None:
    async def events() -> AsyncIterator[str]:
        yield "one"
        await asyncio.sleep(0.05)  # quiet: heartbeats are due
        yield "two"

    recorder = Recorder(delay=0.03)  # each send lasts longer than the heartbeat interval
    response = EventSourceResponse(events(), ping=0.005, coalesce=coalesce)
    await asyncio.wait_for(response(http_scope(), never_disconnects, recorder.send), BOUND)
    await asyncio.sleep(0.05)  # a heartbeat timer left running would fire here
    assert recorder.ended
    assert recorder.overlaps == 0
    assert recorder.after_end == 0
    assert b": heartbeat" in body_of(recorder.messages)  # heartbeats did run meanwhile


async def raising(exc: BaseException, delay: float = 0) -> AsyncIterator[str]:
    if delay:
        await asyncio.sleep(delay)
    raise exc
    yield "never"  # pragma: no cover - makes this an async generator


async def test_an_http_error_before_the_first_chunk_is_answered_with_its_status() -> None:
    error = HTTPException(403, "not yours", {"X-Reason": "policy"})
    messages = await request(StreamingResponse(raising(error)), http_scope())
    assert messages[0]["status"] == 403
    assert headers_of(messages)[b"x-reason"] == b"policy"
    assert headers_of(messages)[b"content-type"] == b"application/json"
    assert json.loads(body_of(messages)) == {"detail": "not yours"}
    assert messages[-1]["more_body"] is False


async def test_starlettes_http_exception_before_the_first_event_is_its_status() -> None:
    from starlette.exceptions import HTTPException as StarletteHTTPException

    messages = await request(
        EventSourceResponse(raising(StarletteHTTPException(404))), http_scope()
    )
    assert messages[0]["status"] == 404
    assert json.loads(body_of(messages)) == {"detail": "Not Found"}


async def test_another_error_before_the_first_chunk_is_a_logged_json_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages = await request(StreamingResponse(raising(ValueError("boom"))), http_scope())
    assert messages[0]["status"] == 500
    assert json.loads(body_of(messages)) == {"detail": "Internal Server Error"}
    assert messages[-1]["more_body"] is False
    [record] = [r for r in caplog.records if r.name == "asgi_stream"]
    assert record.exc_info is not None and str(record.exc_info[1]) == "boom"


async def test_an_error_after_the_headers_went_out_early_is_a_cut_stream() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    response = StreamingResponse(raising(ValueError("late"), delay=0.1), first_chunk_wait=0.01)
    with pytest.raises(ValueError, match="late"):
        await asyncio.wait_for(response(http_scope(), never_disconnects, send), BOUND)
    assert sent[0]["status"] == 200
    assert not any(m["type"] == "http.response.body" and not m["more_body"] for m in sent)


async def test_a_slow_first_chunk_gets_its_headers_early_with_heartbeats() -> None:
    chunk_made = asyncio.Event()

    async def slow() -> AsyncIterator[str]:
        await chunk_made.wait()
        yield "late"

    comm = ApplicationCommunicator(
        EventSourceResponse(slow(), ping=0.01, first_chunk_wait=0.02), http_scope()
    )
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(BOUND)
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    heartbeat = await comm.receive_output(BOUND)
    assert heartbeat["body"] == b": heartbeat\n\n"
    chunk_made.set()
    bodies = [await comm.receive_output(BOUND) for _ in range(2)]
    while bodies[-1].get("more_body"):
        bodies.append(await comm.receive_output(BOUND))
    assert b"data: late\n\n" in b"".join(m["body"] for m in bodies)
    await comm.wait(BOUND)


async def test_first_chunk_wait_zero_sends_the_headers_at_once() -> None:
    comm = ApplicationCommunicator(
        StreamingResponse(raising(ValueError("x"), delay=60), first_chunk_wait=0), http_scope()
    )
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(BOUND)
    assert start["status"] == 200
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(BOUND)


def test_first_chunk_wait_is_checked_where_it_is_given() -> None:
    for bad in (-1, float("nan"), "1", True):
        with pytest.raises((TypeError, ValueError)):
            StreamingResponse([], first_chunk_wait=bad)


async def test_the_resumable_response_sends_heartbeats_and_takes_a_send_timeout() -> None:
    log = MemoryEventLog()
    response = ResumableEventSourceResponse(
        log, "quiet", ping=0.01, send_timeout=5, first_chunk_wait=0.01
    )
    comm = ApplicationCommunicator(response, http_scope())
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    assert (await comm.receive_output(BOUND))["status"] == 200
    assert (await comm.receive_output(BOUND))["body"] == b": heartbeat\n\n"
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(BOUND)
    assert response.send_timeout == 5


# -- the request body and the disconnect watch --------------------------------------------


class Upload:
    """A server's ``receive``: the body in ``pieces``, one message each as the
    test releases it, then (when told) ``http.disconnect``."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        for index, piece in enumerate(pieces):
            more = index < len(pieces) - 1
            self.queue.put_nowait({"type": "http.request", "body": piece, "more_body": more})

    async def receive(self) -> Message:
        return await self.queue.get()

    def leave(self) -> None:
        self.queue.put_nowait({"type": "http.disconnect"})


def echo_app(state: dict[str, Any]) -> ASGIApp:
    """A framework-style app: its own request reads the raw receive, in the generator."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def echo() -> AsyncIterator[bytes]:
            received = 0
            try:
                while True:
                    message = await receive()  # as a framework's request.stream() does
                    assert message["type"] == "http.request"
                    received += len(message["body"])
                    if not message["more_body"]:
                        break
                yield f"{received}\n".encode()
                await asyncio.Event().wait()  # then stream until the client leaves
            finally:
                state["finally"] = True

        await StreamingResponse(echo())(scope, receive, send)

    return app


async def test_keep_request_body_leaves_the_upload_to_the_generator_and_watches() -> None:
    pieces = [bytes([n]) * 1000 for n in range(50)]
    upload = Upload(pieces)
    state: dict[str, Any] = {}
    sent: list[Message] = []
    got_body = asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body"):
            got_body.set()

    app = KeepRequestBody(echo_app(state), max_body_size=10**6)
    task = asyncio.ensure_future(app(http_scope("POST"), upload.receive, send))
    await asyncio.wait_for(got_body.wait(), BOUND)
    assert body_of(sent) == b"50000\n"
    upload.leave()
    await asyncio.wait_for(task, BOUND)  # the watch saw the client leave
    assert state["finally"]


async def test_our_router_leaves_the_upload_to_a_generator_that_streams_it() -> None:
    app = Router()

    @app.post("/echo")
    async def echo(request: Request) -> StreamingResponse:
        async def lengths() -> AsyncIterator[str]:
            async for chunk in request.stream():
                yield f"{len(chunk)}\n"

        return StreamingResponse(lengths())

    upload = Upload([b"x" * 100] * 20)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {**http_scope("POST", "/echo"), "headers": [(b"content-length", b"2000")]}
    await asyncio.wait_for(app(scope, upload.receive, send), BOUND)
    assert body_of(sent) == b"100\n" * 20


async def test_the_shared_receive_gives_the_body_in_order_then_the_disconnect() -> None:
    upload = Upload([b"a", b"b", b"c"])
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(3):
            seen.append(await receive())
        upload.leave()
        seen.append(await receive())
        seen.append(await receive())  # and again: it stays disconnected

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    await asyncio.wait_for(KeepRequestBody(app)(http_scope("POST"), upload.receive, send), BOUND)
    assert [m.get("body") for m in seen[:3]] == [b"a", b"b", b"c"]
    assert [m["type"] for m in seen[3:]] == ["http.disconnect"] * 2


class SlowStart:
    """A server's ``send`` whose ``http.response.start`` takes a while (a busy
    server), recording every message."""

    def __init__(self, delay: float = 0.1) -> None:
        self.delay = delay
        self.messages: list[Message] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(self.delay)
        self.messages.append(message)


@pytest.mark.parametrize("first_chunk_wait", [0, 0.01, 0.2])
async def test_a_timeout_spanning_the_first_yield_reaches_the_generator(
    first_chunk_wait: float,
) -> None:
    async def events() -> AsyncIterator[str]:
        try:
            async with asyncio.timeout(0.02):  # fires while the headers are going out
                yield "first"
                await asyncio.sleep(60)
        except TimeoutError:
            yield "timed out"

    server = SlowStart()
    response = StreamingResponse(events(), first_chunk_wait=first_chunk_wait)
    await asyncio.wait_for(response(http_scope(), never_disconnects, server.send), BOUND)
    assert server.messages[0]["status"] == 200
    assert body_of(server.messages).endswith(b"timed out")
    assert server.messages[-1]["more_body"] is False


async def test_a_client_that_leaves_during_an_error_answer_ends_it_quietly() -> None:
    left = asyncio.Event()

    async def receive() -> Message:
        await left.wait()
        return {"type": "http.disconnect"}

    class LeavesDuringTheAnswer(SlowStart):
        async def send(self, message: Message) -> None:
            left.set()  # the client goes while the answer's headers are sent
            await super().send(message)

    server = LeavesDuringTheAnswer()
    response = StreamingResponse(raising(HTTPException(403)))
    await asyncio.wait_for(response(http_scope(), receive, server.send), BOUND)  # no error


async def test_an_item_that_cannot_be_encoded_first_is_a_json_500() -> None:
    async def items() -> AsyncIterator[object]:
        yield object()

    messages = await request(EventSourceResponse(items()), http_scope())
    assert messages[0]["status"] == 500
    assert json.loads(body_of(messages)) == {"detail": "Internal Server Error"}
