"""EventSourceResponse as sse-starlette users write it.

Items of any type, and the keywords ``ping``, ``sep`` and ``ping_message_factory``.

Every body is read back with the independent WHATWG parser of ``asgi_stream.testing``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from asgi_stream import EventSourceResponse, ServerSentEvent
from asgi_stream.testing import parse_event_stream
from tests.asgi import body_of, http_scope, never_disconnects, request
from tests.waiting import BOUND

END = {"type": "http.response.body", "body": b"", "more_body": False}


def sent(response: EventSourceResponse) -> list[dict[str, Any]]:
    return asyncio.run(request(response, http_scope()))


class Pings:
    """Heartbeats as the client sees them: a generator waits for a number of them
    (bounded), where a fixed sleep would race a busy machine's loop."""

    def __init__(self, marker: bytes = b"heartbeat") -> None:
        self.marker = marker
        self.seen = 0
        self.changed = asyncio.Event()

    def send(self, messages: list[dict[str, Any]]) -> Any:
        async def send(message: dict[str, Any]) -> None:
            messages.append(message)
            self.seen += message.get("body", b"").count(self.marker)
            self.changed.set()

        return send

    async def wait_for(self, count: int) -> None:
        async def enough() -> None:
            while self.seen < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), BOUND)


def run_with(response: EventSourceResponse, pings: Pings) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def never_disconnects() -> dict[str, Any]:
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def main() -> None:
        await asyncio.wait_for(response(http_scope(), never_disconnects, pings.send(messages)), 20)

    asyncio.run(main())
    return messages


class Custom:
    def __str__(self) -> str:
        return "custom\nobject"


def test_a_number_is_sent_as_the_data_of_its_text() -> None:
    async def generate() -> Any:
        yield 100
        yield 1.5
        yield "last"

    messages = sent(EventSourceResponse(generate()))
    assert messages[-1] == END  # the stream was not aborted after the headers
    events = parse_event_stream(body_of(messages).decode()).events
    assert [e.data for e in events] == ["100", "1.5", "last"]
    assert body_of(messages).startswith(b"data: 100\n\n")


def sent_until_error(response: EventSourceResponse) -> tuple[list[dict[str, Any]], BaseException]:
    """The messages a response sent before it raised, and what it raised."""
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    async def main() -> BaseException:
        with pytest.raises(Exception) as raised:
            await asyncio.wait_for(response(http_scope(), never_disconnects, send), BOUND)
        return raised.value

    return messages, asyncio.run(main())


@pytest.mark.parametrize(
    "item",
    [None, Custom(), [1, 2], object(), True],
    ids=["None", "object-with-str", "list", "object", "bool"],
)
def test_an_item_of_any_other_type_is_a_type_error_and_never_its_str(item: object) -> None:
    finished = []

    async def generate() -> Any:
        try:
            yield "before"
            yield item
            yield "after"
        finally:
            finished.append(True)

    messages, error = sent_until_error(EventSourceResponse(generate()))
    assert isinstance(error, TypeError)
    assert "ServerSentEvent.from_json" in str(error)  # says what to yield instead
    assert body_of(messages) == b"data: before\n\n"  # nothing of the item went out
    assert messages[-1].get("more_body") is True  # the body did not end cleanly
    assert finished == [True]


# sep


def every_kind_of_item() -> Any:
    yield "two\nlines"
    yield ServerSentEvent("d", event="e", id="1", retry=5, comment="c\rc")
    yield {"data": "from a dict", "event": "dict"}
    yield 7


@pytest.mark.parametrize("sep", ["\r\n", "\n", "\r"])
def test_sep_is_the_line_ending_of_every_line_written_pings_included(sep: str) -> None:
    pings = Pings()

    async def generate() -> Any:
        for item in every_kind_of_item():
            yield item
        await pings.wait_for(2)  # idle: the heartbeat speaks
        yield "after the pings"

    body = body_of(run_with(EventSourceResponse(generate(), sep=sep, ping=0.02), pings)).decode()
    assert body.replace(sep, "") == body.replace("\r", "").replace("\n", "")  # no other ending
    assert body.endswith(sep + sep)
    parsed = parse_event_stream(body)
    assert [(e.type, e.data, e.last_event_id) for e in parsed.events] == [
        ("message", "two\nlines", ""),
        ("e", "d", "1"),
        ("dict", "from a dict", "1"),
        ("message", "7", "1"),
        ("message", "after the pings", "1"),
    ]
    assert parsed.retry == 5
    comments = [value for name, value in parsed.fields if name == ""]
    assert comments[:2] == [" c", " c"]
    assert comments[2:] and set(comments[2:]) == {" heartbeat"}
    if sep != "\n":
        assert f": heartbeat{sep}{sep}".encode() in body.encode()


