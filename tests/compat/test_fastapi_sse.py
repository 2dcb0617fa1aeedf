"""Our twin as FastAPI's ``response_class=``: FastAPI's own SSE behaviour.

With FastAPI installed, ``asgi_stream.starlette.EventSourceResponse`` is also
a ``fastapi.sse.EventSourceResponse``, the class FastAPI's routing looks for
before it serializes what a generator endpoint yields. So what FastAPI's own
SSE tests check holds with our class in its place: models, dicts and strings
go out as JSON, FastAPI's ``ServerSentEvent`` with its fields, ``raw_data``
as it is, FastAPI's keep-alive comment. The same cases in our own words, in
process; the last test runs the app under uvicorn with a real client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, Iterable, Iterator

import fastapi.routing
import fastapi.sse
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from asgi_stream.starlette import EventSourceResponse
from tests.serving import ServerProcess, serve

BOUND = 10.0


class Gadget(BaseModel):
    name: str
    note: str | None = None


GADGETS = [Gadget(name="kettle", note="boils"), Gadget(name="lamp"), Gadget(name="clock")]

app = FastAPI()


@app.get("/models", response_class=EventSourceResponse)
async def models() -> AsyncIterable[Gadget]:
    for gadget in GADGETS:
        yield gadget


@app.get("/models-sync", response_class=EventSourceResponse)
def models_sync() -> Iterable[Gadget]:
    yield from GADGETS


@app.get("/models-unannotated", response_class=EventSourceResponse)
async def models_unannotated():  # type: ignore[no-untyped-def]
    for gadget in GADGETS:
        yield gadget


@app.get("/models-sync-unannotated", response_class=EventSourceResponse)
def models_sync_unannotated():  # type: ignore[no-untyped-def]
    yield from GADGETS


@app.get("/dicts", response_class=EventSourceResponse)
async def dicts():  # type: ignore[no-untyped-def]
    for gadget in GADGETS:
        yield {"name": gadget.name}


@app.post("/models", response_class=EventSourceResponse)
async def models_posted() -> AsyncIterable[Gadget]:
    for gadget in GADGETS:
        yield gadget


@app.get("/fastapi-events", response_class=EventSourceResponse)
async def fastapi_events():  # type: ignore[no-untyped-def]
    yield fastapi.sse.ServerSentEvent(data="hi", event="greeting", id="7")
    yield fastapi.sse.ServerSentEvent(data={"a": 1}, event="json", id="8")
    yield fastapi.sse.ServerSentEvent(comment="only a comment")
    yield fastapi.sse.ServerSentEvent(data="later", retry=2500)


@app.get("/mixed", response_class=EventSourceResponse)
async def mixed() -> AsyncIterable[Gadget]:
    yield GADGETS[0]
    yield fastapi.sse.ServerSentEvent(data="between", event="aside")  # type: ignore[misc]
    yield GADGETS[1]


@app.get("/text", response_class=EventSourceResponse)
async def text():  # type: ignore[no-untyped-def]
    yield "plain words"
    yield fastapi.sse.ServerSentEvent(data="more words")


@app.get("/raw", response_class=EventSourceResponse)
async def raw():  # type: ignore[no-untyped-def]
    yield fastapi.sse.ServerSentEvent(raw_data="not quoted")
    yield fastapi.sse.ServerSentEvent(raw_data="<p>fragment</p>", event="html")


@app.get("/slow", response_class=EventSourceResponse)
async def slow():  # type: ignore[no-untyped-def]
    yield {"n": 1}
    await asyncio.sleep(0.1)  # many keep-alive intervals, as the test sets them
    yield {"n": 2}


router = APIRouter()


@router.get("/events", response_class=EventSourceResponse)
async def routed():  # type: ignore[no-untyped-def]
    yield {"word": "first"}
    yield {"word": "second"}


app.include_router(router, prefix="/api")


def get(path: str, method: str = "GET") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.request(method, path, timeout=BOUND)

    return asyncio.run(go())


def data_lines(reply: httpx.Response) -> list[str]:
    return [line[6:] for line in reply.text.split("\n") if line.startswith("data: ")]


@pytest.mark.parametrize(
    "path", ["/models", "/models-sync", "/models-unannotated", "/models-sync-unannotated"]
)
def test_yielded_models_go_out_as_json_data(path: str) -> None:
    reply = get(path)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers["x-accel-buffering"] == "no"
    assert [json.loads(line) for line in data_lines(reply)] == [g.model_dump() for g in GADGETS]


def test_a_dict_is_the_json_of_one_events_data() -> None:
    reply = get("/dicts")
    assert [json.loads(line) for line in data_lines(reply)] == [
        {"name": "kettle"},
        {"name": "lamp"},
        {"name": "clock"},
    ]


def test_post_streams_too() -> None:
    reply = get("/models", "POST")
    assert reply.status_code == 200
    assert len(data_lines(reply)) == 3


def test_fastapis_events_keep_their_fields_and_json_data() -> None:
    body = get("/fastapi-events").text
    assert 'event: greeting\ndata: "hi"\nid: 7\n\n' in body
    assert 'event: json\ndata: {"a": 1}\nid: 8\n\n' in body
    assert ": only a comment\n\n" in body
    assert 'data: "later"\nretry: 2500\n\n' in body


def test_models_and_events_mix() -> None:
    body = get("/mixed").text
    assert 'event: aside\ndata: "between"\n\n' in body
    assert body.count('"name"') == 2


def test_strings_are_json_strings() -> None:
    assert data_lines(get("/text")) == ['"plain words"', '"more words"']


def test_raw_data_goes_out_unquoted() -> None:
    body = get("/raw").text
    assert "data: not quoted\n" in body
    assert "event: html\ndata: <p>fragment</p>\n" in body


def test_an_included_router_streams() -> None:
    assert [json.loads(line) for line in data_lines(get("/api/events"))] == [
        {"word": "first"},
        {"word": "second"},
    ]


def test_fastapis_keepalive_comment_fills_a_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.01)
    reply = get("/slow")
    assert ": ping\n\n" in reply.text
    assert data_lines(reply) == ['{"n": 1}', '{"n": 2}']


def test_no_keepalive_comment_when_items_come_quickly() -> None:
    assert ": ping" not in get("/models").text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    argv = ["-m", "uvicorn", "tests.compat.test_fastapi_sse:app", "--host", "127.0.0.1"]
    with serve(argv, tmp_path_factory.mktemp("fastapi-sse")) as running:
        yield running


@pytest.mark.server
def test_under_uvicorn_models_stream_as_json(server: ServerProcess) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=BOUND) as http,
        http.stream("GET", "/models") as reply,
    ):
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
        body = b"".join(reply.iter_bytes()).decode()
    assert body == "".join(f"data: {g.model_dump_json()}\n\n" for g in GADGETS)
