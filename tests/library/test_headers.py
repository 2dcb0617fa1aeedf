"""Response headers: one validator on every path in, and the mutable ``response.headers`` view.

Every way a value can become a response header (``headers=``, ``media_type``,
``charset``, a write to ``response.headers``, an ``HTTPException``'s headers)
is tried with hostile text. Each must either refuse it with ``ValueError``
where it is given, or carry it intact; and on the wire (ApplicationCommunicator)
no ``http.response.start`` ever holds a refused value.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_stream import (
    BackgroundTask,
    ConnectionHeaderWarning,
    EventSourceResponse,
    HTTPException,
    JSONResponse,
    Response,
    Router,
    StreamingResponse,
)
from asgi_stream.headers import MutableHeaders
from tests.asgi import body_of, http_scope, request

# Text built from what ends a header line, and from any character at all.
hostile = st.lists(
    st.sampled_from(["\r", "\n", "\r\n", "\0", "\x7f", "\x1b", ":", " ", "\t", "x-evil: 1", "é"])
    | st.characters(exclude_categories=["Cs"]),
    max_size=10,
).map("".join)


def must_refuse_value(value: str) -> bool:
    """Independently of the library: whether ``value`` may not be a header value."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return True
    return any((c < 0x20 and c != 0x09) or c == 0x7F for c in raw)


async def empty() -> Any:
    return
    yield


class Lines(Response):
    media_type = "text/plain"


# Each path into a header, as a function of the hostile value; each returns the
# raw headers of the response it built (or raises ValueError).
def via_media_type(value: str) -> list[tuple[bytes, bytes]]:
    return StreamingResponse(empty(), media_type="text/x-" + value).raw_headers


def via_charset(value: str) -> list[tuple[bytes, bytes]]:
    class Charset(Lines):
        charset = value

    return Charset(b"").raw_headers


def via_headers_argument(value: str) -> list[tuple[bytes, bytes]]:
    return Response(headers={"x-test": value}).raw_headers


def via_the_headers_view(value: str) -> list[tuple[bytes, bytes]]:
    response = Response()
    response.headers["x-test"] = value
    return response.raw_headers


def via_append(value: str) -> list[tuple[bytes, bytes]]:
    response = JSONResponse({})
    response.headers.append("x-test", value)
    return response.raw_headers


def via_http_exception(value: str) -> list[tuple[bytes, bytes]]:
    exc = HTTPException(503, headers={"Retry-After": value})
    return JSONResponse({}, exc.status_code, exc.headers).raw_headers