def test_the_default_sep_is_lf_and_differs_from_sse_starlettes_crlf() -> None:
    body = body_of(sent(EventSourceResponse(iter(["a"]))))
    assert body == b"data: a\n\n"
    body = body_of(sent(EventSourceResponse(iter(["a"]), sep="\r\n")))
    assert body == b"data: a\r\n\r\n"


def test_bytes_items_are_sent_as_they_are_whatever_the_sep() -> None:
    body = body_of(sent(EventSourceResponse(iter([b"data: raw\n\n", "x"]), sep="\r\n")))
    assert body == b"data: raw\n\ndata: x\r\n\r\n"


@pytest.mark.parametrize("bad", ["", " ", "\n\n", "\r\n\r\n", "\n\r", None, b"\n"])
def test_any_other_sep_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="sep"):
        EventSourceResponse(iter([]), sep=bad)


# ping and ping_message_factory


def test_ping_sends_a_heartbeat_only_while_the_stream_is_idle() -> None:
    pings = Pings()

    async def generate() -> Any:
        for i in range(20):  # busy, far below the interval: no heartbeat
            yield str(i)
            await asyncio.sleep(0)
        await pings.wait_for(2)  # idle: heartbeats, one an interval
        yield "end"

    messages = run_with(EventSourceResponse(generate(), ping=0.2), pings)
    parsed = parse_event_stream(body_of(messages).decode())
    assert [e.data for e in parsed.events] == [*map(str, range(20)), "end"]
    names = [name for name, _ in parsed.fields]
    first_ping = names.index("")
    assert first_ping == 20  # after the busy part, before "end"
    assert names[first_ping:-1] == [""] * (len(names) - 1 - first_ping)
    assert len(names) - 1 - first_ping >= 2


def test_ping_message_factory_is_called_for_each_ping() -> None:
    calls = []
    pings = Pings(marker=b"event: ping")

    def make_ping() -> ServerSentEvent:
        calls.append(1)
        return ServerSentEvent(str(len(calls)), event="ping")

    async def generate() -> Any:
        yield "start"
        await pings.wait_for(2)
        yield "end"

    response = EventSourceResponse(generate(), ping=0.03, ping_message_factory=make_ping)
    events = parse_event_stream(body_of(run_with(response, pings)).decode()).events
    pings_sent = [e for e in events if e.type == "ping"]
    assert len(pings_sent) == len(calls) >= 2
    assert [e.data for e in pings_sent] == [str(n) for n in range(1, len(calls) + 1)]
    assert [e.data for e in events if e.type == "message"] == ["start", "end"]


def test_ping_message_factory_without_ping_is_refused() -> None:
    with pytest.raises(ValueError, match="needs ping"):
        EventSourceResponse(iter([]), ping_message_factory=lambda: ServerSentEvent("p"))


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_a_ping_interval_that_is_not_positive_and_finite_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="ping must be positive and finite"):
        EventSourceResponse(iter([]), ping=bad)


@pytest.mark.parametrize("bad", ["5", True])
def test_a_ping_interval_that_is_not_a_number_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="ping must be a number"):
        EventSourceResponse(iter([]), ping=bad)


def test_a_client_that_leaves_while_the_stream_waits_between_pings_stops_the_generator() -> None:
    cleaned_up = asyncio.Event()
    sent_messages: list[dict[str, Any]] = []

    async def generate() -> Any:
        try:
            yield "hello"
            await asyncio.sleep(30)
        finally:
            cleaned_up.set()

    async def main() -> None:
        disconnect = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent_messages.append(message)
            if message.get("body", b"").startswith(b": heartbeat"):
                disconnect.set()

        response = EventSourceResponse(generate(), ping=0.01)
        await asyncio.wait_for(response(http_scope(), receive, send), 5)
        await asyncio.wait_for(cleaned_up.wait(), 1)

    asyncio.run(main())
    assert sent_messages[-1] != END  # left, not completed
