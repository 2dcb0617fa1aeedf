"""Issue 24 on real servers: our responses inside a FastAPI app with Starlette's
GZip middleware, under uvicorn and hypercorn (HTTP/1.1), read by httpx."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.serving import ServerProcess, serve
from tests.waiting import until

pytestmark = pytest.mark.server

APP = "tests.compat.seams_app:app"
COMMANDS = {
    "uvicorn": ["-m", "uvicorn", APP, "--host", "127.0.0.1"],
    "hypercorn": ["-m", "hypercorn", APP, "--bind", "127.0.0.1:{port}", "--workers", "0"],
}
BOUND = 20.0


@pytest.fixture(scope="module", params=sorted(COMMANDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with serve(COMMANDS[request.param], tmp_path_factory.mktemp(request.param)) as running:
        yield running


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=BOUND) as client:
        yield client


BODY = os.urandom(1024 * 1024)


def pieces() -> Iterator[bytes]:  # sent chunked, in many messages
    for start in range(0, len(BODY), 16 * 1024):
        yield BODY[start : start + 16 * 1024]


def test_a_generator_reads_the_whole_upload_beside_the_disconnect_watch(
    http: httpx.Client,
) -> None:
    response = http.post("/upload", content=pieces())
    assert response.status_code == 200
    assert response.text == f"{len(BODY)} {hashlib.sha256(BODY).hexdigest()}\n"


def test_an_upload_declared_beyond_the_limit_is_a_json_413(http: httpx.Client) -> None:
    response = http.post("/upload", content=b"x" * (17 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large"}


def test_an_http_exception_before_the_first_event_is_its_status(http: httpx.Client) -> None:
    response = http.get("/feed/private")
    assert response.status_code == 403
    assert response.headers["x-reason"] == "policy"
    assert response.json() == {"detail": "not your feed"}
    assert http.get("/feed/public").text == "data: hello\n\n"


def test_another_error_before_the_first_event_is_a_json_500(
    http: httpx.Client, server: ServerProcess
) -> None:
    response = http.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    # Logged, with its traceback, by the asgi_stream logger.
    asyncio.run(until(lambda: "the feed broke before it began" in server.output(), BOUND))


def test_a_stream_after_a_gzipped_stream_is_its_own_bytes(http: httpx.Client) -> None:
    expected = "".join(f"line {n}\n" for n in range(20))
    gzipped = http.get("/numbers", headers={"accept-encoding": "gzip"})
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.text == expected
    for _ in range(3):
        plain = http.get("/numbers", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == expected.encode()
