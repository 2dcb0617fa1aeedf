"""StreamingResponse, Response and JSONResponse: the exact ASGI messages they send."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import warnings
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import (
    BackgroundTask,
    BackgroundTasks,
    ConnectionHeaderWarning,
    JSONResponse,
    Response,
    StreamingResponse,
)
from tests.asgi import body_of, headers_of, http_scope, request
from tests.waiting import BOUND, until

START = "http.response.start"
BODY = "http.response.body"
END = {"type": BODY, "body": b"", "more_body": False}


def chunk(body: bytes) -> dict[str, Any]:
    return {"type": BODY, "body": body, "more_body": True}


class Probe:
    """Records what a generator did, across threads."""

    def __init__(self) -> None:
        self.started = False
        self.finally_ran = threading.Event()  # set by the generator's finally, on any thread
        self.background_ran = False
        self.thread_names: list[str] = []

    def cleanup(self) -> None:
        self.background_ran = True

    async def stalled(self, first: bytes = b"x"):
        """Yields ``first``, then waits in an await for ever; records that its finally ran."""
        try:
            yield first
            await asyncio.sleep(30)
        finally:
            self.finally_ran.set()


class Ticker:
    """Another task on the loop, counting its turns: a blocked loop counts none."""

    def __init__(self, interval: float) -> None:
        self.ticks = 0
        self._task = asyncio.create_task(self._tick(interval))

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.ticks += 1

    def stop(self) -> int:
        self._task.cancel()
        return self.ticks

    def wait_in_a_thread(self, turns: int) -> bool:
        """From another thread: block until this ticker has ticked ``turns`` more
        times (bounded); whether it did. The loop's own thread would wait in vain."""
        target = self.ticks + turns
        deadline = time.monotonic() + BOUND
        while self.ticks < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True


async def client_that_stays() -> dict[str, Any]:
    """A ``receive()`` whose client does not leave within the test."""
    await asyncio.sleep(30)
    return {"type": "http.disconnect"}


async def disconnect_and_wait(comm: ApplicationCommunicator, probe: Probe) -> None:
    """Send http.disconnect and wait (bounded) for the app to return.

    "At once" is an order, not a number of milliseconds: the generator's
    finally has run by the time the app returns. A generator left to the
    garbage collector fails the assertion; one left running (they all wait
    for far longer than the bound) fails the wait.
    """
    assert not probe.finally_ran.is_set(), "the generator ended before the client left"
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(BOUND)
    assert probe.finally_ran.is_set(), "the app returned before the generator's finally ran"


async def started(response: StreamingResponse) -> ApplicationCommunicator:
    """A GET for ``response``, its (empty) request body already sent."""
    comm = ApplicationCommunicator(response, http_scope())
    await comm.send_input({"type": "http.request", "body": b""})
    return comm


def drain(comm: ApplicationCommunicator) -> list[dict[str, Any]]:
    """Every message the app has sent and the test has not read yet."""
    messages = []
    while not comm.output_queue.empty():
        messages.append(comm.output_queue.get_nowait())
    return messages


# -- the normal path ---------------------------------------------------------------------------


def test_stream_sends_start_one_body_message_per_chunk_and_the_end() -> None:
    async def generate():
        yield "data: 0\n\n"
        yield b"raw bytes"
        yield ""  # empty chunks are not sent
        yield b""
        yield memoryview(b"view")
        yield "日本"  # str is encoded in the charset

    response = StreamingResponse(generate(), media_type="text/event-stream")
    messages = asyncio.run(request(response, http_scope()))

    assert messages == [
        {
            "type": START,
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
        },
        chunk(b"data: 0\n\n"),
        chunk(b"raw bytes"),
        chunk(b"view"),
        chunk("日本".encode()),
        END,
    ]


def test_headers_are_lowercased_and_no_content_length_is_added() -> None:
    response = StreamingResponse(
        iter([b"x"]),
        status_code=201,
        headers={"X-Custom-Header": "value", "Cache-Control": "no-cache"},
        media_type="text/plain; charset=latin-1",
    )
    messages = asyncio.run(request(response, http_scope()))
    assert messages[0]["status"] == 201
    assert messages[0]["headers"] == [
        (b"x-custom-header", b"value"),
        (b"cache-control", b"no-cache"),
        (b"content-type", b"text/plain; charset=latin-1"),
    ]


