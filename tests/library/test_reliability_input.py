"""Hostile input: every request a client can make is answered with a clear 4xx, or refused safely.

On the wire, through real uvicorn and hypercorn processes: malformed and
oversized query strings, bad percent-encoding, paths that are not UTF-8,
unknown methods, a 10 MB body for ``/chat-stream``, an invalid bool, a
websocket handshake. Where the app answers, the answer is FastAPI's JSON
error; some requests never reach the app, because the server refuses them
first (uvicorn's httptools parser knows only the standard methods, and both
servers refuse raw bytes that are not ASCII in the request target): those are
the server's plain 400, still no traceback. Then, without a server, a scope of
an unknown type, and hypothesis throwing random queries, paths and methods at
the catalogue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from asgi_stream.catalogue import Settings, create_app
from asgi_stream.shutdown import GracefulShutdown
from asgi_stream.tools.rawhttp import fetch, read_body, read_head
from tests.asgi import http_scope, request
from tests.serving import ServerProcess

pytestmark = pytest.mark.server

SERVER_400 = "the server's 400"  # refused before the app: a plain 400, no JSON

# (name, request line, status on uvicorn, status on hypercorn)
CASES = [
    ("invalid bool", b"GET /conditional-stream?stream=maybe&tick=0.001", 422, 422),
    ("empty pairs, blank bool", b"GET /conditional-stream?=&&%&stream=&tick=0.001", 422, 422),
    ("bad percent-encoding", b"GET /stream?tick=%zz", 422, 422),
    ("query not UTF-8", b"GET /stream?tick=%ff%fe", 400, 400),
    ("oversized query", b"GET /stream?" + b"a=1&" * 3000, 414, 414),
    ("too many fields", b"GET /stream?" + b"a&" * 2000, 400, 400),
    ("infinite number", b"GET /stream?tick=1e999", 422, 422),
    ("path not UTF-8", b"GET /%ff%fe", 404, 404),
    ("NUL in the path", b"GET /stream%00", 404, 404),
    ("raw bytes in the path", b"GET /\xff\xfe", SERVER_400, SERVER_400),
    ("raw bytes in the query", b"GET /stream?tick=\xff", SERVER_400, SERVER_400),
    ("unknown method", b"FOO /stream", SERVER_400, 405),
    ("unknown method and path", b"BREW /nope", SERVER_400, 404),
    ("POST to a GET route", b"POST /stream", 405, 405),
    ("GET to a POST route", b"GET /chat-stream", 405, 405),
    ("missing parameter", b"POST /chat-stream", 422, 422),
]


#: Runs a test on each server, one module-wide server per name (``tests/library/conftest.py``).
on_each_server = pytest.mark.parametrize(
    "reliability_server", ["uvicorn", "hypercorn"], indirect=True, scope="module"
)


async def send_raw(port: int, request_line: bytes, headers: bytes = b"") -> tuple[int, Any, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = request_line + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        writer.write(head + b"Content-Length: 0\r\n" + headers + b"\r\n")
        status, response_headers = await read_head(reader)
        body, _ = await read_body(reader, response_headers, limit=4096)
        return status, response_headers, body
    finally:
        writer.close()


@on_each_server
@pytest.mark.parametrize(("name", "request_line", "on_uvicorn", "on_hypercorn"), CASES)
def test_hostile_requests_get_a_clear_4xx(
    reliability_server: ServerProcess,
    name: str,
    request_line: bytes,
    on_uvicorn: Any,
    on_hypercorn: Any,
) -> None:
    server = reliability_server
    expected = on_uvicorn if "uvicorn" in server.process.args else on_hypercorn
    status, headers, body = asyncio.run(send_raw(server.port, request_line))
    assert b"Traceback" not in body and b'File "' not in body
    if expected == SERVER_400:
        assert status == 400
        return
    assert status == expected
    assert headers["content-type"] == "application/json"
    assert "detail" in json.loads(body)
    if status == 405:
        assert set(headers["allow"].split(", ")) in ({"GET", "HEAD"}, {"POST"})


@on_each_server
def test_a_websocket_handshake_is_refused(reliability_server: ServerProcess) -> None:
    upgrade = (
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    status, _, body = asyncio.run(send_raw(reliability_server.port, b"GET /stream", upgrade))
    assert status == 403 and b"Traceback" not in body


def post_ten_megabytes(port: int, chunked: bool) -> bytes:
    """POST 10 MB to /chat-stream while reading the answer; returns the response's bytes.

    The body goes out from a thread, so that the answer (sent before the body
    is all read) is read as soon as it comes; the sender stops at the first
    error, as a client does when the server closes the connection.
    """
    piece = b"x" * 65536
    head = b"POST /chat-stream?message=hi HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
    else:
        head += b"Content-Length: %d\r\n\r\n" % (160 * len(piece))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def send_body() -> None:
            try:
                sock.sendall(head)
                for _ in range(160):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed: stop sending

        sender = threading.Thread(target=send_body)
        sender.start()
        response = b""
        try:
            while not response.endswith(b"}") and (data := sock.recv(65536)):
                response += data
        finally:
            sender.join(10)
    return response


@on_each_server
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_ten_megabyte_chat_body_is_413(reliability_server: ServerProcess, chunked: bool) -> None:
    server = reliability_server
    response = post_ten_megabytes(server.port, chunked)
    assert response.startswith(b"HTTP/1.1 413 ")
    assert response.endswith(b'{"detail":"Request body too large"}')
    # The server goes on serving.
    reply = asyncio.run(fetch(server.port, "GET", "/stream"))
    assert reply.status == 200 and reply.complete


# Without a server.


def catalogue() -> Any:
    # A log file is given so that no access log needs the lifespan to open it.
    return GracefulShutdown(create_app(Settings(tick=0.001, log_file="no-such.log")))


@pytest.mark.parametrize("kind", ["unknown", "webtransport"])
def test_a_scope_of_unknown_type_is_ignored_with_a_warning(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> ApplicationCommunicator:
        comm = ApplicationCommunicator(catalogue(), {"type": kind})
        await comm.wait(2)
        assert await comm.receive_nothing()
        return comm

    with caplog.at_level(logging.WARNING):
        comm = asyncio.run(main())
    assert comm.future.done() and comm.future.exception() is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert kind in caplog.records[0].getMessage()


def test_a_websocket_scope_is_closed() -> None:
    async def main() -> dict[str, Any]:
        comm = ApplicationCommunicator(catalogue(), {"type": "websocket", "path": "/stream"})
        await comm.send_input({"type": "websocket.connect"})
        return await comm.receive_output(2)

    assert asyncio.run(main()) == {"type": "websocket.close", "code": 1008}


ROUTES = create_app(Settings(log_file="no-such.log")).routes
query_bytes = st.binary(max_size=200) | st.lists(
    st.sampled_from([b"stream=", b"true", b"maybe", b"%", b"%ff", b"%zz", b"&", b"=", b"tick="]),
    max_size=12,
).map(b"".join)


def assert_clear_answer(messages: list[dict[str, Any]]) -> None:
    start = messages[0]
    assert start["status"] < 500, messages
    if start["status"] >= 400:
        assert dict(start["headers"])[b"content-type"] == b"application/json"
        assert "detail" in json.loads(messages[1]["body"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=query_bytes)
def test_any_query_string_gets_an_answer_or_a_clear_4xx(query: bytes) -> None:
    # The catalogue reads the last value of a name, so the final tick keeps it fast.
    scope = http_scope(path="/conditional-stream", query=query + b"&tick=0.001")
    assert_clear_answer(asyncio.run(request(catalogue(), scope)))


@settings(max_examples=150, deadline=None)
@given(
    path=st.text(min_size=1, max_size=30).map(lambda text: "/" + text),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO", "M-SEARCH"]),
)
def test_any_unknown_path_gets_a_clear_404(path: str, method: str) -> None:
    assume(all(route.match(path) is None for route in ROUTES))
    scope = http_scope(method=method, path=path)
    scope["raw_path"] = path.encode("utf-8", "surrogatepass")
    messages = asyncio.run(request(catalogue(), scope))
    assert messages[0]["status"] == 404
    assert_clear_answer(messages)
