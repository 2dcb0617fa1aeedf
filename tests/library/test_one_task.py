"""One task steps a generator, from its first step to its last, in every mode.

The generators of :mod:`tests.one_task_app` set a contextvar, burst 40 chunks
(so the default response starts joining), then await past a timeout that
spans their ``yield``\\ s: ``asyncio.timeout``, ``anyio.fail_after``, an anyio
``CancelScope`` with a deadline, or no timeout at all. Each must catch its own
timeout, reset its contextvar, and report that one task stepped it; the client
must receive the ``error`` event, the ``done`` event and a clean end of body.

Also here: fairness for empty chunks, the content closed at every ending, the
``send_timeout`` semantics, and a ``receive()`` that raises.
"""

from __future__ import annotations

import asyncio
import io
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import EventSourceResponse, StreamingResponse
from asgi_stream.testing import parse_event_stream
from tests import one_task_app
from tests.asgi import Endless, body_of, http_scope, never_disconnects, request
from tests.serving import ServerProcess, serve

CASES = [(kind, guard) for kind in one_task_app.KINDS for guard in one_task_app.GUARDS]
IDS = [f"{kind}-{guard}" for kind, guard in CASES]

EXPECTED_ENDING = [("error", "timed out"), ("done", "1 task")]


def ending_of(body: bytes) -> list[tuple[str, str]]:
    """The events after the burst, as (type, data), from the body's text."""
    events = parse_event_stream(body.decode()).events
    return [(event.type, event.data) for event in events[one_task_app.BURST :]]


@pytest.mark.parametrize(("kind", "guard"), CASES, ids=IDS)
def test_in_process_the_generators_timeout_and_contextvar_stay_its_own(
    kind: str, guard: str
) -> None:
    messages = asyncio.run(request(one_task_app.response(kind, guard), http_scope(), timeout=10))
    assert messages[-1]["more_body"] is False
    body = body_of(messages)
    if (b"content-encoding", b"gzip") in messages[0]["headers"]:
        body = zlib.decompress(body, 31)
    assert ending_of(body) == EXPECTED_ENDING


def test_in_process_a_resumable_streams_own_timeout_ends_it_cleanly() -> None:
    """The resumable response's generator waits for the next event under its own
    ``idle_timeout`` (an ``asyncio.timeout`` around each step, after a replay of 40
    events at once): it must fire in its task and end the stream cleanly."""
    response = asyncio.run(one_task_app.resumable())
    messages = asyncio.run(request(response, http_scope(), timeout=10))
    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    events = parse_event_stream(body_of(messages).decode()).events
    assert [event.data for event in events] == [str(i) for i in range(one_task_app.BURST)]


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn"])
def one_task_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    app = "tests.one_task_app:app"
    argv = {
        "uvicorn": ["-m", "uvicorn", app, "--host", "127.0.0.1"],
        "hypercorn": ["-m", "hypercorn", app, "--bind", "127.0.0.1:{port}"],
    }[request.param]
    with serve(argv, tmp_path_factory.mktemp(request.param)) as server:
        yield server
        assert "Traceback" not in server.output()


@pytest.mark.server
def test_on_real_servers_every_mode_keeps_the_rule(one_task_server: ServerProcess) -> None:
    async def one(client: httpx.AsyncClient, kind: str, guard: str) -> list[tuple[str, str]]:
        # httpx raises on a body that ends without its last chunk: only a clean end passes.
        reply = await client.get(f"{one_task_server.url}/burst/{kind}/{guard}")
        assert reply.status_code == 200
        return ending_of(reply.content)

    async def main() -> list[list[tuple[str, str]]]:
        async with httpx.AsyncClient(timeout=20) as client:
            return await asyncio.gather(*(one(client, kind, guard) for kind, guard in CASES))

    endings = asyncio.run(main())
    assert dict(zip(IDS, endings, strict=True)) == dict.fromkeys(IDS, EXPECTED_ENDING)


@pytest.mark.server
def test_on_real_servers_a_resumable_stream_ends_cleanly_at_its_idle_timeout(
    one_task_server: ServerProcess,
) -> None:
    reply = httpx.get(f"{one_task_server.url}/resumable", timeout=20)  # raises if cut
    events = parse_event_stream(reply.text).events
    assert [event.data for event in events] == [str(i) for i in range(one_task_app.BURST)]


# -- a cancellation that lands outside the generator ----------------------------------------


@pytest.mark.parametrize("coalesce", [None, True, False])
def test_a_timeout_that_fires_while_we_take_a_turn_reaches_the_generator(
    coalesce: bool | None,
) -> None:
    """A generator that never awaits lets the loop run only in the response's own
    awaits (its fairness turns, its writer's joins); its timeout fires there, and
    must still be raised inside the generator, at its yield."""

    async def compute_too_long() -> AsyncIterator[bytes]:
        try:
            async with asyncio.timeout(0.05):
                while True:
                    yield b"x"
        except TimeoutError:
            yield b"|timed out"

    response = StreamingResponse(compute_too_long(), coalesce=coalesce)
    body = body_of(asyncio.run(request(response, http_scope(), timeout=10)))
    assert body.endswith(b"x|timed out")


# -- fairness: every chunk counts, empty ones too ------------------------------------------