def test_a_chunk_of_another_type_is_an_error_not_silence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def generate():
        yield 42

    # The first chunk: the headers still wait for it, so the error is a JSON 500.
    messages = asyncio.run(request(StreamingResponse(generate()), http_scope()))
    assert messages[0]["status"] == 500
    assert any(
        "str, bytes or memoryview" in str(r.exc_info[1]) for r in caplog.records if r.exc_info
    )

    async def later():
        yield b"fine"
        yield 42

    async def main() -> None:  # a later chunk: the stream is cut, and the error raised
        comm = await started(StreamingResponse(later()))
        assert (await comm.receive_output(BOUND))["type"] == START
        with pytest.raises(TypeError, match="str, bytes or memoryview"):
            await comm.wait(BOUND)

    asyncio.run(main())


@pytest.mark.parametrize("bad", ["a\r\nb", "a\nb", "a\rb", "a\0b"])
def test_header_values_with_cr_lf_or_nul_are_refused_when_built(bad: str) -> None:
    with pytest.raises(ValueError, match="CR, LF and NUL"):
        StreamingResponse(iter([]), headers={"x-evil": bad})


@pytest.mark.parametrize("bad", ["x-evil\r\nset-cookie", "x evil", "x:evil", "", "é"])
def test_header_names_must_be_tokens(bad: str) -> None:
    with pytest.raises(ValueError):
        StreamingResponse(iter([]), headers={bad: "v"})


@pytest.mark.parametrize(
    "name", ["Connection", "keep-alive", "Transfer-Encoding", "upgrade", "Proxy-Connection", "TE"]
)
def test_connection_specific_headers_are_dropped_with_a_warning(name: str) -> None:
    with pytest.warns(ConnectionHeaderWarning, match="connection-specific"):
        response = StreamingResponse(iter([]), headers={name: "x", "x-kept": "1"})
    assert response.raw_headers == [(b"x-kept", b"1")]


def test_sync_generator_runs_in_a_worker_thread_and_never_blocks_the_loop() -> None:
    """Each step blocks its thread until a task on the loop has taken a few more
    turns: a step run on the loop's own thread would wait for them in vain."""
    probe = Probe()
    tickers: list[Ticker] = []
    loop_ran: list[bool] = []

    def generate():
        for i in range(3):
            probe.thread_names.append(threading.current_thread().name)
            loop_ran.append(tickers[0].wait_in_a_thread(3))  # blocking work
            yield f"{i}\n"

    async def main() -> None:
        tickers.append(Ticker(0.01))
        messages = await request(StreamingResponse(generate()), http_scope())
        tickers[0].stop()
        assert body_of(messages) == b"0\n1\n2\n"

    asyncio.run(main())
    main_thread = threading.current_thread().name
    assert probe.thread_names and main_thread not in probe.thread_names
    assert loop_ran == [True] * 3, "the loop stood still while the generator blocked"


# -- disconnect --------------------------------------------------------------------------------


def test_disconnect_stops_an_async_generator_suspended_in_an_await() -> None:
    probe = Probe()
    suspended = asyncio.Event()

    async def generate():
        try:
            yield b"first"
            suspended.set()
            await asyncio.sleep(30)
            yield b"never"
        finally:
            probe.finally_ran.set()

    async def main() -> None:
        response = StreamingResponse(generate(), background=BackgroundTask(probe.cleanup))
        comm = await started(response)
        assert (await comm.receive_output(BOUND))["type"] == START
        assert await comm.receive_output(BOUND) == chunk(b"first")
        await asyncio.wait_for(suspended.wait(), BOUND)  # now suspended in the sleep
        await disconnect_and_wait(comm, probe)
        assert not comm.future.cancelled() and comm.future.exception() is None
        assert drain(comm) == []  # no final more_body=False after a disconnect
        assert probe.background_ran

    asyncio.run(main())


