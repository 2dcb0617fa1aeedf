"""The catalogue's exact ASGI messages, side by side with the tutorial's FastAPI code.

Every endpoint runs in-process through asgiref's ApplicationCommunicator at a
small tick. Where CATALOGUE.md says the tutorial is right, our messages must
equal those of ``examples/fastapi_catalogue.py`` (the tutorial's code under
FastAPI) message for message; where it says the tutorial is wrong, the test
pins down what we send instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import types
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from asgiref.testing import ApplicationCommunicator

import asgi_stream.catalogue.endpoints as catalogue
from asgi_stream.catalogue import Catalogue, Settings, create_app
from asgi_stream.catalogue.chat import ChatChunk, LocalChatModel
from asgi_stream.request import Request
from asgi_stream.testing import lifespan, stream
from tests.asgi import body_of, headers_of, http_scope, request
from tests.waiting import BOUND, until

TICK = 0.001
START = "http.response.start"
BODY = "http.response.body"
SSE = [(b"content-type", b"text/event-stream; charset=utf-8")]


@pytest.fixture(scope="module")
def tutorial() -> Iterator[types.ModuleType]:
    """The tutorial's FastAPI app, at our tick, with an instant local chat model."""
    import examples.fastapi_catalogue as module

    saved = module.TICK, module.llm
    module.TICK, module.llm = TICK, LocalChatModel(delay=0)
    yield module
    module.TICK, module.llm = saved


def ours(**settings: Any) -> Any:
    return create_app(Settings(**{"tick": TICK, "chat_model": LocalChatModel(delay=0), **settings}))


