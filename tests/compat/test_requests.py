"""What Starlette's request tests check, for the ``Request`` this library claims
("endpoints move here by changing one import"): the same names giving the same
values, or a documented difference (docs/differences.rst)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import Request as StarletteRequest

from asgi_stream import HTTPException, NoMatchFound, Request, Router, StreamingResponse
from asgi_stream.request import MAX_BODY_SIZE
from tests.asgi import body_of, http_scope, request


def make(headers: list[tuple[bytes, bytes]] | None = None, **scope: Any) -> Request:
    base = http_scope("GET", "/items/5", b"a=1&a=2&b=%20x", headers)
    base.update(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    return Request(base, receive)


def test_url_and_its_parts() -> None:
    url = make().url
    assert url == "http://testserver/items/5?a=1&a=2&b=%20x"
    assert (url.scheme, url.netloc, url.path, url.query) == (
        "http",
        "testserver",
        "/items/5",
        "a=1&a=2&b=%20x",
    )


def test_query_params_read_as_a_multi_mapping_and_print_as_the_query_string() -> None:
    params = make().query_params
    assert params["a"] == "2" and params.getlist("a") == ["1", "2"]
    assert dict(params) == {"a": "2", "b": " x"}
    assert str(params) == "a=1&a=2&b=+x"  # Starlette's urlencode() too


def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    request_ = make([(b"host", b"testserver"), (b"x-tag", b"1"), (b"X-Tag", b"2")])
    assert request_.headers["X-TAG"] == "1"
    assert request_.headers.getlist("x-tag") == ["1", "2"]


def test_client_has_host_and_port_and_is_still_a_tuple() -> None:
    client = make().client
    assert client is not None
    assert (client.host, client.port) == ("127.0.0.1", 50000)
    assert client == ("127.0.0.1", 50000)
    assert make(client=None).client is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("chips=ahoy; vienna=finger", {"chips": "ahoy", "vienna": "finger"}),
        ('greeting="Hello\\054 cookies!"', {"greeting": "Hello, cookies!"}),  # set_cookie's quoting
        ('quoted="a\\"b"', {"quoted": 'a"b'}),
        ("nameless", {"": "nameless"}),  # no "=": a value with an empty name, as browsers keep it
        ("=only-value", {"": "only-value"}),
        ('stray="quote', {"stray": '"quote'}),  # not quoted both ends: as it is
        ("empty=", {"empty": ""}),
        (" ; ;; ", {}),
        ("key:term=value:term", {"key:term": "value:term"}),
        ("a=1; a=2", {"a": "2"}),  # the later wins
        ("eq=a=b=c", {"eq": "a=b=c"}),
        ("  spaced  =  out  ", {"spaced": "out"}),
    ],
)
def test_cookies_are_parsed_as_browsers_send_them(header: str, expected: dict[str, str]) -> None:
    assert make([(b"cookie", header.encode())]).cookies == expected


def body_app(read: str) -> Router:
    router = Router()

    @router.post("/")
    async def endpoint(request_: Request) -> Any:
        if read == "body":
            return {"body": (await request_.body()).decode()}
        if read == "json":
            return await request_.json()
        if read == "form":
            form = await request_.form()
            return {"items": form.multi_items(), "text": str(form)}
        if read == "form-block":  # Starlette's other way, which closes uploads at its end
            async with request_.form() as form:
                return {"items": form.multi_items(), "text": str(form)}
        chunks = [chunk async for chunk in request_.stream()]
        return {"chunks": len(chunks), "body": b"".join(chunks).decode()}

    return router


def post(
    app: Any, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, Any]:
    scope = http_scope("POST", "/", headers=[(b"host", b"testserver"), *(headers or [])])
    messages = asyncio.run(request(app, scope, body))
    return messages[0]["status"], json.loads(body_of(messages))


def test_body_json_and_stream() -> None:
    assert post(body_app("body"), b"abc") == (200, {"body": "abc"})
    assert post(body_app("json"), b'{"a": [1]}') == (200, {"a": [1]})
    assert post(body_app("stream"), b"abc") == (200, {"chunks": 1, "body": "abc"})


def test_a_second_stream_is_an_error_as_in_starlette() -> None:
    """Both raise RuntimeError at the second stream's first step (docs/differences.rst)."""

    async def second_stream(request_: Any) -> type[BaseException] | None:
        assert b"".join([chunk async for chunk in request_.stream()]) == b"abc"
        try:
            await request_.stream().__anext__()
        except RuntimeError as exc:
            return type(exc)
        return None

    def receive_of(parts: list[bytes]) -> Any:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}

        return receive

    async def main() -> list[type[BaseException] | None]:
        return [
            await second_stream(kind(http_scope("POST"), receive_of([b"ab", b"c"])))
            for kind in (Request, StarletteRequest)
        ]

    assert asyncio.run(main()) == [RuntimeError, RuntimeError]