def test_disconnect_stops_an_async_generator_suspended_at_a_yield() -> None:
    """The server's send() is blocked (a stuck client), so the generator waits at its yield."""
    probe = Probe()

    async def generate():
        try:
            while True:
                yield b"x" * 1024
        finally:
            probe.finally_ran.set()

    async def main() -> None:
        stuck, never = asyncio.Event(), asyncio.Event()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return await inbox.get()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == BODY:
                stuck.set()
                await never.wait()  # the client stopped reading

        app = asyncio.create_task(StreamingResponse(generate())(http_scope(), receive, send))
        await asyncio.wait_for(stuck.wait(), BOUND)
        assert [m["type"] for m in sent] == [START, BODY]
        assert not probe.finally_ran.is_set()
        await inbox.put({"type": "http.disconnect"})
        await asyncio.wait_for(app, BOUND)
        assert probe.finally_ran.is_set(), "the app returned before the generator's finally ran"
        assert [m["type"] for m in sent] == [START, BODY]

    asyncio.run(main())


def test_disconnect_closes_a_sync_generator_once_its_next_returns() -> None:
    probe = Probe()

    def generate():
        try:
            while True:
                time.sleep(0.02)
                yield b"tick\n"
        finally:
            probe.finally_ran.set()

    async def main() -> None:
        response = StreamingResponse(generate(), background=BackgroundTask(probe.cleanup))
        comm = await started(response)
        assert (await comm.receive_output(BOUND))["type"] == START
        assert await comm.receive_output(BOUND) == chunk(b"tick\n")
        await disconnect_and_wait(comm, probe)
        assert comm.future.exception() is None
        assert probe.background_ran

    asyncio.run(main())


@pytest.mark.timeout(20)  # without the fairness yield this test hangs: fail it then
@pytest.mark.parametrize("coalesce", [None, False, True])
def test_a_generator_that_never_awaits_neither_starves_the_loop_nor_escapes_disconnect(
    coalesce: bool | None,
) -> None:
    probe = Probe()

    async def generate():
        try:
            while True:
                yield b"data: spin\n\n"  # never awaits
        finally:
            probe.finally_ran.set()

    async def main() -> None:
        ticker = Ticker(0)
        comm = await started(StreamingResponse(generate(), coalesce=coalesce))
        await comm.receive_output(BOUND)
        # A loop the generator held would never get here (nor end the wait).
        await until(lambda: ticker.ticks > 10)
        await disconnect_and_wait(comm, probe)
        assert comm.future.done() and not comm.future.cancelled()
        ticker.stop()

    asyncio.run(main())


def test_unread_request_body_messages_are_skipped_while_watching_for_disconnect() -> None:
    probe = Probe()

    async def main() -> None:
        comm = ApplicationCommunicator(StreamingResponse(probe.stalled(b"a")), http_scope("POST"))
        await comm.send_input({"type": "http.request", "body": b"part", "more_body": True})
        await comm.send_input({"type": "http.request", "body": b"rest", "more_body": False})
        await comm.receive_output(BOUND)
        await comm.receive_output(BOUND)
        await disconnect_and_wait(comm, probe)

    asyncio.run(main())


@pytest.mark.timeout(20)
def test_a_generator_that_swallows_cancellation_is_still_stopped() -> None:
    probe = Probe()

    async def generate():
        try:
            while True:
                try:
                    await asyncio.sleep(0.005)
                except asyncio.CancelledError:
                    pass  # badly behaved: carries on
                yield b"x"
        finally:
            probe.finally_ran.set()

    async def main() -> None:
        comm = await started(StreamingResponse(generate()))
        await comm.receive_output(BOUND)
        await disconnect_and_wait(comm, probe)
        assert comm.future.exception() is None

    asyncio.run(main())


def test_an_oserror_from_send_is_a_disconnect() -> None:
    """ASGI 2.4: send() on a closed connection raises an OSError subclass."""
    probe = Probe()

    async def generate():
        try:
            while True:
                yield b"x"
                await asyncio.sleep(0.001)
        finally:
            probe.finally_ran.set()

    async def main() -> None:
        sends = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal sends
            sends += 1
            if sends == 3:
                raise ConnectionResetError("client went away")

        response = StreamingResponse(generate(), background=BackgroundTask(probe.cleanup))
        await asyncio.wait_for(
            response(http_scope(), client_that_stays, send), BOUND
        )  # returns, no raise

    asyncio.run(main())
    assert probe.finally_ran.is_set() and probe.background_ran