def run(
    app: Any,
    path: str,
    query: bytes = b"",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> list[dict[str, Any]]:
    scope = http_scope(method, path, query, [(b"host", b"testserver"), *(headers or [])])
    return asyncio.run(request(app, scope, body))


def same(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with ``more_body`` spelt out (Starlette omits it when False)."""
    return [
        {**m, "more_body": m.get("more_body", False)} if m["type"] == BODY else m for m in messages
    ]


def sse_messages(headers: list[tuple[bytes, bytes]], *events: bytes) -> list[dict[str, Any]]:
    """A stream's messages: the start, one body message per event, the end."""
    return [
        {"type": START, "status": 200, "headers": headers},
        *({"type": BODY, "body": event, "more_body": True} for event in events),
        {"type": BODY, "body": b"", "more_body": False},
    ]


def data(*values: object) -> list[bytes]:
    return [f"data: {value}\n\n".encode() for value in values]


# Where the tutorial is right: the same messages as FastAPI running its code.

SAME_AS_TUTORIAL = [
    ("/stream", b""),
    ("/stream-full", b""),
    ("/normal", b""),
    ("/stream-background", b""),
    ("/conditional-stream", b""),
    ("/conditional-stream", b"stream=true"),
    ("/conditional-stream", b"stream=ON"),
    ("/conditional-stream", b"stream=0"),
    ("/conditional-stream", b"stream=maybe"),
    ("/stream-error", b""),
    ("/stream-robust", b""),
    ("/stream-buffered", b""),
    ("/progress", b""),
]


@pytest.mark.parametrize(("path", "query"), SAME_AS_TUTORIAL)
def test_same_messages_as_the_tutorials_fastapi_code(
    tutorial: types.ModuleType, path: str, query: bytes
) -> None:
    assert run(ours(), path, query) == same(run(tutorial.app, path, query))


async def step_at_once(i: int, tick: float) -> None:
    """A step of ``/stream-timeout`` that is always in time: it takes one turn of the loop.

    The real step sleeps half its timeout, and a loaded machine can wake the
    loop late enough for both timers to be due at once; then the timeout
    wins. An instant step cannot lose: it resumes before any timer's turn.
    """
    await asyncio.sleep(0)


def test_stream_timeout_same_as_the_tutorial(
    tutorial: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio.wait_for in the tutorial's code misfires when a loop turn takes
    # longer than half a tick, so it runs at a tick a busy loop can keep.
    monkeypatch.setattr(tutorial, "TICK", 0.05)
    monkeypatch.setattr(catalogue, "_timed_step", step_at_once)
    app = create_app(Settings(tick=0.05))
    assert run(app, "/stream-timeout") == same(run(tutorial.app, "/stream-timeout"))


def test_chat_stream_missing_message_is_fastapis_422(tutorial: types.ModuleType) -> None:
    ours_messages = run(ours(), "/chat-stream", method="POST")
    assert ours_messages == same(run(tutorial.app, "/chat-stream", method="POST"))
    assert ours_messages[0]["status"] == 422
    assert json.loads(body_of(ours_messages)) == {
        "detail": [
            {"type": "missing", "loc": ["query", "message"], "msg": "Field required", "input": None}
        ]
    }


# The same messages, written out.


def test_the_five_event_streams_on_the_wire() -> None:
    assert run(ours(), "/stream") == sse_messages(SSE, *data(0, 1, 2, 3, 4))
    assert run(ours(), "/stream-full") == sse_messages(
        [(b"cache-control", b"no-cache"), (b"x-custom-header", b"value"), *SSE],
        *data(0, 1, 2, 3, 4),
    )
    assert run(ours(), "/stream-background") == sse_messages(SSE, *data(0, 1, 2, 3, 4))


def test_background_cleanup_runs_after_the_body(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="asgi_stream.catalogue")
    for path in ("/stream-full", "/stream-background"):
        run(ours(), path)
        assert f"cleanup after {path}" in caplog.text


def test_normal_and_conditional_json() -> None:
    expected = [
        {
            "type": START,
            "status": 200,
            "headers": [(b"content-length", b"20"), (b"content-type", b"application/json")],
        },
        {"type": BODY, "body": b'{"data":[0,1,2,3,4]}', "more_body": False},
    ]
    assert run(ours(), "/normal") == expected
    assert run(ours(), "/conditional-stream", b"stream=no") == expected
    assert run(ours(), "/conditional-stream", b"stream=Yes") == sse_messages(
        SSE, *data(0, 1, 2, 3, 4)
    )
    refused = run(ours(), "/conditional-stream", b"stream=2")
    assert refused[0]["status"] == 422
    assert json.loads(body_of(refused))["detail"][0]["loc"] == ["query", "stream"]


def test_error_events_on_the_wire() -> None:
    assert run(ours(), "/stream-error") == sse_messages(
        SSE,
        *data(0, 1, 2, 3, 4),
        b'event: error\ndata: {"error": "\\u6a21\\u62df\\u9519\\u8bef", '
        b'"code": "GENERATION_ERROR"}\n\n',
    )
    assert run(ours(), "/stream-robust") == sse_messages(
        SSE,
        b'event: init\ndata: {"status": "started"}\n\n',
        *data(*(json.dumps({"id": i, "message": f"Message {i}"}) for i in range(5))),
        b'event: error\ndata: {"error": "\\u6570\\u636e\\u9a8c\\u8bc1\\u5931\\u8d25", '
        b'"code": "VALIDATION_ERROR", "recoverable": true}\n\n',
    )


def test_timeout_progress_and_batches_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalogue, "_timed_step", step_at_once)
    assert run(ours(), "/stream-timeout") == sse_messages(SSE, *data(*range(10)))
    progress = [
        {"current": i, "total": 100, "percentage": i / 100 * 100, "message": f"Processing {i}/100"}
        for i in range(101)
    ]
    assert run(ours(), "/progress") == sse_messages(
        SSE, *data(*map(json.dumps, progress)), b"event: done\ndata: Completed\n\n"
    )
    batches = [[f"Message {i}" for i in range(start, start + 10)] for start in range(0, 100, 10)]
    assert run(ours(), "/stream-buffered") == sse_messages(SSE, *data(*map(json.dumps, batches)))
    assert data(json.dumps(batches[0]))[0].startswith(b'data: ["Message 0", "Message 1", ')


def test_a_step_over_its_timeout_ends_the_stream_with_an_error_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def slow_third_step(i: int, tick: float) -> None:
        if i == 3:
            await asyncio.sleep(3600)  # only the timeout ends it
        await step_at_once(i, tick)

    monkeypatch.setattr(catalogue, "_timed_step", slow_third_step)
    assert run(create_app(Settings(tick=0.01)), "/stream-timeout") == sse_messages(
        SSE, *data(0, 1, 2), b"event: error\ndata: Timeout\n\n"
    )


@pytest.mark.parametrize("debug", [False, True])
def test_a_system_error_sends_a_traceback_only_in_debug(
    monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    def broken(i: int) -> None:
        if i == 2:
            raise KeyError("/secret/path")

    monkeypatch.setattr(catalogue, "_robust_step", broken)
    events = body_of(run(ours(debug=debug), "/stream-robust")).split(b"\n\n")
    assert events[-2].startswith(b"event: error\ndata: ")
    error = json.loads(events[-2].removeprefix(b"event: error\ndata: "))
    assert error["code"] == "SYSTEM_ERROR" and error["recoverable"] is False
    if debug:
        assert "/secret/path" in error["error"]
        assert "Traceback (most recent call last)" in error["traceback"]
    else:
        assert error == {
            "error": "Internal Server Error",
            "code": "SYSTEM_ERROR",
            "recoverable": False,
        }


# Where the tutorial is wrong (CATALOGUE.md, "Where the tutorial is wrong").


def test_stream_headers_without_the_connection_header(tutorial: types.ModuleType) -> None:
    theirs = same(run(tutorial.app, "/stream-headers"))
    theirs[0]["headers"] = [h for h in theirs[0]["headers"] if h[0] != b"connection"]
    assert run(ours(), "/stream-headers") == theirs
    assert headers_of(theirs) == {
        b"cache-control": b"no-cache",
        b"x-accel-buffering": b"no",
        b"access-control-allow-origin": b"*",
        b"content-type": b"text/event-stream; charset=utf-8",
    }


def test_heartbeat_stream_sends_the_same_events_and_no_heartbeat_while_busy(
    tutorial: types.ModuleType,
) -> None:
    theirs = same(run(tutorial.app, "/stream-heartbeat"))
    # The tutorial's heartbeat fires every 30 ticks even though events never stop.
    assert {"type": BODY, "body": b": heartbeat\n\n", "more_body": True} in theirs
    theirs = [m for m in theirs if m.get("body") != b": heartbeat\n\n"]
    # Ours speaks after 30 silent ticks only. At 1 ms a tick, a loop stalled for
    # 30 ms between two events (a loaded machine does that) would send one; at
    # 5 ms a tick, it takes a stall of 150 ms.
    ours_at_5ms = ours(tick=0.005)
    assert run(ours_at_5ms, "/stream-heartbeat") == theirs == sse_messages(SSE, *data(*range(100)))


def test_compressed_stream_is_one_gzip_member_flushed_per_event() -> None:
    event = b"data: " + b"x" * 1000 + b"\n\n"
    gzip_messages = run(ours(), "/stream-compressed", headers=[(b"accept-encoding", b"gzip, br")])
    assert gzip_messages[0]["headers"] == [
        *SSE,
        (b"vary", b"Accept-Encoding"),
        (b"content-encoding", b"gzip"),
    ]
    bodies = [m["body"] for m in gzip_messages[1:]]
    assert len(bodies) == 11  # ten events, then the gzip trailer in the final message
    assert gzip_messages[-1]["more_body"] is False
    decoder = zlib.decompressobj(31)
    assert [decoder.decompress(body) for body in bodies[:10]] == [event] * 10
    assert decoder.decompress(bodies[10]) == b"" and decoder.eof
    assert all(len(body) < 100 for body in bodies[1:10])  # one window: repeats are cheap

    plain = [(b"vary", b"Accept-Encoding")]
    for accept in ([], [(b"accept-encoding", b"gzip;q=0, identity")]):
        assert run(ours(), "/stream-compressed", headers=accept) == sse_messages(
            [*SSE, *plain], *[event] * 10
        )


class Scripted:
    """A chat model that streams the given chunks, then fails if ``error`` is set."""

    def __init__(self, chunks: list[str], error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error

    async def astream(self, input: Any) -> AsyncIterator[ChatChunk]:
        for chunk in self.chunks:
            yield ChatChunk(chunk)
        if self.error is not None:
            raise self.error


def test_chat_tokens_with_newlines_arrive_intact_and_cannot_forge_events() -> None:
    model = Scripted(["Hello", "", " world\n", "\n\nevent: forged\ndata: x", "!"])
    messages = run(ours(chat_model=model), "/chat-stream", b"message=hi", "POST")
    assert messages == sse_messages(
        SSE,
        b"data: Hello\n\n",
        b"data:  world\ndata: \n\n",
        b"data: \ndata: \ndata: event: forged\ndata: data: x\n\n",
        b"data: !\n\n",
    )


def test_a_model_error_becomes_an_error_event_without_its_details() -> None:
    model = Scripted(["partial"], RuntimeError("Incorrect API key provided: sk-proj-AbCd"))
    messages = run(ours(chat_model=model), "/chat-stream", b"message=hi", "POST")
    assert messages == sse_messages(
        SSE, b"data: partial\n\n", b"event: error\ndata: The chat model failed\n\n"
    )


def test_in_debug_mode_a_model_error_shows_its_message() -> None:
    model = Scripted(["partial"], RuntimeError("rate limited\nretry later"))
    messages = run(ours(chat_model=model, debug=True), "/chat-stream", b"message=hi", "POST")
    assert messages == sse_messages(
        SSE, b"data: partial\n\n", b"event: error\ndata: rate limited\ndata: retry later\n\n"
    )


def test_the_local_model_streams_its_reply_token_by_token() -> None:
    messages = run(ours(), "/chat-stream", b"message=Bonjour+%C3%A0+tous", "POST")
    events = [m["body"] for m in messages[1:-1]]
    assert events[:3] == [b"data: You \n\n", b"data: said: \n\n", b"data: Bonjour \n\n"]
    assert b"data: tous\ndata: \ndata: \n\n" in events  # a token that ends in two newlines
    text = "".join(
        "\n".join(line.removeprefix("data: ") for line in event.decode()[:-2].split("\n"))
        for event in events
    )
    assert text == LocalChatModel().reply("Bonjour à tous")


def test_a_chat_model_can_be_named_by_import_string() -> None:
    app = ours(chat_model="tests.catalogue.test_catalogue_asgi:NAMED_MODEL")
    messages = run(app, "/chat-stream", b"message=x", "POST")
    assert body_of(messages) == b"data: named\n\n"


NAMED_MODEL = Scripted(["named"])


def test_chat_request_body_is_limited() -> None:
    too_big = [(b"content-length", str(10 * 1024 * 1024).encode())]
    refused = run(ours(), "/chat-stream", b"message=hi", "POST", headers=too_big)
    assert refused[0]["status"] == 413
    # Without a Content-Length, the limit applies as the body arrives.
    refused = run(ours(), "/chat-stream", b"message=hi", "POST", body=b"x" * (2 * 1024 * 1024))
    assert refused[0]["status"] == 413
    accepted = run(ours(), "/chat-stream", b"message=hi", "POST", body=b'{"ignored": true}')
    assert accepted[0]["status"] == 200


def test_missing_log_file_is_an_error_event(tmp_path: Path) -> None:
    expected = sse_messages(SSE, b"event: error\ndata: Log file not found\n\n")
    assert run(ours(log_file=str(tmp_path / "missing.log")), "/logs") == expected
    assert run(ours(), "/logs") == expected  # no file given, and no lifespan to create one


async def read_events(comm: ApplicationCommunicator, count: int) -> list[bytes]:
    events = []
    while len(events) < count:
        message = await comm.receive_output(BOUND)
        if message["type"] == BODY and message["body"]:
            events.append(message["body"])
    return events


def open_fds() -> int:
    return psutil.Process().num_fds()


def test_logs_follows_new_lines_and_closes_the_file_when_the_client_leaves(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"old line, not sent\n")
    app = ours(log_file=str(log))

    async def main() -> None:
        baseline = open_fds()
        comm = ApplicationCommunicator(app, http_scope("GET", "/logs", b"tick=0.01"))
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await comm.receive_output(BOUND))["headers"] == SSE
        # The follower opens the file and goes to its end in one step.
        await until(lambda: open_fds() == baseline + 1)
        with log.open("ab") as writer:
            writer.write(b"first\nsecond with \\n\xff and \r a CR\nthird, parti")
            writer.flush()
            assert await read_events(comm, 2) == [
                b"data: first\n\n",
                "data: second with \\n\ufffd and \ndata:  a CR\n\n".encode(),
            ]
            writer.write(b"al\n")
        assert await read_events(comm, 1) == [b"data: third, partial\n\n"]
        assert open_fds() == baseline + 1  # the follower's file
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(BOUND)
        assert open_fds() == baseline

    asyncio.run(main())


def test_the_access_log_is_created_at_startup_and_followed() -> None:
    app = ours()

    async def main() -> str:
        async with lifespan(app, timeout=BOUND):
            path = app.access_log.path
            assert path is not None
            baseline = open_fds()
            async with stream(app, "GET", "/logs?tick=0.01", read_timeout=BOUND) as logs:
                await until(lambda: open_fds() == baseline + 1)  # the follower is at the end
                await request(app, http_scope("GET", "/settings", b"a=%0A%0Dinjected"))
                line = await logs.read_chunk()
            # No client address and no query string: /logs is public.
            assert line.startswith(b"data: 20")
            assert line.endswith(b' "GET /settings HTTP/1.1" 200\n\n')
            assert b"127.0.0.1" not in line
            assert open_fds() == baseline  # leaving waited for the follower to close its file
        return path

    assert not os.path.exists(asyncio.run(main()))


def test_no_access_log_is_written_when_a_log_file_is_given(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    app = ours(log_file=str(log))
    assert app.access_log is None
    run(app, "/settings")
    assert log.read_text() == ""


# Settings and the tick.


def test_settings_endpoint() -> None:
    assert run(ours(), "/settings") == [
        {
            "type": START,
            "status": 200,
            "headers": [(b"content-length", b"35"), (b"content-type", b"application/json")],
        },
        {"type": BODY, "body": b'{"tick":0.001,"tick_override":true}', "more_body": False},
    ]


@pytest.mark.parametrize(
    ("raw", "kind", "msg"),
    [
        (
            "fast",
            "float_parsing",
            "Input should be a valid number, unable to parse string as a number",
        ),
        ("nan", "finite_number", "Input should be a finite number"),
        ("-inf", "finite_number", "Input should be a finite number"),
    ],
)
def test_an_invalid_tick_is_a_422(raw: str, kind: str, msg: str) -> None:
    messages = run(ours(), "/stream", f"tick={raw}".encode())
    assert messages[0]["status"] == 422
    assert json.loads(body_of(messages)) == {
        "detail": [{"type": kind, "loc": ["query", "tick"], "msg": msg, "input": raw}]
    }


@pytest.mark.parametrize(
    ("raw", "tick"), [(None, TICK), ("0.25", 0.25), ("0", 0.001), ("-3", 0.001), ("1e9", 10.0)]
)
def test_the_tick_query_parameter_is_clamped(raw: str | None, tick: float) -> None:
    query = b"" if raw is None else f"tick={raw}".encode()
    page = Catalogue(Settings(tick=TICK), None)
    assert page.tick(Request(http_scope("GET", "/stream", query), receive=None)) == tick  # type: ignore[arg-type]


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ASGI_STREAM_TICK": "0.05",
            "ASGI_STREAM_LOG_FILE": "app.log",
            "ASGI_STREAM_DEBUG": "1",
            "ASGI_STREAM_CHAT_MODEL": "mymodels:chat",
            "ASGI_STREAM_EVENT_LOG": "memory",
        }
    )
    assert settings == Settings(0.05, "app.log", "mymodels:chat", True, "memory")
    assert Settings.from_env({}) == Settings()
    with pytest.raises(ValueError, match="positive"):
        Settings.from_env({"ASGI_STREAM_TICK": "0"})
    with pytest.raises(ValueError, match="ASGI_STREAM_TICK must be a number"):
        Settings.from_env({"ASGI_STREAM_TICK": "fast"})


def test_head_never_runs_a_stream() -> None:
    messages = run(ours(), "/logs", method="HEAD")
    assert messages == [
        {"type": START, "status": 200, "headers": SSE},
        {"type": BODY, "body": b"", "more_body": False},
    ]