def test_a_stream_read_twice_is_an_error_but_body_then_stream_is_not() -> None:
    async def main() -> None:
        parts = [b"ab", b"c"]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}

        request_ = Request(http_scope("POST"), receive)
        assert [chunk async for chunk in request_.stream()] == [b"ab", b"c"]
        with pytest.raises(RuntimeError, match="already been streamed"):
            await request_.body()

        parts[:] = [b"x"]
        again = Request(http_scope("POST"), receive)
        assert await again.body() == b"x"
        assert [chunk async for chunk in again.stream()] == [b"x"]

    asyncio.run(main())


FORM = [(b"content-type", b"application/x-www-form-urlencoded")]


@pytest.mark.parametrize("read", ["form", "form-block"])
def test_form_reads_an_urlencoded_body(read: str) -> None:
    status, reply = post(body_app(read), b"a=1&a=2&b=%C3%A9+x&empty=", FORM)
    assert status == 200
    assert reply["items"] == [["a", "1"], ["a", "2"], ["b", "é x"], ["empty", ""]]
    assert reply["text"] == "a=1&a=2&b=%C3%A9+x&empty="


@pytest.mark.parametrize(
    "content_type", [b"multipart/form-data; boundary=x", b"application/json", None]
)
def test_form_of_any_other_type_is_a_415_that_says_what_to_do(content_type: bytes | None) -> None:
    headers = [] if content_type is None else [(b"content-type", content_type)]
    status, reply = post(body_app("form"), b"--x--", headers)
    assert status == 415
    assert "request.stream()" in reply["detail"]


@pytest.mark.parametrize("read", ["form", "form-block"])
def test_a_form_that_is_not_utf8_is_a_400(read: str) -> None:
    assert post(body_app(read), b"a=%FF", FORM)[0] == 400


def test_a_declared_body_beyond_the_limit_is_a_413_before_the_stream_starts() -> None:
    """The generator reads the upload; the declared size is refused before the 200."""
    router = Router()
    started = []

    @router.post("/echo")
    async def echo(request_: Request) -> StreamingResponse:
        async def back() -> AsyncIterator[bytes]:
            started.append(True)
            async for chunk in request_.stream():
                yield chunk

        return StreamingResponse(back())

    size = 2 * MAX_BODY_SIZE
    headers = [(b"host", b"t"), (b"content-length", str(size).encode())]
    messages = asyncio.run(request(router, http_scope("POST", "/echo", headers=headers), b"x"))
    assert messages[0]["status"] == 413
    assert json.loads(body_of(messages)) == {"detail": "Request body too large"}
    assert started == []


def test_url_for_gives_the_whole_url_with_the_root_path() -> None:
    router = Router()

    @router.get("/items/{item_id:int}")
    async def item(request_: Request) -> dict[str, str]:
        return {
            "self": str(request_.url_for("item", item_id=7)),
            "other": request_.url_for("files", path="a/b c.txt"),
        }

    @router.get("/files/{path:path}")
    async def files(request_: Request) -> dict[str, str]:
        return {}

    scope = http_scope("GET", "/api/items/1")
    scope["root_path"] = "/api"
    messages = asyncio.run(request(router, scope))
    assert json.loads(body_of(messages)) == {
        "self": "http://testserver/api/items/7",
        "other": "http://testserver/api/files/a/b%20c.txt",
    }


def test_url_for_an_unknown_name_is_no_match_found() -> None:
    request_ = make()
    request_.scope["router"] = Router()
    with pytest.raises(NoMatchFound):
        request_.url_for("nowhere")


def test_url_for_outside_a_router_says_what_is_missing() -> None:
    with pytest.raises(RuntimeError, match="router"):
        make().url_for("anything")


def test_state_lives_in_the_scope() -> None:
    request_ = make()
    request_.state.user = "ada"
    assert request_.scope["state"] == {"user": "ada"}
    with pytest.raises(AttributeError):
        _ = request_.state.missing


def test_is_disconnected_never_waits() -> None:
    async def main() -> tuple[bool, bool]:
        messages = [{"type": "http.disconnect"}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(30)
            raise AssertionError("waited")

        waiting = Request(http_scope(), receive)
        first = await waiting.is_disconnected()
        return first, await waiting.is_disconnected()

    assert asyncio.run(main()) == (True, True)


def test_an_http_exception_keeps_its_headers() -> None:
    error = HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
    assert (error.status_code, error.detail, error.headers) == (
        401,
        "Unauthorized",
        {"WWW-Authenticate": "Bearer"},
    )
