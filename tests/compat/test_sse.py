"""What sse-starlette's own tests check of ``ServerSentEvent`` and
``EventSourceResponse``, for the parts this library claims (docs/migrating.rst).

Where the bytes differ on purpose (LF by default, the order of the fields),
the expected bytes are ours, and docs/differences.rst says why.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

import fastapi.sse
import pydantic
import pytest
import sse_starlette

from asgi_stream import BackgroundTask, ConnectionHeaderWarning, EventSourceResponse
from asgi_stream import ServerSentEvent as Event
from asgi_stream.testing import stream
from tests.asgi import body_of, http_scope, request

SEPARATORS = {"LF": "\n", "CR": "\r", "CRLF": "\r\n"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"data": "foo"}, "data: foo{0}{0}"),
        ({"data": "foo", "event": "bar"}, "event: bar{0}data: foo{0}{0}"),
        ({"data": "foo", "event": "bar", "id": "xyz"}, "event: bar{0}id: xyz{0}data: foo{0}{0}"),
        (
            {"data": "foo", "event": "bar", "id": "xyz", "retry": 1},
            "event: bar{0}id: xyz{0}retry: 1{0}data: foo{0}{0}",
        ),
        ({"comment": "a comment"}, ": a comment{0}{0}"),
        ({"data": "foo", "comment": "a comment"}, ": a comment{0}data: foo{0}{0}"),
        ({"data": 5}, "data: 5{0}{0}"),  # not text: its str()
    ],
)
@pytest.mark.parametrize("sep", SEPARATORS.values(), ids=SEPARATORS.keys())
def test_an_event_encodes_each_field_with_its_sep(
    fields: dict[str, Any], expected: str, sep: str
) -> None:
    assert Event(**fields, sep=sep).encode() == expected.format(sep).encode()


def test_an_event_without_sep_ends_its_lines_with_lf() -> None:
    assert Event("foo", event="bar").encode() == b"event: bar\ndata: foo\n\n"


@pytest.mark.parametrize("line_sep", SEPARATORS.values(), ids=SEPARATORS.keys())
@pytest.mark.parametrize("sep", SEPARATORS.values(), ids=SEPARATORS.keys())
def test_multiline_data_is_one_data_line_per_line_whatever_the_line_breaks(
    sep: str, line_sep: str
) -> None:
    data = line_sep.join(["foo", "bar", "xyz"])
    encoded = Event(data, event="event", sep=sep).encode()
    assert encoded == f"event: event{sep}data: foo{sep}data: bar{sep}data: xyz{sep}{sep}".encode()


def test_a_sep_that_is_no_line_ending_is_refused() -> None:
    with pytest.raises(ValueError, match="sep"):
        Event("foo", sep="\n\n")


def test_retry_must_be_an_int_where_the_event_is_made() -> None:
    assert Event(0, retry=1).retry == 1
    with pytest.raises(TypeError, match="retry"):
        Event(0, retry="ten")  # type: ignore[arg-type]


def run(response: Any) -> bytes:
    return body_of(asyncio.run(request(response, http_scope())))


async def numbers(kind: str) -> AsyncIterator[Any]:
    for n in range(1, 4):
        await asyncio.sleep(0)
        yield n if kind == "int" else {"data": n} if kind == "dict" else {"data": n, "event": "m"}


@pytest.mark.parametrize(
    ("kind", "sep", "expected"),
    [
        ("int", "\r\n", b"data: 1\r\n\r\n"),
        ("dict", "\r\n", b"data: 1\r\n\r\n"),
        ("event", "\r\n", b"event: m\r\ndata: 1\r\n\r\n"),
        ("event", "\r", b"event: m\rdata: 1\r\r"),
    ],
)
def test_the_response_writes_every_item_with_its_sep(kind: str, sep: str, expected: bytes) -> None:
    assert run(EventSourceResponse(numbers(kind), sep=sep)).startswith(expected)


def test_an_events_own_sep_wins_over_the_responses() -> None:
    events = [Event("a", sep="\r"), {"data": "b", "sep": "\r\n"}, "c"]
    assert (
        run(EventSourceResponse(iter(events), sep="\n")) == b"data: a\r\rdata: b\r\n\r\ndata: c\n\n"
    )


def test_memoryview_and_bytes_items_pass_through_untouched() -> None:
    items = [memoryview(b"data: a\r\n\r\n"), b"data: b\n\n"]
    assert run(EventSourceResponse(iter(items), sep="\r")) == b"data: a\r\n\r\ndata: b\n\n"


def test_headers_content_type_once_with_charset_and_the_callers_win() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = EventSourceResponse(
            iter(()),
            headers={"x-accel-buffering": "yes", "connection": "close", "x-custom": "1"},
        )
    headers = [(name.decode(), value.decode()) for name, value in response.raw_headers]
    assert [value for name, value in headers if name == "content-type"] == [
        "text/event-stream; charset=utf-8"
    ]
    assert dict(headers)["x-accel-buffering"] == "yes"  # sse-starlette keeps "no"
    assert dict(headers)["cache-control"] == "no-cache"
    assert dict(headers)["x-custom"] == "1"
    # Connection is the server's to send (sse-starlette sends keep-alive).
    assert "connection" not in dict(headers)
    assert any(issubclass(w.category, ConnectionHeaderWarning) for w in caught)


def test_default_ping_interval_of_a_subclass_is_honoured() -> None:
    class Pinging(EventSourceResponse):
        DEFAULT_PING_INTERVAL = 0.05

    async def silent() -> AsyncIterator[str]:
        await asyncio.sleep(30)
        yield "never"

    async def main() -> bytes:
        async with stream(Pinging(silent())) as response:
            return await response.read_chunk()

    assert asyncio.run(main()) == b": heartbeat\n\n"


def test_the_default_ping_interval_is_none_so_no_ping() -> None:
    assert EventSourceResponse.DEFAULT_PING_INTERVAL is None


@pytest.mark.parametrize("name", ["data_sender_callable", "client_close_handler_callable"])
def test_sse_starlettes_callbacks_are_refused_with_the_recipe(name: str) -> None:
    async def callback() -> None:
        pass

    with pytest.raises(TypeError, match=r"migrating\.rst"):
        EventSourceResponse(iter(()), **{name: callback})


def test_the_background_task_runs_after_a_disconnect() -> None:
    ran = asyncio.Event()

    async def endless() -> AsyncIterator[str]:
        while True:
            yield "tick"
            await asyncio.sleep(0.01)

    async def main() -> None:
        response = EventSourceResponse(endless(), background=BackgroundTask(ran.set))
        async with stream(response) as started:
            await started.read_chunk()
        assert ran.is_set()

    asyncio.run(main())


def test_sse_starlettes_events_are_sent_as_events_with_the_responses_sep() -> None:
    items = [
        sse_starlette.ServerSentEvent("one", event="tick", id="1", retry=10, comment="c"),
        sse_starlette.JSONServerSentEvent({"n": 2, "word": "zwei"}),
        sse_starlette.ServerSentEvent(3),  # data that is not text: its str(), as there
    ]
    assert run(EventSourceResponse(iter(items), sep="\r\n")) == (
        b": c\r\nevent: tick\r\nid: 1\r\nretry: 10\r\ndata: one\r\n\r\n"
        b'data: {"n":2,"word":"zwei"}\r\n\r\n'
        b"data: 3\r\n\r\n"
    )


@pytest.mark.parametrize("field", ["event", "id"])
def test_a_line_break_in_an_sse_starlette_event_field_is_refused_not_sent(field: str) -> None:
    """sse-starlette deletes it; we refuse it, as for our own events."""
    item = sse_starlette.ServerSentEvent("x", **{field: "a\ndata: injected"})
    with pytest.raises(ValueError, match="CR"):
        EventSourceResponse(iter(())).encode_chunk(item)


def test_fastapis_events_in_our_response_send_json_data_and_raw_data() -> None:
    items = [
        fastapi.sse.ServerSentEvent(data={"a": [1, 2]}, event="json", id="5"),
        fastapi.sse.ServerSentEvent(data="quoted"),
        fastapi.sse.ServerSentEvent(raw_data="<b>as it is</b>\nsecond line"),
        fastapi.sse.ServerSentEvent(comment="only"),
    ]
    assert run(EventSourceResponse(iter(items))) == (
        b'event: json\nid: 5\ndata: {"a": [1, 2]}\n\n'
        b'data: "quoted"\n\n'
        b"data: <b>as it is</b>\ndata: second line\n\n"
        b": only\n\n"
    )


def test_a_pydantic_model_in_our_response_is_a_type_error_that_says_how() -> None:
    """Outside FastAPI's response_class=, nobody serializes a model for us."""

    class Reading(pydantic.BaseModel):
        value: int

    response = EventSourceResponse(iter(()))
    with pytest.raises(TypeError, match="model_dump_json"):
        response.encode_chunk(Reading(value=1))
    assert response.encode_chunk(Reading(value=1).model_dump_json()) == b'data: {"value":1}\n\n'