@pytest.mark.parametrize("empty", [b"", ""])
@pytest.mark.parametrize("coalesce", [None, True, False])
def test_empty_chunks_from_a_generator_that_never_awaits_let_the_loop_run(
    coalesce: bool | None, empty: bytes | str
) -> None:
    async def spin() -> AsyncIterator[bytes | str]:
        while True:
            yield empty

    async def main() -> None:
        comm = ApplicationCommunicator(StreamingResponse(spin(), coalesce=coalesce), http_scope())
        await comm.send_input({"type": "http.request", "body": b""})
        assert (await comm.receive_output(5))["type"] == "http.response.start"
        # The loop is not held: another coroutine's sleep ends (bounded by the test's timeout).
        await asyncio.sleep(0.01)
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(5)
        assert comm.future.done() and comm.future.exception() is None

    asyncio.run(main())


@pytest.mark.server
def test_on_real_servers_empty_chunks_do_not_hold_other_connections(
    one_task_server: ServerProcess,
) -> None:
    """Three endless streams of empty chunks that never await, one per coalesce mode;
    another connection is still answered (its time is measured by the benchmarks)."""

    async def main() -> dict[str, str]:
        async with httpx.AsyncClient(timeout=20) as client:
            spinning = []
            for mode in ("default", "joined", "direct"):
                stream = client.stream("GET", f"{one_task_server.url}/spin-empty/{mode}")
                reply = await stream.__aenter__()
                assert reply.status_code == 200
                spinning.append(stream)
            try:
                hello = await client.get(f"{one_task_server.url}/hello")
                return dict(hello.json())
            finally:
                for stream in spinning:
                    await stream.__aexit__(None, None, None)

    assert asyncio.run(main()) == {"hello": "world"}


# -- every ending closes the content: the object given, not a wrapper ----------------------


def a_file(tmp_path: Path) -> io.BufferedReader:
    path = tmp_path / "events.txt"
    path.write_bytes(b"data: one\n\n" * 10)
    return path.open("rb")


@pytest.mark.parametrize("ping", [None, 5.0])
def test_head_closes_a_sync_file(tmp_path: Path, ping: float | None) -> None:
    content = a_file(tmp_path)
    messages = asyncio.run(request(EventSourceResponse(content, ping=ping), http_scope("HEAD")))
    assert body_of(messages) == b""
    assert content.closed


@pytest.mark.parametrize("ping", [None, 5.0])
def test_a_disconnect_while_the_headers_are_sent_closes_a_sync_file(
    tmp_path: Path, ping: float | None
) -> None:
    content = a_file(tmp_path)

    async def main() -> None:
        disconnected = asyncio.Event()
        start_sent = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await start_sent.wait()
            disconnected.set()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            start_sent.set()
            await asyncio.sleep(60)  # the headers never leave: the client goes meanwhile

        response = EventSourceResponse(content, ping=ping, send_timeout=0.5)
        await asyncio.wait_for(response(http_scope(), receive, send), 5)
        assert disconnected.is_set()

    asyncio.run(main())
    assert content.closed


def test_a_client_gone_before_the_first_step_closes_a_sync_file(tmp_path: Path) -> None:
    content = a_file(tmp_path)

    async def main() -> None:
        comm = ApplicationCommunicator(StreamingResponse(content), http_scope())
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(5)
        assert comm.future.exception() is None

    asyncio.run(main())
    assert content.closed


# -- send_timeout times body sends, and the generator's finally always runs -----------------


def test_send_timeout_does_not_time_the_headers() -> None:
    """The headers wait for a slow server as long as it takes (here 0.2 s against a
    0.05 s send_timeout); the body is then sent whole."""

    async def generate() -> AsyncIterator[bytes]:
        yield b"all of it"

    async def main() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(0.2)
            sent.append(message)

        response = StreamingResponse(generate(), send_timeout=0.05)
        await asyncio.wait_for(response(http_scope(), never_disconnects, send), 5)
        return sent

    sent = asyncio.run(main())
    assert body_of(sent) == b"all of it"
    assert sent[-1]["more_body"] is False


@pytest.mark.parametrize("coalesce", [None, True, False])
def test_a_body_send_past_send_timeout_ends_the_stream_and_runs_finally(
    coalesce: bool | None,
) -> None:
    ran_finally = []

    async def generate() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1000
                await asyncio.sleep(0)
        finally:
            ran_finally.append(True)

    async def main() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if len(sent) > 3:
                await asyncio.sleep(60)  # the client stopped reading

        response = StreamingResponse(generate(), send_timeout=0.05, coalesce=coalesce)
        await asyncio.wait_for(response(http_scope(), never_disconnects, send), 5)
        return sent

    sent = asyncio.run(main())
    assert ran_finally == [True]
    assert all(message.get("more_body", True) for message in sent)  # no clean end


# -- receive() that raises ------------------------------------------------------------------


def test_an_error_from_receive_reaches_the_caller_as_itself() -> None:
    stream = Endless()

    class ReceiveFailed(Exception):
        pass

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            await asyncio.sleep(0.05)
            raise ReceiveFailed("the server's receive broke")

        async def send(message: dict[str, Any]) -> None:
            pass

        response = StreamingResponse(stream.generate())
        with pytest.raises(ReceiveFailed, match="broke"):
            await asyncio.wait_for(response(http_scope(), receive, send), 5)

    asyncio.run(main())
    assert stream.finally_ran
