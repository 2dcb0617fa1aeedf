"""Arguments that would misbehave later are refused where they are given.

A ``str`` where a collection of names is expected iterates as its letters
(``methods="GET"`` would be the methods G, E and T); a status or a timeout of
the wrong type fails only once a request comes, far from the mistake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import pytest

from asgi_stream import (
    JSONResponse,
    MemoryEventLog,
    Response,
    ResumableEventSourceResponse,
    Router,
    StreamingResponse,
)
from tests.asgi import body_of, headers_of, http_scope, request


async def chunks() -> AsyncIterator[bytes]:
    yield b"x"


def endpoint(request: Any) -> dict[str, bool]:
    return {"ok": True}


@pytest.mark.parametrize("methods", ["GET", b"GET"])
def test_methods_as_one_string_is_a_type_error(methods: Any) -> None:
    router = Router()
    with pytest.raises(TypeError, match="methods"):
        router.add("/x", endpoint, methods=methods)
    with pytest.raises(TypeError, match="methods"):
        router.route("/x", methods=methods)
    assert not router.routes


@pytest.mark.parametrize("method", ["POST\r\nX-Evil: 1", "GET POST", "", "GÉT"])
def test_a_method_that_is_not_an_http_token_is_a_value_error(method: str) -> None:
    with pytest.raises(ValueError, match="method"):
        Router().add("/y", endpoint, methods=[method])


def test_a_method_that_is_not_a_str_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="method"):
        Router().add("/y", endpoint, methods=[b"GET"])  # type: ignore[list-item]


def test_no_methods_at_all_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="method"):
        Router().add("/y", endpoint, methods=[])


def test_valid_methods_are_served_and_named_in_allow() -> None:
    router = Router()
    router.add("/x", endpoint, methods=["get", "PROPFIND"])
    assert asyncio.run(request(router, http_scope("PROPFIND", "/x")))[0]["status"] == 200
    messages = asyncio.run(request(router, http_scope("POST", "/x")))
    assert messages[0]["status"] == 405
    assert headers_of(messages)[b"allow"] == b"GET, HEAD, PROPFIND"


def test_final_events_as_one_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="final_events"):
        ResumableEventSourceResponse(MemoryEventLog(), "job", final_events="done")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="final_events"):
        ResumableEventSourceResponse(MemoryEventLog(), "job", final_events=[1])  # type: ignore[list-item]


def test_final_events_as_a_list_ends_the_stream_and_a_reconnect_gets_204() -> None:
    async def main() -> list[dict[str, Any]]:
        log = MemoryEventLog()
        done = await log.append("job", "finished", event="done")
        response = ResumableEventSourceResponse(log, "job", done, final_events=["done"])
        return await request(response, http_scope())

    assert asyncio.run(main())[0]["status"] == 204


@pytest.mark.parametrize(
    ("status_code", "error"),
    [
        ("200", TypeError),
        (200.0, TypeError),
        (True, TypeError),
        (1200, ValueError),
        (99, ValueError),
    ],
)
@pytest.mark.parametrize("kind", [Response, JSONResponse, StreamingResponse])
def test_a_bad_status_code_is_refused_at_construction(
    kind: type[Response], status_code: Any, error: type[Exception]
) -> None:
    content = chunks() if kind is StreamingResponse else None
    with pytest.raises(error, match="status_code"):
        kind(content, status_code=status_code)


def test_an_http_status_is_an_int_and_is_sent() -> None:
    response = StreamingResponse(chunks(), status_code=HTTPStatus.CREATED)
    messages = asyncio.run(request(response, http_scope()))
    assert messages[0]["status"] == 201
    assert body_of(messages) == b"x"


@pytest.mark.parametrize(
    ("send_timeout", "error"),
    [
        ("5", TypeError),
        (True, TypeError),
        (0, ValueError),
        (-1, ValueError),
        (float("inf"), ValueError),
        (float("nan"), ValueError),
    ],
)
def test_a_bad_send_timeout_is_refused_at_construction(
    send_timeout: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="send_timeout"):
        StreamingResponse(chunks(), send_timeout=send_timeout)