def test_an_oserror_from_the_generator_is_an_error() -> None:
    async def generate():
        yield b"x"
        raise FileNotFoundError("the generator's own failure")

    async def main() -> None:
        comm = await started(StreamingResponse(generate()))
        with pytest.raises(FileNotFoundError):
            await comm.wait(BOUND)

    asyncio.run(main())


def test_a_cancellation_from_the_server_is_not_swallowed() -> None:
    probe = Probe()

    async def main() -> None:
        streaming = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == BODY:
                streaming.set()

        task = asyncio.create_task(
            StreamingResponse(probe.stalled())(http_scope(), client_that_stays, send)
        )
        await asyncio.wait_for(streaming.wait(), BOUND)  # the generator has started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND)
        assert probe.finally_ran.is_set(), "the task ended before the generator's finally ran"

    asyncio.run(main())


def test_a_server_cancellation_during_a_disconnect_is_not_swallowed() -> None:
    suspended = asyncio.Event()

    async def generate():
        yield b"x"
        suspended.set()
        await asyncio.sleep(30)

    async def main() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def send(message: dict[str, Any]) -> None:
            pass

        task = asyncio.create_task(StreamingResponse(generate())(http_scope(), inbox.get, send))
        await asyncio.wait_for(suspended.wait(), BOUND)
        inbox.put_nowait({"type": "http.disconnect"})  # the client leaves ...
        task.cancel()  # ... and the server shuts down, in the same loop iteration
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND)

    asyncio.run(main())


def test_no_task_is_left_behind_after_a_complete_stream() -> None:
    async def generate():
        yield b"a"

    async def main() -> None:
        before = asyncio.all_tasks()
        await request(StreamingResponse(generate()), http_scope())
        await asyncio.sleep(0)  # let the cancelled watcher finish
        assert asyncio.all_tasks() == before

    asyncio.run(main())


# -- errors ------------------------------------------------------------------------------------


def test_an_error_after_the_headers_ends_without_the_final_message_and_is_raised() -> None:
    probe = Probe()

    async def generate():
        yield b"data: 0\n\n"
        raise RuntimeError("boom")

    async def main() -> None:
        response = StreamingResponse(generate(), background=BackgroundTask(probe.cleanup))
        comm = await started(response)
        with pytest.raises(RuntimeError, match="boom"):
            await comm.wait(BOUND)
        assert drain(comm) == [
            {"type": START, "status": 200, "headers": []},
            chunk(b"data: 0\n\n"),
        ]

    asyncio.run(main())
    assert probe.background_ran, "the background task runs after an error too"


# -- HEAD --------------------------------------------------------------------------------------


