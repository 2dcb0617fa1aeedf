"""A browser's ``EventSource`` follows a Redis-backed stream through a Redis SIGKILL and restart.

Headless Chromium (see ``tests/catalogue/test_browser.py``, whose ``browser``
fixture this module shares) opens :mod:`tests.fanout_app`'s page, whose
``EventSource`` lists every event's data. Events are published, Redis is
killed and restarted from its append-only file, more are published: the page
has every one of them, once, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver

from asgi_stream.tools.redis_servers import RedisServer
from tests.catalogue.test_browser import browser, until
from tests.library.test_scaleout import assert_quiet, publish
from tests.serving import ServerProcess, serve

pytestmark = [pytest.mark.browser, pytest.mark.server]

__all__ = ["browser"]  # the fixture, imported for pytest


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, redis: RedisServer) -> Iterator[ServerProcess]:
    argv = ["-m", "uvicorn", "tests.fanout_app:app", "--host", "127.0.0.1"]
    with serve(argv, tmp_path, env={"ASGI_STREAM_EVENT_LOG": redis.url}) as process:
        yield process


def test_an_event_source_keeps_receiving_through_a_redis_restart(
    browser: webdriver.Chrome, server: ServerProcess, redis: RedisServer
) -> None:
    def send(data: list[str], event: str = "") -> None:
        async def main() -> None:
            async with httpx.AsyncClient(timeout=10) as client:
                for item in data:
                    await publish(client, server.url, "browser", item, event)

        asyncio.run(main())

    def received() -> list[str]:
        got: list[str] = browser.execute_script("return window.received")
        return got

    browser.get(server.url + "/page?stream=browser")
    until(browser, lambda: browser.execute_script("return window.opens") == 1)
    send([str(i) for i in range(10)])
    until(browser, lambda: len(received()) == 10)
    redis.kill_and_restart()
    send([str(i) for i in range(10, 20)])
    send(["end"], "done")
    until(browser, lambda: browser.execute_script("return window.done"), timeout=20)
    assert received() == [str(i) for i in range(20)]
    assert_quiet(server)
