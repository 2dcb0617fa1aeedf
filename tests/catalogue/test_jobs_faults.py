"""Jobs on Redis always end for their readers: through a Redis restart, while it is down, and lost.

In one process, the catalogue's jobs endpoints on a redis-server that the
tests kill and restart (:class:`asgi_stream.tools.redis_servers.RedisServer`), read through
the router with exact ASGI messages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from asgi_stream.catalogue import Settings, jobs
from asgi_stream.catalogue.jobs import TOTAL, progress
from asgi_stream.redis_eventlog import RedisEventLog
from asgi_stream.routing import Router
from asgi_stream.testing import parse_event_stream
from asgi_stream.tools.redis_servers import RedisServer
from tests.asgi import body_of, http_scope, request

pytestmark = pytest.mark.server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as running:
        yield running


async def start(router: Router) -> str:
    messages = await request(router, http_scope("POST", "/jobs"))
    assert messages[0]["status"] == 202
    path: str = json.loads(body_of(messages))["events"]
    return path


def test_a_job_goes_on_through_a_redis_restart_and_its_reader_gets_every_event(
    server: RedisServer,
) -> None:
    async def main() -> list[tuple[str, str]]:
        router = Router()
        installed = jobs.install(router, Settings(tick=0.05, event_log=server.url))
        try:
            path = await start(router)
            reader = asyncio.ensure_future(request(router, http_scope("GET", path)))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(server.kill_and_restart)
            messages = await asyncio.wait_for(reader, 30)
        finally:
            await installed.shutdown()
        assert messages[0]["status"] == 200
        return [(e.type, e.data) for e in parse_event_stream(body_of(messages).decode()).events]

    events = asyncio.run(main())
    expected = [("message", json.dumps(progress(i))) for i in range(TOTAL + 1)]
    assert events == [*expected, ("done", "Completed")]


def test_while_redis_is_down_the_events_endpoint_answers_retry_not_500(
    server: RedisServer,
) -> None:
    async def main() -> None:
        router = Router()
        installed = jobs.install(router, Settings(tick=1.0, event_log=server.url))
        try:
            path = await start(router)
            await asyncio.to_thread(server.server.stop)
            messages = await request(router, http_scope("GET", path))
            assert messages[0]["status"] == 200
            assert parse_event_stream(body_of(messages).decode()).retry == 1000
            assert messages[-1]["more_body"] is False
            # Redis comes back: the job ends, and is recorded as ended, for its readers.
            await asyncio.to_thread(server.kill_and_restart)
        finally:
            await installed.shutdown()
        log = RedisEventLog(server.url)
        last = await log.last(installed.stream(path.split("/")[2]))
        await log.aclose()
        assert last is not None and last.event in jobs.FINAL_EVENTS

    asyncio.run(main())


def test_a_job_whose_worker_died_is_declared_lost_to_its_readers(server: RedisServer) -> None:
    """Its newest event is old, and no worker runs it: a reader records and gets ``failed``."""
    with redis.Redis.from_url(server.url) as client:
        client.xadd(RedisEventLog.key("job:orphan"), {"data": json.dumps(progress(3))}, "1000-0")

    async def main() -> list[tuple[str, str]]:
        router = Router()
        installed = jobs.install(router, Settings(tick=1.0, event_log=server.url))
        try:
            messages = await request(router, http_scope("GET", "/jobs/orphan/events"))
        finally:
            await installed.shutdown()
        return [(e.type, e.data) for e in parse_event_stream(body_of(messages).decode()).events]

    events = asyncio.run(main())
    assert events[0] == ("message", json.dumps(progress(3)))
    assert events[1][0] == "failed" and "Job lost" in events[1][1]


def test_a_reader_waiting_when_the_worker_died_comes_back_and_is_told(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job has moved recently, then never again: the waiting reader's stream ends, it
    reconnects with its last ID, and gets ``failed``."""
    monkeypatch.setattr(jobs, "LOST_AFTER_SECONDS", 0.5)
    with redis.Redis.from_url(server.url) as client:
        client.xadd(RedisEventLog.key("job:stalled"), {"data": json.dumps(progress(7))})

    async def main() -> tuple[list[Any], list[Any]]:
        router = Router()
        installed = jobs.install(router, Settings(tick=1.0, event_log=server.url))
        try:
            waiting = await request(router, http_scope("GET", "/jobs/stalled/events"))
            first = parse_event_stream(body_of(waiting).decode()).events
            headers = [(b"last-event-id", first[-1].last_event_id.encode())]
            scope = http_scope("GET", "/jobs/stalled/events", headers=headers)
            again = await request(router, scope)
        finally:
            await installed.shutdown()
        return first, parse_event_stream(body_of(again).decode()).events

    first, again = asyncio.run(main())
    assert [e.data for e in first] == [json.dumps(progress(7))]  # then a clean end
    assert [e.type for e in again] == ["failed"] and "Job lost" in again[0].data