def test_head_sends_headers_only_and_never_starts_the_generator() -> None:
    probe = Probe()

    async def endless():
        probe.started = True
        while True:
            yield b"x"
            await asyncio.sleep(0)

    generator = endless()
    response = StreamingResponse(
        generator, media_type="text/event-stream", background=BackgroundTask(probe.cleanup)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "never awaited" or similar
        messages = asyncio.run(request(response, http_scope("HEAD"), timeout=BOUND))
    assert messages == [
        {
            "type": START,
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
        },
        END,
    ]
    assert not probe.started
    assert generator.ag_frame is None, "the generator was closed"
    assert probe.background_ran


def test_head_closes_a_sync_iterable_such_as_a_file(tmp_path: Any) -> None:
    path = tmp_path / "data.txt"
    path.write_text("line\n")
    handle = path.open()
    asyncio.run(request(StreamingResponse(handle), http_scope("HEAD")))
    assert handle.closed


def test_a_file_is_streamed_and_closed(tmp_path: Any) -> None:
    path = tmp_path / "data.txt"
    path.write_text("one\ntwo\n")
    handle = path.open()
    messages = asyncio.run(request(StreamingResponse(handle), http_scope()))
    assert body_of(messages) == b"one\ntwo\n"
    assert handle.closed


# -- background tasks --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_background_task_runs_after_the_final_message(kind: str) -> None:
    order: list[str] = []

    async def generate():
        yield b"x"

    def sync_cleanup(label: str) -> None:
        order.append(label)

    async def async_cleanup(label: str) -> None:
        order.append(label)

    cleanup = sync_cleanup if kind == "sync" else async_cleanup

    async def main() -> None:
        async def send(message: dict[str, Any]) -> None:
            order.append("end" if message == END else message["type"])

        response = StreamingResponse(generate(), background=BackgroundTask(cleanup, label="bg"))
        await response(http_scope(), client_that_stays, send)

    asyncio.run(main())
    assert order == [START, BODY, "end", "bg"]


# -- complete bodies ---------------------------------------------------------------------------


def test_json_response_has_a_content_length_and_compact_utf8() -> None:
    messages = asyncio.run(request(JSONResponse({"data": [0, 1], "text": "模拟"}), http_scope()))
    body = '{"data":[0,1],"text":"模拟"}'.encode()
    assert messages == [
        {
            "type": START,
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        },
        {"type": BODY, "body": body, "more_body": False},
    ]


def test_head_on_a_complete_response_keeps_the_length_but_sends_no_body() -> None:
    messages = asyncio.run(request(Response("hello", media_type="text/plain"), http_scope("HEAD")))
    assert headers_of(messages)[b"content-length"] == b"5"
    assert headers_of(messages)[b"content-type"] == b"text/plain; charset=utf-8"
    assert body_of(messages) == b""


def test_no_content_length_on_204() -> None:
    messages = asyncio.run(request(Response(status_code=204), http_scope()))
    assert messages[0]["headers"] == []


def test_response_background_runs_even_when_the_send_is_cancelled() -> None:
    probe = Probe()

    async def main() -> None:
        sending = asyncio.Event()

        async def stuck_send(message: dict[str, Any]) -> None:
            sending.set()
            await asyncio.sleep(30)

        response = Response(b"x", background=BackgroundTask(probe.cleanup))
        task = asyncio.create_task(response(http_scope(), client_that_stays, stuck_send))
        await asyncio.wait_for(sending.wait(), BOUND)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert probe.background_ran


def test_head_treats_an_oserror_from_send_as_a_disconnect() -> None:
    probe = Probe()

    async def closed_connection(message: dict[str, Any]) -> None:
        raise BrokenPipeError

    response = StreamingResponse(iter([b"x"]), background=BackgroundTask(probe.cleanup))
    asyncio.run(response(http_scope("HEAD"), client_that_stays, closed_connection))
    assert probe.background_ran


def test_the_connection_header_warning_points_at_the_callers_line() -> None:
    with pytest.warns(ConnectionHeaderWarning) as record:
        StreamingResponse(iter([]), headers={"Connection": "close"})
    assert record[0].filename == __file__


def test_a_sync_generator_is_closed_even_when_the_stream_is_cancelled_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A disconnect, then a shutdown's grace period running out, while next() is in flight."""
    probe = Probe()
    in_next, release = threading.Event(), threading.Event()

    def generate():
        try:
            yield b"first"
            in_next.set()
            release.wait(BOUND)  # stuck in next() when the cancellations come
            yield b"second"
        finally:
            probe.finally_ran.set()

    async def main() -> None:
        async def send(message: dict[str, Any]) -> None:
            pass

        task = asyncio.create_task(
            StreamingResponse(generate())(http_scope(), client_that_stays, send)
        )
        await until(in_next.is_set)
        task.cancel()
        for _ in range(10):  # turns of the loop, no clock: the first cancellation spreads
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND)
        assert not probe.finally_ran.is_set()  # next() is still running: close() waits for it
        release.set()
        await until(probe.finally_ran.is_set)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert caplog.records == []


def test_background_tasks_run_in_the_order_they_were_added() -> None:
    order: list[str] = []

    async def later(label: str) -> None:
        order.append(label)

    tasks = BackgroundTasks()
    tasks.add_task(order.append, "sync")
    tasks.add_task(later, "async")
    asyncio.run(request(Response(b"", background=tasks), http_scope()))
    assert order == ["sync", "async"]


def test_a_client_gone_before_the_stream_begins_ends_it_quietly_and_closes_the_generator() -> None:
    async def generate():
        yield b"never sent"

    async def main() -> None:
        content = generate()
        comm = ApplicationCommunicator(StreamingResponse(content), http_scope())
        await comm.send_input({"type": "http.disconnect"})  # waiting before the app starts
        await comm.wait(BOUND)
        assert comm.future.done() and not comm.future.cancelled()
        assert comm.future.exception() is None
        assert content.ag_frame is None  # closed, not left to the garbage collector

    asyncio.run(main())
