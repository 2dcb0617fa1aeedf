"""Request with Starlette's semantics: url, base_url, cookies, state, is_disconnected(),
stream(), and query parameters and headers as real mappings."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import JSONResponse, Request, Router, StreamingResponse
from tests.asgi import body_of, http_scope, request


def scope_with(**changes: Any) -> dict[str, Any]:
    return {**http_scope("GET", "/items/5", b"a=1&b=%20x"), **changes}


@pytest.mark.parametrize(
    ("path", "root_path"),
    [
        ("/items/5", ""),
        ("/api/items/5", "/api"),  # uvicorn: the root path is in the path
        ("/items/5", "/api"),  # hypercorn: it is not
    ],
)
def test_url_and_base_url_carry_the_root_path_once(path: str, root_path: str) -> None:
    r = Request(scope_with(path=path, root_path=root_path), receive=None)  # type: ignore[arg-type]
    assert r.url == f"http://testserver{root_path}/items/5?a=1&b=%20x"
    assert (r.url.scheme, r.url.hostname, r.url.path, r.url.query) == (
        "http",
        "testserver",
        f"{root_path}/items/5",
        "a=1&b=%20x",
    )
    assert r.base_url == f"http://testserver{root_path}/"


def test_url_without_a_host_header_uses_the_server_address() -> None:
    r = Request(scope_with(headers=[], scheme="https", server=("10.0.0.1", 8443)), receive=None)  # type: ignore[arg-type]
    assert r.url == "https://10.0.0.1:8443/items/5?a=1&b=%20x"
    assert r.url.is_secure and r.url.port == 8443


def test_a_path_with_spaces_is_percent_encoded_in_the_url() -> None:
    r = Request(scope_with(path="/a b/é", query_string=b""), receive=None)  # type: ignore[arg-type]
    assert r.url.path == "/a%20b/%C3%A9"


def test_cookies_are_read_leniently_from_every_cookie_field() -> None:
    headers = [(b"cookie", b'a=1; b="two"; =nameless; c'), (b"cookie", b"d=4; a=5")]
    r = Request(scope_with(headers=headers), receive=None)  # type: ignore[arg-type]
    # A piece without "=" is a value with an empty name, as browsers store it.
    assert r.cookies == {"a": "5", "b": "two", "": "c", "d": "4"}


def test_query_params_and_headers_are_real_mappings() -> None:
    scope = scope_with(
        query_string=b"a=1&a=2&b=x", headers=[(b"X-One", b"1"), (b"x-one", b"2"), (b"b", b"3")]
    )
    r = Request(scope, receive=None)  # type: ignore[arg-type]
    qp = r.query_params
    assert qp["a"] == "2" and qp.getlist("a") == ["1", "2"]
    assert dict(qp) == {"a": "2", "b": "x"}
    assert (list(qp), len(qp), "b" in qp, qp.get("z", "d")) == (["a", "b"], 2, True, "d")
    with pytest.raises(KeyError):
        qp["z"]
    assert dict(r.headers) == {"x-one": "1", "b": "3"}
    assert r.headers.getlist("X-ONE") == ["1", "2"]


def test_state_is_shared_through_the_scope() -> None:
    scope = scope_with(state={"db": "from lifespan"})
    first = Request(scope, receive=None)  # type: ignore[arg-type]
    first.state.user = "ada"
    second = Request(scope, receive=None)  # type: ignore[arg-type]
    assert (second.state.db, second.state.user) == ("from lifespan", "ada")
    with pytest.raises(AttributeError):
        second.state.missing  # noqa: B018


def test_path_params_are_the_converted_values() -> None:
    router = Router()

    @router.get("/items/{item_id:int}")
    async def item(request: Request) -> dict[str, Any]:
        return {"next": request.path_params["item_id"] + 1}

    assert body_of(asyncio.run(request(router, http_scope("GET", "/items/5")))) == b'{"next":6}'


# is_disconnected()


def test_is_disconnected_does_not_wait_and_keeps_a_body_it_looked_at() -> None:
    router = Router()

    @router.post("/peek")
    async def peek(request: Request) -> JSONResponse:
        before = await request.is_disconnected()  # the body is waiting: looked at, kept
        return JSONResponse({"before": before, "body": (await request.body()).decode()})

    messages = asyncio.run(request(router, http_scope("POST", "/peek"), b"hello"))
    assert json.loads(body_of(messages)) == {"before": False, "body": "hello"}


def test_is_disconnected_returns_at_once_when_nothing_came() -> None:
    async def main() -> bool:
        async def receive() -> dict[str, Any]:
            await asyncio.sleep(30)
            return {"type": "http.disconnect"}

        return await asyncio.wait_for(Request(http_scope(), receive).is_disconnected(), 1)

    assert asyncio.run(main()) is False


def test_a_disconnect_the_endpoint_saw_still_stops_the_stream() -> None:
    # The server sends http.disconnect once. The endpoint sees it with
    # is_disconnected() during its set-up, and returns a stream all the same:
    # the response's watcher must learn of it too, or the stream runs forever.
    # (It learns before the generator starts, so the generator is closed
    # unstarted, as for HEAD, or, had it started, closed at once.)
    router = Router()
    finally_ran = asyncio.Event()
    generators: list[AsyncIterator[bytes]] = []

    @router.get("/slow-setup")
    async def slow_setup(request: Request) -> StreamingResponse:
        while not await request.is_disconnected():
            await asyncio.sleep(0.001)  # set-up work

        async def endless() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.001)
            finally:
                finally_ran.set()

        generators.append(endless())
        return StreamingResponse(generators[0])

    async def main() -> None:
        comm = ApplicationCommunicator(router, http_scope("GET", "/slow-setup"))
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(2)
        assert not comm.future.cancelled()
        assert comm.future.exception() is None
        assert generators[0].ag_frame is None or finally_ran.is_set()  # type: ignore[attr-defined]

    asyncio.run(main())


def test_what_is_disconnected_keeps_counts_against_max_body_size() -> None:
    # An endpoint that polls is_disconnected() through long work, while the
    # client uploads 16 times the limit: the pieces it looked at may not pile
    # up beyond the limit, and reading the body afterwards is the 413.
    limit, piece, pieces = 64 * 1024, 16 * 1024, 64
    router = Router(max_body_size=limit)
    held: list[int] = []

    @router.post("/work")
    async def work(request: Request) -> dict[str, int]:
        for _ in range(pieces + 8):  # long work, stopping if the client leaves
            assert not await request.is_disconnected()
        held.append(tracemalloc.get_traced_memory()[0])
        return {"size": len(await request.body())}

    async def main() -> list[dict[str, Any]]:
        comm = ApplicationCommunicator(router, http_scope("POST", "/work"))
        for n in range(pieces):  # a new bytes object each time, as a server makes them
            more = n < pieces - 1
            await comm.send_input({"type": "http.request", "body": bytes(piece), "more_body": more})
        messages = [await comm.receive_output(1), await comm.receive_output(1)]
        await comm.wait(1)
        return messages

    tracemalloc.start()
    try:
        messages = asyncio.run(main())
    finally:
        tracemalloc.stop()
    assert messages[0]["status"] == 413
    assert json.loads(body_of(messages)) == {"detail": "Request body too large"}
    assert held[0] < 2 * limit  # not the megabyte that was sent


# stream()


def test_stream_yields_each_chunk_as_it_arrives() -> None:
    router = Router()
    seen: list[bytes] = []
    first_seen = asyncio.Event()

    @router.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        async for chunk in request.stream():
            seen.append(chunk)
            first_seen.set()
        return {"chunks": len(seen)}

    async def main() -> list[dict[str, Any]]:
        comm = ApplicationCommunicator(router, http_scope("POST", "/upload"))
        await comm.send_input({"type": "http.request", "body": b"one", "more_body": True})
        await asyncio.wait_for(first_seen.wait(), 1)  # before the second chunk is even sent
        assert seen == [b"one"]
        await comm.send_input({"type": "http.request", "body": b"two", "more_body": False})
        messages = [await comm.receive_output(1), await comm.receive_output(1)]
        await comm.wait(1)
        return messages

    assert body_of(asyncio.run(main())) == b'{"chunks":2}'
    assert seen == [b"one", b"two"]


def test_stream_stops_at_max_body_size_with_413() -> None:
    router = Router(max_body_size=4)

    @router.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": sum([len(chunk) async for chunk in request.stream()])}

    async def main() -> int:
        comm = ApplicationCommunicator(router, http_scope("POST", "/upload"))
        await comm.send_input({"type": "http.request", "body": b"abc", "more_body": True})
        await comm.send_input({"type": "http.request", "body": b"def", "more_body": True})
        status: int = (await comm.receive_output(1))["status"]
        await comm.wait(1)
        return status

    assert asyncio.run(main()) == 413


def echo_router(finally_ran: asyncio.Event | None = None) -> Router:
    """``POST /echo`` streams the upload back upper-cased, reading it as it streams."""
    router = Router()

    @router.post("/echo")
    async def echo(request: Request) -> StreamingResponse:
        async def upper() -> AsyncIterator[bytes]:
            try:
                async for chunk in request.stream():
                    yield chunk.upper()
            finally:
                if finally_ran is not None:
                    finally_ran.set()

        return StreamingResponse(upper())

    return router


def test_a_generator_reads_the_upload_while_the_response_streams() -> None:
    # The response's disconnect watcher waits on receive() all along; it must
    # not take the pieces of the body the generator is reading.
    async def main() -> list[dict[str, Any]]:
        comm = ApplicationCommunicator(echo_router(), http_scope("POST", "/echo"))
        for piece in (b"one-", b"two-", b"three-"):
            await comm.send_input({"type": "http.request", "body": piece, "more_body": True})
            await asyncio.sleep(0.01)  # the response is streaming now
        await comm.send_input({"type": "http.request", "body": b"four", "more_body": False})
        messages = []
        while not messages or messages[-1].get("more_body", True):
            messages.append(await comm.receive_output(1))
        await comm.wait(1)
        return messages

    assert body_of(asyncio.run(main())) == b"ONE-TWO-THREE-FOUR"


def test_a_client_leaving_mid_upload_stops_the_echo_without_an_error() -> None:
    finally_ran = asyncio.Event()

    async def main() -> None:
        comm = ApplicationCommunicator(echo_router(finally_ran), http_scope("POST", "/echo"))
        await comm.send_input({"type": "http.request", "body": b"one", "more_body": True})
        assert (await comm.receive_output(1))["type"] == "http.response.start"
        assert (await comm.receive_output(1))["body"] == b"ONE"
        await comm.send_input({"type": "http.disconnect"})
        await asyncio.wait_for(finally_ran.wait(), 1)
        await comm.wait(1)  # raises what the app raised: nothing may escape
        assert await comm.receive_nothing()  # and no end of body: the stream was cut

    asyncio.run(main())


def test_body_after_stream_is_an_error_and_stream_after_body_gives_the_body() -> None:
    async def main() -> tuple[bytes, list[bytes]]:
        queue = [{"type": "http.request", "body": b"abc", "more_body": False}]

        async def receive() -> dict[str, Any]:
            return queue.pop(0)

        streamed = Request(http_scope("POST"), receive)
        chunks = [chunk async for chunk in streamed.stream()]
        with pytest.raises(RuntimeError):
            await streamed.body()
        queue.append({"type": "http.request", "body": b"xyz", "more_body": False})
        read = Request(http_scope("POST"), receive)
        body = await read.body()
        return body, [chunk async for chunk in read.stream()] + chunks

    assert asyncio.run(main()) == (b"xyz", [b"xyz", b"abc"])


def test_a_huge_or_non_ascii_content_length_is_not_a_500() -> None:
    router = Router(max_body_size=4)

    @router.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    for declared, status in [(b"9" * 5000, 413), ("²".encode("latin-1"), 200)]:
        scope = http_scope("POST", "/upload", headers=[(b"content-length", declared)])
        assert asyncio.run(request(router, scope, b"ab"))[0]["status"] == status
