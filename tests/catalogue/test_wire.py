"""The wire: a page's own requests, traced for that page alone, at no cost to anyone else.

Driven with asgiref's ApplicationCommunicator: one communicator is the page's
``GET /wire`` stream, others are the requests it makes. The browser tests
(test_browser.py) drive the page that draws these records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream.catalogue import Settings, create_app, tutorial, wire
from asgi_stream.catalogue.differences import EXPECTED, NOT_SEEN
from asgi_stream.catalogue.wire import Wire
from asgi_stream.types import Receive, Scope, Send
from tests.asgi import body_of, http_scope, request

TIMEOUT = 5.0


class Page:
    """A page watching the wire: its ``GET /wire`` stream, read event by event."""

    def __init__(self, app: Any) -> None:
        self.comm = ApplicationCommunicator(app, http_scope(path="/wire"))
        self.token = ""

    async def open(self) -> Page:
        await self.comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.comm.receive_output(TIMEOUT)
        assert start["status"] == 200
        kind, self.token = await self.event()
        assert kind == "token"
        return self

    async def event(self) -> tuple[str, str]:
        """The next event: (type, data)."""
        message = await self.comm.receive_output(TIMEOUT)
        lines = message["body"].decode().splitlines()
        fields = dict(line.split(": ", 1) for line in lines if line)
        return fields.get("event", "message"), fields["data"]

    async def records(self, lane: str) -> list[dict[str, Any]]:
        """The records of one traced request, to its end."""
        records = []
        while not records or records[-1]["event"] not in ("return", "raise"):
            kind, data = await self.event()
            assert kind == "message"
            record = json.loads(data)
            assert record["lane"] == lane
            records.append(record)
        return records

    def nothing_sent(self) -> bool:
        return self.comm.output_queue.empty()

    async def leave(self) -> None:
        await self.comm.send_input({"type": "http.disconnect"})
        await self.comm.wait(TIMEOUT)


@pytest.fixture
def app() -> Any:
    return create_app(Settings(tick=0.001, log_file="missing.log"))


def query(token: str, lane: str = "l1", rest: bytes = b"tick=0.001") -> bytes:
    return rest + b"&wire=" + f"{token}.{lane}".encode()


async def settle() -> None:
    """Let every task that has something to do do it."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)


def test_a_page_sees_its_own_request_and_nobody_else_does(app: Any) -> None:
    async def main() -> None:
        mine, other = await Page(app).open(), await Page(app).open()
        assert mine.token != other.token and len(mine.token) >= 20
        messages = await request(app, http_scope(path="/stream", query=query(mine.token)))
        records = await mine.records("l1")
        await settle()
        assert other.nothing_sent()

        sends = [(r["type"], r.get("more_body")) for r in records if r["event"] == "send"]
        assert sends == [
            ("http.response.start", None),
            *[("http.response.body", True)] * 5,
            ("http.response.body", False),
        ]
        # The records describe the messages the client got; the token is in neither.
        bodies = [m["body"] for m in messages if m["type"] == "http.response.body"]
        assert [r["preview"] for r in records if "preview" in r] == [repr(b) for b in bodies if b]
        assert records[0]["query_string"] == "tick=0.001"
        assert mine.token not in json.dumps(records)
        assert [r["detail"] for r in records if r["event"] == "app"] == ["ran to its end"]
        await mine.leave()
        await other.leave()

    asyncio.run(main())


@pytest.mark.parametrize("wire_value", ["not-a-token.l1", "{token}", "{token}.", "{token}.a/b"])
def test_a_request_without_a_valid_token_is_served_untraced(app: Any, wire_value: str) -> None:
    async def main() -> None:
        page = await Page(app).open()
        value = wire_value.format(token=page.token).encode()
        scope = http_scope(path="/stream", query=b"tick=0.001&wire=" + value)
        messages = await request(app, scope)
        assert body_of(messages).count(b"data:") == 5
        await settle()
        assert page.nothing_sent()
        await page.leave()

    asyncio.run(main())


def test_a_token_dies_with_its_page(app: Any) -> None:
    async def main() -> None:
        page = await Page(app).open()
        await page.leave()
        assert app.wire.watchers == {}
        await request(app, http_scope(path="/stream", query=query(page.token)))
        assert app.wire.traces == set()

    asyncio.run(main())


class Spy:
    """An app that remembers what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[Scope, Receive, Send]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append((scope, receive, send))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    pass


def test_an_untraced_request_reaches_the_app_untouched() -> None:
    """No tracer, no copy of the scope, no wrapped receive or send: it costs nothing."""

    async def main() -> None:
        hub, spy = Wire(), Spy()
        scope = http_scope(path="/stream", query=b"wire=abc.l1")
        await hub.serve(scope, receive, send, spy)  # nobody watches
        watcher = wire.Watcher()
        hub.watchers[watcher.token] = watcher
        await hub.serve(scope, receive, send, spy)  # somebody watches, but not this request
        for seen in spy.calls:
            assert seen[0] is scope and seen[1] is receive and seen[2] is send
        assert watcher.queue.empty()

        traced = http_scope(path="/stream", query=b"a=1&wire=" + watcher.token.encode() + b".l7")
        await hub.serve(traced, receive, send, spy)
        seen_scope, seen_receive, seen_send = spy.calls[-1]
        assert seen_receive is not receive and seen_send is not send  # the tracer's
        assert seen_scope["query_string"] == b"a=1"  # the token never reaches the app
        assert watcher.queue.qsize() == 4  # the scope, two messages sent, the return
        assert hub.traces == set()

    asyncio.run(main())


class ReadScope(dict[str, Any]):
    """A scope that remembers which keys were read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def test_while_nobody_watches_the_wire_does_not_even_read_the_scope() -> None:
    hub, spy = Wire(), Spy()
    scope = ReadScope(http_scope(path="/stream", query=b"wire=abc.l1"))
    asyncio.run(hub.serve(scope, receive, send, spy))
    assert scope.read == set()
    assert spy.calls[0][0] is scope


