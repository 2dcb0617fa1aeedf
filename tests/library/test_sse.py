"""SSE encoding: exact bytes, and property tests that no value can forge an event or a field."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_stream import EventSourceResponse, ServerSentEvent
from asgi_stream.testing import parse_event_stream
from tests.asgi import body_of, headers_of, http_scope, request

# Text that is likely to contain every kind of line break and other trouble.
nasty_text = st.lists(
    st.sampled_from(["\r", "\n", "\r\n", ":", " ", "data", "event: x", "id", "\u2028", "é", "\0"])
    | st.characters(exclude_categories=("Cs",)),  # lone surrogates are not text
    max_size=20,
).map("".join)


def test_exact_bytes_of_each_field() -> None:
    event = ServerSentEvent(data="hello", event="greeting", id="7", retry=3000, comment="c")
    assert event.encode() == b": c\nevent: greeting\nid: 7\nretry: 3000\ndata: hello\n\n"
    assert ServerSentEvent(data="0").encode() == b"data: 0\n\n"
    assert ServerSentEvent(comment="heartbeat").encode() == b": heartbeat\n\n"


def test_every_line_break_in_data_becomes_its_own_data_line() -> None:
    assert (
        ServerSentEvent(data="a\r\nb\rc\nd").encode() == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    )
    assert ServerSentEvent(data="\n\nevent: x").encode() == b"data: \ndata: \ndata: event: x\n\n"
    # U+2028 is not a line break in an event stream, so it is not split.
    assert ServerSentEvent(data="a\u2028b").encode() == "data: a\u2028b\n\n".encode()


def test_from_json_uses_json_dumps_defaults_like_the_tutorial() -> None:
    event = ServerSentEvent.from_json({"error": "模拟错误", "code": "X"}, event="error")
    assert event.encode() == (
        b'event: error\ndata: {"error": "\\u6a21\\u62df\\u9519\\u8bef", "code": "X"}\n\n'
    )


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb"])
def test_event_with_a_line_break_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="event type"):
        ServerSentEvent(data="x", event=bad)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_id_with_cr_lf_or_nul_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="id"):
        ServerSentEvent(data="x", id=bad)


def test_retry_must_be_at_least_zero() -> None:
    with pytest.raises(ValueError, match="retry must be at least 0"):
        ServerSentEvent(retry=-1)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("retry", "ten"),
        ("retry", 1.5),
        ("retry", True),
        ("retry", "10"),
        ("event", 3),
        ("event", b"done"),
        ("id", 1.5),
        ("id", True),
        ("id", b"5"),
        ("comment", 5),
    ],
)
def test_a_field_of_the_wrong_type_is_a_type_error(field: str, bad: object) -> None:
    with pytest.raises(TypeError, match=f"SSE {field} must be"):
        ServerSentEvent("x", **{field: bad})


def test_an_int_id_is_sent_as_its_str() -> None:
    assert ServerSentEvent("x", id=5).encode() == b"id: 5\ndata: x\n\n"
    assert ServerSentEvent("x", id=0).id == "0"


@given(data=nasty_text, comment=st.none() | nasty_text)
def test_no_data_or_comment_can_forge_an_event_or_a_field(data: str, comment: str | None) -> None:
    parsed = parse_event_stream(ServerSentEvent(data=data, comment=comment).encode().decode())
    assert len(parsed.events) == 1
    event = parsed.events[0]
    assert event.type == "message"
    # Every line break, whatever its kind, comes back as LF: the text is otherwise intact.
    assert event.data == data.replace("\r\n", "\n").replace("\r", "\n")
    assert {name for name, _ in parsed.fields} <= {"data", ""}


@given(data=nasty_text, event=nasty_text, id=nasty_text)
def test_event_and_id_either_round_trip_or_are_refused(data: str, event: str, id: str) -> None:
    try:
        encoded = ServerSentEvent(data=data, event=event, id=id).encode()
    except ValueError:
        assert any(c in event for c in "\r\n") or any(c in id for c in "\r\n\0")
        return
    parsed = parse_event_stream(encoded.decode())
    assert len(parsed.events) == 1
    assert parsed.events[0].type == (event or "message")
    assert parsed.events[0].last_event_id == id
    assert [name for name, _ in parsed.fields].count("event") == 1
    assert [name for name, _ in parsed.fields].count("id") == 1


@given(items=st.lists(nasty_text, max_size=5))
def test_a_stream_of_str_items_gives_exactly_those_events(items: list[str]) -> None:
    async def generate():
        for item in items:
            yield item

    messages = asyncio.run(request(EventSourceResponse(generate()), http_scope()))
    parsed = parse_event_stream(body_of(messages).decode())
    assert [e.data for e in parsed.events] == [
        item.replace("\r\n", "\n").replace("\r", "\n") for item in items
    ]


def test_event_source_response_headers_and_item_kinds() -> None:
    async def generate():
        yield "plain"
        yield {"event": "done", "data": "Completed"}
        yield ServerSentEvent(comment="ping")
        yield b"data: already encoded\n\n"  # passed through untouched

    messages = asyncio.run(request(EventSourceResponse(generate()), http_scope()))
    assert headers_of(messages) == {
        b"cache-control": b"no-cache",
        b"x-accel-buffering": b"no",
        b"content-type": b"text/event-stream; charset=utf-8",
    }
    assert body_of(messages) == (
        b"data: plain\n\nevent: done\ndata: Completed\n\n: ping\n\ndata: already encoded\n\n"
    )


def test_event_source_response_lets_the_caller_override_its_headers() -> None:
    response = EventSourceResponse(iter([]), headers={"Cache-Control": "no-store"})
    assert (b"cache-control", b"no-store") in response.raw_headers
    assert (b"cache-control", b"no-cache") not in response.raw_headers


def test_data_that_is_not_text_is_sent_as_its_str() -> None:
    assert ServerSentEvent(data=42).encode() == b"data: 42\n\n"

    async def generate():
        yield {"data": 1.5, "event": "number"}

    messages = asyncio.run(request(EventSourceResponse(generate()), http_scope()))
    assert body_of(messages) == b"event: number\ndata: 1.5\n\n"


def test_header_names_given_as_bytes_still_override_the_sse_defaults() -> None:
    response = EventSourceResponse(iter([]), headers=[(b"Cache-Control", b"no-store")])
    assert [value for name, value in response.raw_headers if name == b"cache-control"] == [
        b"no-store"
    ]
