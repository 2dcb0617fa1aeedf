"""The ASGI tracer: transparent in-process, on for `serve --trace` only, and the same
message sequence for /stream from both apps."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_stream import StreamingResponse
from asgi_stream.tracer import Tracer, format_record
from tests.asgi import http_scope, request
from tests.serving import ROOT, ServerProcess, serve

pytestmark = pytest.mark.server

START = "http.response.start"
BODY = "http.response.body"


async def five_events():
    for i in range(5):
        yield f"data: {i}\n\n"
        await asyncio.sleep(0)


def sends(records: list[dict]) -> list[tuple[str, bool | None]]:
    """(type, more_body) of every message the app sent, in order."""
    return [(r["type"], r.get("more_body")) for r in records if r["event"] == "send"]


STREAM_SENDS = [(START, None), *[(BODY, True)] * 5, (BODY, False)]


def test_the_tracer_passes_every_message_through_unchanged_and_records_it() -> None:
    scope = http_scope(path="/stream", query=b"x=1")
    plain = asyncio.run(request(StreamingResponse(five_events(), media_type="text/plain"), scope))
    text, lines = io.StringIO(), io.StringIO()
    traced_app = Tracer(
        StreamingResponse(five_events(), media_type="text/plain"), text=text, json_lines=lines
    )
    traced = asyncio.run(request(traced_app, scope))

    assert traced == plain
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert records[0] == {
        "connection": 1,
        "time": records[0]["time"],
        "event": "scope",
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/stream",
        "query_string": "x=1",
        "headers": [["host", "testserver"]],
    }
    assert sends(records) == STREAM_SENDS
    assert {
        "event": "receive",
        "type": "http.request",
        "body_size": 0,
        "more_body": False,
    }.items() <= next(r for r in records if r["event"] == "receive").items()
    assert records[-1]["event"] == "return"
    times = [r["time"] for r in records]
    assert times == sorted(times)
    # The text is the same records, formatted for a person.
    assert text.getvalue() == "".join(format_record(r) + "\n" for r in records)
    assert (
        "send     http.response.body  body=9 B more_body=True  b'data: 0\\n\\n'" in text.getvalue()
    )


def test_the_tracer_records_an_error_and_re_raises_it() -> None:
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    lines = io.StringIO()
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(Tracer(broken, text=None, json_lines=lines)(http_scope(), None, None))
    last = json.loads(lines.getvalue().splitlines()[-1])
    assert last["event"] == "raise"
    assert last["error"] == "RuntimeError('boom')"


def test_a_sink_gets_the_same_records_as_the_json_lines() -> None:
    scope = http_scope(path="/stream")
    records: list[dict[str, Any]] = []
    lines = io.StringIO()
    app = StreamingResponse(five_events(), media_type="text/plain")
    asyncio.run(request(Tracer(app, text=None, json_lines=lines, sink=records.append), scope))
    assert records == [json.loads(line) for line in lines.getvalue().splitlines()]
    assert sends(records) == STREAM_SENDS


def test_a_long_body_is_previewed_with_what_was_cut() -> None:
    assert Tracer(None, preview_bytes=4).preview(b"abcdefgh") == "b'abcd'... (+4 B)"


def test_stream_gives_the_same_message_sequence_in_both_apps() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "asgi_stream",
            "compare",
            "--trace",
            "/stream",
            "--json",
            "--tick",
            "0.02",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    traces = json.loads(completed.stdout)["trace"]
    assert set(traces) == {"asgi-stream", "FastAPI"}
    for records in traces.values():
        assert records[0]["event"] == "scope"
        assert records[0]["path"] == "/stream"
        assert sends(records) == STREAM_SENDS
        bodies = [r.get("preview") for r in records if r["event"] == "send" and r["type"] == BODY]
        assert bodies == [repr(f"data: {i}\n\n".encode()) for i in range(5)] + [None]


def wait_for_line(server: ServerProcess, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.output()


@pytest.mark.parametrize("trace", [True, False])
def test_serve_traces_only_when_asked(trace: bool, tmp_path: Path) -> None:
    argv = ["-m", "asgi_stream", "serve", "--tick", "0.01"]
    argv += ["--trace", "--trace-json", str(tmp_path / "trace.jsonl")] if trace else []
    with serve(argv, tmp_path) as server:
        assert httpx.get(server.url + "/stream", timeout=5).status_code == 200
        output = wait_for_line(server, "return") if trace else server.output()
    if trace:
        assert "scope    http GET /stream HTTP/1.1" in output
        assert "send     http.response.body  body=0 B more_body=False" in output
        records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
        number = next(r["connection"] for r in records if r.get("path") == "/stream")
        stream = [r for r in records if r["connection"] == number]
        assert sends(stream) == STREAM_SENDS
    else:
        assert "http.response" not in output
        assert not (tmp_path / "trace.jsonl").exists()


def test_the_tracer_passes_headers_given_as_any_iterable_on_intact() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = ((b"x-id", b"42") for _ in range(1))  # a generator: readable once
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    traced = Tracer(app, text=io.StringIO())
    messages = asyncio.run(request(traced, http_scope()))
    assert list(messages[0]["headers"]) == [(b"x-id", b"42")]


def test_a_path_cannot_forge_a_trace_line_or_drive_the_terminal() -> None:
    text = format_record(
        {
            "connection": 1,
            "time": 0.0,
            "event": "scope",
            "type": "http",
            "method": "GET",
            "path": "/x\n#9 0.0 ms send http.response.start\x1b[2J",
        }
    )
    assert "\n" not in text
    assert "\x1b" not in text
    assert "\\x0a" in text