def test_the_wire_stream_itself_is_never_traced() -> None:
    hub, watcher = Wire(), wire.Watcher()
    hub.watchers[watcher.token] = watcher
    value = b"wire=" + watcher.token.encode() + b".l1"
    assert hub.watched(http_scope(path="/wire", query=value)) is None
    assert hub.watched(http_scope(path="/stream", query=value)) is not None


def test_a_disconnect_then_the_generators_finally(app: Any) -> None:
    async def main() -> None:
        page = await Page(app).open()
        scope = http_scope(path="/stream", query=query(page.token, rest=b"tick=10"))
        comm = ApplicationCommunicator(app, scope)
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        await comm.receive_output(TIMEOUT)  # the start
        await comm.receive_output(TIMEOUT)  # data: 0; the next one is 5 s away
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(TIMEOUT)
        records = await page.records("l1")
        steps = [(r["event"], r["type"]) for r in records if r["event"] in ("receive", "app")]
        assert steps == [
            ("receive", "http.request"),
            ("receive", "http.disconnect"),
            ("app", "generator finally"),
        ]
        assert records[-1]["event"] == "return"
        assert app.wire.traces == set()
        await page.leave()

    asyncio.run(main())


def test_a_background_task_starts_and_ends_after_the_body(app: Any) -> None:
    async def main() -> None:
        page = await Page(app).open()
        await request(app, http_scope(path="/stream-full", query=query(page.token)))
        records = await page.records("l1")
        tail = [(r["event"], r.get("type")) for r in records[-5:]]
        assert tail == [
            ("app", "generator finally"),
            ("send", "http.response.body"),
            ("app", "background start"),
            ("app", "background end"),
            ("return", None),
        ]
        await page.leave()

    asyncio.run(main())


def test_nothing_is_reported_for_an_untraced_request(app: Any) -> None:
    async def generate() -> AsyncIterator[bytes]:
        yield b""

    content = generate()
    assert wire.watch_generator(content) is content
    task = wire.background(print)
    assert task.func is print


def test_a_page_that_reads_too_slowly_is_told_what_it_missed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire, "QUEUE_SIZE", 3)

    async def main() -> None:
        hub = Wire()
        records = hub._records()
        token = (await anext(records)).data
        watcher = hub.watchers[token]
        # Five records while the page reads nothing: the queue keeps three.
        for number in range(5):
            watcher.publish({"event": "send", "number": number})
        assert (watcher.queue.qsize(), watcher.dropped) == (3, 2)
        dropped = await anext(records)
        assert (dropped.event, dropped.data) == ("dropped", "2")
        assert [json.loads((await anext(records)).data)["number"] for _ in range(3)] == [0, 1, 2]
        await records.aclose()
        assert hub.watchers == {}
        watcher.publish({"event": "send"})  # a trace that outlives its page: nowhere to go
        assert watcher.queue.qsize() == 0

    asyncio.run(main())


def test_at_most_max_watchers_pages(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_WATCHERS", 2)

    async def main() -> None:
        pages = [await Page(app).open() for _ in range(2)]
        messages = await request(app, http_scope(path="/wire"))
        assert messages[0]["status"] == 503
        for page in pages:
            await page.leave()
        assert app.wire.watchers == {}
        # HEAD never starts the stream, so it leaves no watcher behind.
        await request(app, http_scope("HEAD", "/wire"))
        assert app.wire.watchers == {}

    asyncio.run(main())


def test_differences_tell_the_page_where_fastapi_is(app: Any) -> None:
    messages = asyncio.run(request(app, http_scope(path="/differences")))
    answer = json.loads(body_of(messages))
    assert [d["probe"] for d in answer["differences"]] == [e.probe for e in EXPECTED + NOT_SEEN]
    connection = answer["differences"][0]
    assert connection | {"reason": ""} == {
        "probe": "GET /stream-headers",
        "method": "GET",
        "path": "/stream-headers",
        "note": "",
        "aspects": ["header connection"],
        "reason": "",
    }
    if tutorial.unavailable() is None:
        assert answer["fastapi"]["unavailable"] is None
        assert answer["fastapi"]["tick"] > 0


def test_without_fastapi_the_page_is_told_why(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tutorial, "unavailable", lambda: "FastAPI is not installed")
    messages = asyncio.run(request(app, http_scope(path="/differences")))
    assert json.loads(body_of(messages))["fastapi"]["unavailable"] == "FastAPI is not installed"
    messages = asyncio.run(request(app, http_scope(path="/fastapi/stream")))
    assert messages[0]["status"] == 404
    assert json.loads(body_of(messages)) == {"detail": "FastAPI is not installed"}


def test_fastapi_beside_us_is_traced_the_same_way(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    if tutorial.unavailable() is not None:
        pytest.skip(tutorial.unavailable())

    # The tutorial's code reads its tick once, from the environment: speed it up.
    module = asyncio.run(tutorial.Tutorial().load())
    monkeypatch.setattr(module, "TICK", 0.001)

    async def main() -> None:
        page = await Page(app).open()
        scope = http_scope(path="/fastapi/stream-headers", query=query(page.token, rest=b""))
        messages = await request(app, scope)
        assert body_of(messages).count(b"data:") == 5
        records = await page.records("l1")
        [start] = [r for r in records if r.get("type") == "http.response.start"]
        assert ["connection", "keep-alive"] in start["headers"]
        assert records[0]["path"] == "/fastapi/stream-headers"
        assert page.token not in json.dumps(records)
        await page.leave()

    asyncio.run(main())
