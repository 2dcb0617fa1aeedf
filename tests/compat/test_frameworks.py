"""Our responses returned from the endpoints of a real FastAPI app and a real
Starlette app, served by uvicorn (tests/compat/framework_apps.py).

FastAPI passes through only instances of Starlette's ``Response``: the
classes of ``asgi_stream.starlette`` are. What holds for our responses in our
router holds there too: the body on the wire, a disconnect that runs the
generator's ``finally`` at once, HEAD without the generator, one task
stepping the generator from first step to last.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import fastapi.sse
import httpx
import pytest
from fastapi import FastAPI
from httpx_sse import connect_sse
from starlette import responses as starlette_responses

import asgi_stream
from asgi_stream.starlette import (
    EventSourceResponse,
    Response,
    ResumableEventSourceResponse,
    StreamingResponse,
    starlette_compatible,
)
from tests.asgi import body_of, headers_of, http_scope, request
from tests.serving import ServerProcess, serve

pytestmark = pytest.mark.server

APPS = ["fastapi_app", "starlette_app"]
BOUND = 10.0


@pytest.fixture(scope="module", params=APPS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    argv = ["-m", "uvicorn", f"tests.compat.framework_apps:{request.param}", "--host", "127.0.0.1"]
    with serve(argv, tmp_path_factory.mktemp(request.param)) as running:
        yield running


def client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=BOUND)


def test_a_streaming_response_streams(server: ServerProcess) -> None:
    with client(server) as http:
        reply = http.get("/numbers")
    assert reply.status_code == 200
    assert reply.text == "0\n1\n2\n"
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.headers["transfer-encoding"] == "chunked"


def test_an_event_source_response_sends_its_events(server: ServerProcess) -> None:
    with client(server) as http, connect_sse(http, "GET", "/events") as source:
        assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert [event.data for event in source.iter_sse()] == ["event 0", "event 1", "event 2"]


def test_a_resumable_stream_replays_after_last_event_id(server: ServerProcess) -> None:
    with client(server) as http:
        with connect_sse(http, "GET", "/resumable") as source:
            events = [(event.event, event.data, event.id) for event in source.iter_sse()]
        assert [data for _, data, _ in events] == ["0", "1", "2", "finished"]
        first_id, final_id = events[0][2], events[-1][2]
        with connect_sse(http, "GET", "/resumable", headers={"Last-Event-ID": first_id}) as source:
            assert [event.data for event in source.iter_sse()] == ["1", "2", "finished"]
        # After the final event: 204, so that EventSource stops reconnecting.
        assert http.get("/resumable", headers={"Last-Event-ID": final_id}).status_code == 204


def wait_for_record(http: httpx.Client, key: str, value: int) -> dict[str, Any]:
    deadline = time.monotonic() + BOUND
    while True:
        record: dict[str, Any] = http.get("/record").json()
        if record[key] >= value or time.monotonic() > deadline:
            return record
        time.sleep(0.02)


def test_a_disconnect_runs_the_finally_at_once_and_one_task_stepped_it(
    server: ServerProcess,
) -> None:
    with client(server) as http:
        before = http.get("/record").json()
        with connect_sse(http, "GET", "/endless") as source:
            events = source.iter_sse()
            assert [next(events).data for _ in range(3)] == ["0", "1", "2"]
        # The client has hung up; the generator's finally runs without waiting
        # for a send to fail.
        record = wait_for_record(http, "finally", before["finally"] + 1)
    assert record["finally"] == before["finally"] + 1
    assert record["one_task"][-1] is True


def test_head_sends_the_headers_and_never_starts_the_generator(server: ServerProcess) -> None:
    with client(server) as http:
        before = http.get("/record").json()
        reply = http.head("/endless")
        after = http.get("/record").json()
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert reply.content == b""
    assert after["started"] == before["started"]


def test_url_for_in_a_starlette_app_mounted_in_a_router_behind_a_root_path(
    tmp_path: Path,
) -> None:
    argv = ["-m", "uvicorn", "tests.compat.framework_apps:router_app", "--host", "127.0.0.1"]
    with serve([*argv, "--root-path", "/api"], tmp_path) as running, client(running) as http:
        reply = http.get("/legacy/hello")  # a proxy took /api off
    assert reply.status_code == 200
    assert reply.json() == {"url": f"{running.url}/api/legacy/hello"}


@pytest.mark.parametrize(
    ("twin", "ours", "theirs"),
    [
        (Response, asgi_stream.Response, starlette_responses.Response),
        (StreamingResponse, asgi_stream.StreamingResponse, starlette_responses.StreamingResponse),
        (
            EventSourceResponse,
            asgi_stream.EventSourceResponse,
            fastapi.sse.EventSourceResponse,  # FastAPI serializes for it (test_fastapi_sse.py)
        ),
        (
            ResumableEventSourceResponse,
            asgi_stream.ResumableEventSourceResponse,
            fastapi.sse.EventSourceResponse,
        ),
    ],
)
def test_each_twin_is_both_classes_and_ours_comes_first(
    twin: type[Any], ours: type[Any], theirs: type[Any]
) -> None:
    assert issubclass(twin, ours) and issubclass(twin, theirs)
    assert twin.__mro__.index(ours) < twin.__mro__.index(theirs)
    assert twin is starlette_compatible(ours)  # made once


def test_starlette_compatible_refuses_what_is_not_our_response() -> None:
    with pytest.raises(TypeError):
        starlette_compatible(starlette_responses.Response)  # type: ignore[type-var]


def test_a_twin_as_fastapis_response_class_for_a_generator_endpoint() -> None:
    """FastAPI builds the response itself, serializing what the endpoint yields
    as FastAPI does (tests/compat/test_fastapi_sse.py has the details)."""
    app = FastAPI()

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[dict[str, int]]:
        for n in range(3):
            yield {"data": n}

    messages = asyncio.run(request(app, http_scope("GET", "/events")))
    assert headers_of(messages)[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert body_of(messages) == b"".join(b'data: {"data":%d}\n\n' % n for n in range(3))


def test_a_twin_has_starlettes_set_cookie() -> None:
    response = StreamingResponse(iter([b"x"]))
    response.set_cookie("greeting", "Hello, cookies!")
    messages = asyncio.run(request(response, http_scope()))
    assert headers_of(messages)[b"set-cookie"].startswith(b'greeting="Hello\\054 cookies!"')


def test_without_fastapi_an_sse_twin_is_starlettes_streaming_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi.sse", None)  # "import fastapi.sse" now fails

    class Mine(asgi_stream.EventSourceResponse):
        pass

    twin = starlette_compatible(Mine)
    assert issubclass(twin, starlette_responses.StreamingResponse)
    assert not issubclass(twin, fastapi.sse.EventSourceResponse)