PATHS = [
    via_media_type,
    via_charset,
    via_headers_argument,
    via_the_headers_view,
    via_append,
    via_http_exception,
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("evil", ["a\r\nx-evil: 1", "a\nx-evil: 1", "a\rb", "a\0b", "a\x7fb", "模"])
def test_every_path_into_a_header_refuses_a_hostile_value(
    path: Callable[[str], Any], evil: str
) -> None:
    with pytest.raises(ValueError, match=r"header|charset"):
        path(evil)


@pytest.mark.parametrize("path", PATHS)
@given(value=hostile)
def test_every_path_passes_a_value_intact_or_refuses_it(
    path: Callable[[str], list[tuple[bytes, bytes]]], value: str
) -> None:
    try:
        raw = path(value)
    except ValueError:
        # The charset path also refuses what is not a codec's name.
        assert must_refuse_value(value) or path is via_charset
        return
    assert not must_refuse_value(value)
    assert all(b"\r" not in v and b"\n" not in v for _, v in raw)
    assert any(value.encode("latin-1") in v for _, v in raw)


def test_http_exception_headers_are_refused_where_the_exception_is_raised() -> None:
    with pytest.raises(ValueError, match="Retry-After"):
        HTTPException(503, headers={"Retry-After": "1\r\nX-Evil: 1"})


def test_the_media_type_of_the_issue_is_refused_when_the_response_is_built() -> None:
    with pytest.raises(ValueError, match="content-type"):
        StreamingResponse(empty(), media_type="text/plain\r\nX-Evil: 1")
    with pytest.raises(ValueError, match="content-type"):
        EventSourceResponse(empty(), media_type="text/event-stream\nX-Evil: 1")


def test_a_charset_that_is_no_codec_is_refused_when_the_response_is_built() -> None:
    class Unknown(StreamingResponse):
        charset = "no-such-codec"

    with pytest.raises(ValueError, match="charset"):
        Unknown(empty(), media_type="text/plain")


def test_a_header_name_written_to_the_view_must_be_a_token() -> None:
    response = Response()
    with pytest.raises(ValueError, match="token"):
        response.headers["x-evil\r\nset-cookie"] = "a"
    assert response.raw_headers == [(b"content-length", b"0")]


# On the wire: whatever the endpoint tried, the start message never holds it.

EVIL = "text/plain\r\nX-Evil: 1"


def evil_app() -> Router:
    router = Router()

    @router.get("/media-type")
    async def media_type(request: Any) -> Any:
        return StreamingResponse(empty(), media_type=EVIL)

    @router.get("/exception")
    async def exception(request: Any) -> Any:
        raise HTTPException(429, headers={"Retry-After": "1\r\nX-Evil: 1"})

    @router.get("/view")
    async def view(request: Any) -> Any:
        response = StreamingResponse(empty())
        response.headers["x-note"] = "1\nX-Evil: 1"
        return response

    return router


@pytest.mark.parametrize("path", ["/media-type", "/exception", "/view"])
def test_a_hostile_header_never_reaches_the_server(path: str, caplog: Any) -> None:
    messages = asyncio.run(request(evil_app(), http_scope(path=path)))
    starts = [m for m in messages if m["type"] == "http.response.start"]
    assert len(starts) == 1
    assert starts[0]["status"] == 500  # the ValueError, where the header was given
    for name, value in starts[0]["headers"]:
        assert b"evil" not in name.lower() and b"evil" not in value.lower()
    assert "ValueError" in caplog.text


# The view: Starlette's MutableHeaders semantics, over raw_headers.


def test_the_view_is_case_insensitive_and_keeps_raw_headers_in_step() -> None:
    response = Response(b"hi", headers=[("Set-Cookie", "a=1"), ("set-cookie", "b=2")])
    headers = response.headers
    assert headers["SET-COOKIE"] == "a=1"
    assert headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert headers.get("missing") is None
    assert "Content-Length" in headers
    assert list(headers) == ["set-cookie", "content-length"]
    assert len(headers) == 2
    assert headers.items() == [
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("content-length", "2"),
    ]

    headers["X-Request-Id"] = "42"
    assert response.raw_headers[-1] == (b"x-request-id", b"42")
    assert response.headers["x-request-id"] == "42"


def test_setitem_replaces_every_value_of_the_name_in_place_of_the_first() -> None:
    response = Response(headers=[("a", "1"), ("b", "2"), ("A", "3")])
    response.headers["A"] = "new"
    assert response.raw_headers == [(b"a", b"new"), (b"b", b"2"), (b"content-length", b"0")]


def test_delitem_removes_every_value_and_a_missing_name_is_no_error() -> None:
    response = Response(headers=[("a", "1"), ("b", "2"), ("a", "3")])
    del response.headers["A"]
    del response.headers["never-there"]  # as in Starlette
    assert response.raw_headers == [(b"b", b"2"), (b"content-length", b"0")]
    assert response.headers.pop("b") == "2"
    assert response.headers.pop("b", "gone") == "gone"


def test_append_setdefault_and_update() -> None:
    response = Response()
    headers = response.headers
    headers.append("Vary", "Accept")
    headers.append("vary", "Origin")
    assert headers.getlist("vary") == ["Accept", "Origin"]
    assert headers.setdefault("Vary", "other") == "Accept"
    assert headers.setdefault("X-New", "yes") == "yes"
    headers.update({"x-new": "replaced", "X-Other": "1"})
    headers.update([("x-third", "3")])
    assert response.raw_headers[1:] == [
        (b"vary", b"Accept"),
        (b"vary", b"Origin"),
        (b"x-new", b"replaced"),
        (b"x-other", b"1"),
        (b"x-third", b"3"),
    ]


def test_a_connection_specific_header_written_to_the_view_is_dropped_with_a_warning() -> None:
    response = Response()
    with pytest.warns(ConnectionHeaderWarning) as caught:
        response.headers["Connection"] = "close"
    assert caught[0].filename == __file__
    assert response.raw_headers == [(b"content-length", b"0")]


def test_the_view_follows_a_raw_headers_list_that_was_replaced() -> None:
    response = Response()
    response.raw_headers = [(b"x-a", b"1")]
    response.headers["x-b"] = "2"
    assert response.raw_headers == [(b"x-a", b"1"), (b"x-b", b"2")]


def test_headers_set_on_the_view_are_sent() -> None:
    async def generate() -> Any:
        yield b"body"

    response = StreamingResponse(generate(), media_type="text/plain")
    response.headers["Content-Type"] = "text/csv"
    response.headers["X-Request-Id"] = "42"
    response.headers.append("Set-Cookie", "a=1")
    response.headers.append("Set-Cookie", "b=2")
    messages = asyncio.run(request(response, http_scope()))
    assert messages[0]["headers"] == [
        (b"content-type", b"text/csv"),
        (b"x-request-id", b"42"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert body_of(messages) == b"body"


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h.__setitem__("x-late", "1"),
        lambda h: h.append("x-late", "1"),
        lambda h: h.__delitem__("content-type"),
        lambda h: h.update({"x-late": "1"}),
    ],
)
def test_a_change_after_the_response_started_is_an_error(change: Callable[[Any], None]) -> None:
    errors: list[BaseException] = []
    sent: list[dict[str, Any]] = []

    async def generate() -> Any:
        try:
            change(response.headers)
        except RuntimeError as exc:
            errors.append(exc)
        yield b"x"

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    response = StreamingResponse(generate(), media_type="text/plain")
    asyncio.run(response(http_scope(), receive, send))
    assert len(errors) == 1
    assert "sent" in str(errors[0])
    assert sent[0]["headers"] == [(b"content-type", b"text/plain; charset=utf-8")]


def test_a_complete_response_cannot_change_its_headers_once_sent() -> None:
    response = Response(b"x")
    asyncio.run(request(response, http_scope()))
    with pytest.raises(RuntimeError):
        response.headers["x-late"] = "1"
    assert response.headers["content-length"] == "1"  # reading is still fine


def test_mutable_headers_on_a_list_of_ones_own() -> None:
    raw: list[tuple[bytes, bytes]] = []
    headers = MutableHeaders(raw)
    headers["A"] = "1"
    assert raw == [(b"a", b"1")]
    assert repr(headers) == "MutableHeaders([('a', '1')])"


# Response bodies: only what is a body.


@pytest.mark.parametrize("content", [5, [1, 2], 1.5, {"a": 1}, object()])
def test_a_response_body_of_another_type_is_a_type_error(content: object) -> None:
    with pytest.raises(TypeError, match="bytes, bytearray, memoryview, str or None"):
        Response(content)


@pytest.mark.parametrize(
    "content", [b"ab", bytearray(b"ab"), memoryview(b"ab"), "ab", None], ids=repr
)
def test_a_response_body_may_be_bytes_like_str_or_none(content: object) -> None:
    messages = asyncio.run(request(Response(content), http_scope()))
    assert body_of(messages) == (b"" if content is None else b"ab")


# Single use.


def test_a_streaming_response_sent_twice_refuses_the_second_use_before_sending() -> None:
    ran: list[int] = []

    async def generate() -> Any:
        yield b"once"

    response = StreamingResponse(generate(), background=BackgroundTask(ran.append, 1))
    assert body_of(asyncio.run(request(response, http_scope()))) == b"once"
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    with pytest.raises(RuntimeError, match="already been sent"):
        asyncio.run(response(http_scope(), receive, send))
    assert sent == []
    assert ran == [1]  # the background task did not run again


def test_a_streaming_response_used_concurrently_refuses_the_second_use() -> None:
    async def generate() -> Any:
        yield b"a"
        await asyncio.sleep(0.05)
        yield b"b"

    response = EventSourceResponse(generate())
    sent: list[list[dict[str, Any]]] = [[], []]

    async def use(i: int) -> None:
        async def send(message: dict[str, Any]) -> None:
            sent[i].append(message)

        async def receive() -> dict[str, Any]:
            await asyncio.sleep(30)
            return {"type": "http.disconnect"}

        await response(http_scope(), receive, send)

    async def both() -> list[Any]:
        return await asyncio.gather(use(0), use(1), return_exceptions=True)

    first, second = asyncio.run(both())
    assert first is None
    assert b"".join(m.get("body", b"") for m in sent[0]) == b"ab"
    assert isinstance(second, RuntimeError)
    assert "already been sent" in str(second)
    assert sent[1] == []  # refused before anything was sent


def test_a_complete_response_may_be_sent_again() -> None:
    # As in Starlette: module-level responses of a complete body are common.
    response = JSONResponse({"ok": True})
    for _ in range(2):
        assert body_of(asyncio.run(request(response, http_scope()))) == b'{"ok":true}'


def test_no_warning_when_the_view_is_only_read() -> None:
    response = Response(b"x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dict(response.headers) == {"content-length": "1"}
