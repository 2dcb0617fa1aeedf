"""Every lesson in examples/, under a real uvicorn, answers as its docstring says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import ServerProcess, serve

pytestmark = pytest.mark.server

LESSON1 = "lesson1_bare_asgi"
LESSON2 = "lesson2_simplified_streaming_response"
LESSON3 = "lesson3_asgi_stream_response"
HEAD_SAFE = "head_safe_subscription"
TICK = "0.02"
EVENTS = b"".join(b"data: %d\n\n" % i for i in range(5))


@pytest.fixture(scope="module")
def lesson(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # Lesson 2 leaves generators running, and uvicorn waits for them at shutdown.
    argv = ["-m", "uvicorn", f"examples.{request.param}:app", "--host", "127.0.0.1"]
    argv += ["--timeout-graceful-shutdown", "1"]
    with serve(argv, tmp_path_factory.mktemp(request.param), env={"ASGI_STREAM_TICK": TICK}) as s:
        yield s


def status_after(url: str, expected: dict[str, int], timeout: float = 10.0) -> dict[str, int]:
    """GET /status until it shows ``expected`` (or the timeout passes); the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(url + "/status", timeout=5).json()
        if status == expected or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def leave_endless_stream(url: str) -> None:
    """Read two events of /endless, then close the connection, as Ctrl-C in curl does."""
    with httpx.stream("GET", url + "/endless", timeout=5) as response:
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if received.count(b"\n\n") >= 2:
                break
    assert received.startswith(b"data: line 0\n\n")


@pytest.mark.parametrize("lesson", [LESSON1], indirect=True)
def test_lesson1_streams_five_chunked_events_on_any_path(lesson: ServerProcess) -> None:
    for path in ("/", "/anything"):
        with httpx.stream("GET", lesson.url + path, timeout=5) as response:
            chunks = list(response.iter_raw())
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        assert b"".join(chunks) == EVENTS
    assert "Application startup complete" in lesson.output()


@pytest.mark.parametrize("lesson", [LESSON2], indirect=True)
def test_lesson2_works_for_str_and_breaks_on_bytes(lesson: ServerProcess) -> None:
    response = httpx.get(lesson.url + "/stream", timeout=5)
    assert response.status_code == 200
    assert response.content == EVENTS

    with httpx.stream("GET", lesson.url + "/bytes", timeout=5) as response:
        assert response.status_code == 200  # the status went out before the failure
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    assert "AttributeError: 'bytes' object has no attribute 'encode'" in lesson.output()


@pytest.mark.parametrize("lesson", [LESSON2], indirect=True)
def test_lesson2_keeps_an_endless_generator_running_after_the_client_left(
    lesson: ServerProcess,
) -> None:
    assert httpx.get(lesson.url + "/status", timeout=5).json() == {"running": 0, "finished": 0}
    leave_endless_stream(lesson.url)
    # Nothing will change: give it the time in which lesson 3's generator stops.
    time.sleep(0.5)
    assert httpx.get(lesson.url + "/status", timeout=5).json() == {"running": 1, "finished": 0}
    lesson.stop()  # the last test of this lesson: see what the shutdown says
    assert "Waiting for background tasks to complete" in lesson.output()


@pytest.mark.parametrize("lesson", [LESSON3], indirect=True)
def test_lesson3_streams_str_and_bytes_and_stops_when_the_client_leaves(
    lesson: ServerProcess,
) -> None:
    for path in ("/stream", "/bytes"):
        response = httpx.get(lesson.url + path, timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.content == EVENTS
    assert httpx.get(lesson.url + "/nowhere", timeout=5).status_code == 404

    leave_endless_stream(lesson.url)
    assert status_after(lesson.url, {"running": 0, "finished": 1}) == {"running": 0, "finished": 1}


def test_every_lesson_is_tested() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    assert {path.stem for path in examples.glob("lesson*.py")} == {LESSON1, LESSON2, LESSON3}
    assert (examples / f"{HEAD_SAFE}.py").exists()


def subscribers_after(url: str, expected: int, timeout: float = 10.0) -> int:
    """The example's subscriber count, once it is ``expected`` (or the timeout has passed)."""
    deadline = time.monotonic() + timeout
    while True:
        count: int = httpx.get(url + "/status", timeout=5).json()["subscribers"]
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


@pytest.mark.parametrize("lesson", [HEAD_SAFE], indirect=True)
def test_head_safe_subscription_leaves_no_subscriber_behind_after_head_or_get(
    lesson: ServerProcess,
) -> None:
    for path in ("/ticks", "/ticks-background"):
        for _ in range(3):
            response = httpx.head(lesson.url + path, timeout=5)
            assert (response.status_code, response.content) == (200, b"")
        assert subscribers_after(lesson.url, 0) == 0, path
        with httpx.stream("GET", lesson.url + path, timeout=5) as response:
            assert subscribers_after(lesson.url, 1) == 1
            assert next(response.iter_raw()).startswith(b"data: tick ")
        assert subscribers_after(lesson.url, 0) == 0, path
    # What the example warns against: each HEAD leaves a subscriber behind.
    for _ in range(3):
        assert httpx.head(lesson.url + "/leaky", timeout=5).status_code == 200
    assert subscribers_after(lesson.url, 3) == 3
