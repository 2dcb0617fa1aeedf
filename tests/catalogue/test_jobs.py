"""Jobs: a client disconnects mid-way and resumes with Last-Event-ID, and misses nothing.

End to end against real uvicorn processes running the catalogue app: one
process with the in-memory log, then three processes sharing one real
redis-server, where the job runs in one and is read and resumed through the
other two. Then the exact ASGI messages of the jobs endpoints.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from asgi_stream import open_event_log
from asgi_stream.catalogue import Settings, jobs
from asgi_stream.catalogue.jobs import TOTAL, progress
from asgi_stream.request import Request
from asgi_stream.routing import Router
from tests.asgi import body_of, http_scope, request
from tests.serving import ServerProcess, serve

pytestmark = pytest.mark.server

TICK = "0.05"  # a job takes 100 steps of 0.1 tick: half a second
UVICORN = ["-m", "uvicorn", "asgi_stream.catalogue:app", "--host", "127.0.0.1"]
READ_TIMEOUT = httpx.Timeout(10.0)


def read_events(url: str, last_event_id: str | None, stop_after: int | None) -> list[Any]:
    """The job's events (not the retry-only one), until the end or ``stop_after`` of them."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    received: list[ServerSentEvent] = []
    with (
        httpx.Client(timeout=READ_TIMEOUT) as client,
        connect_sse(client, "GET", url, headers=headers) as source,
    ):
        assert source.response.status_code == 200
        for event in source.iter_sse():
            if event.retry is not None:
                continue
            received.append(event)
            if len(received) == stop_after:
                break  # leaves the block: the connection is closed mid-stream
    return received


def start_job(base_url: str) -> str:
    response = httpx.post(base_url + "/jobs", timeout=READ_TIMEOUT)
    assert response.status_code == 202
    return response.json()["events"]


def assert_every_event_once_in_order(received: list[ServerSentEvent]) -> None:
    expected = [json.dumps(progress(i)) for i in range(TOTAL + 1)] + ["Completed"]
    assert [e.data for e in received] == expected
    assert [e.event for e in received] == ["message"] * (TOTAL + 1) + ["done"]
    ids = [e.id for e in received]
    assert len(set(ids)) == len(ids)


def disconnect_wait_resume(first: ServerProcess, second: ServerProcess, path: str) -> list[Any]:
    """Read 30 events through ``first``, go away briefly, resume through ``second``."""
    before = read_events(first.url + path, None, stop_after=30)
    time.sleep(0.1)  # the job goes on: these events are replayed, the rest come live
    after = read_events(second.url + path, before[-1].id, stop_after=None)
    return before + after


def test_memory_log_resume_after_a_disconnect_misses_nothing(tmp_path: Path) -> None:
    env = {"ASGI_STREAM_TICK": TICK, "ASGI_STREAM_EVENT_LOG": "memory"}
    with serve(UVICORN, tmp_path, env=env) as server:
        path = start_job(server.url)
        received = disconnect_wait_resume(server, server, path)
        assert_every_event_once_in_order(received)
        incarnation = received[0].id.rsplit("-", 1)[0]  # drawn when the job's stream was made
        assert [e.id for e in received] == [f"{incarnation}-{i}" for i in range(1, TOTAL + 3)]
        # Reconnecting with the final event's ID: 204, which stops EventSource.
        done = httpx.get(
            server.url + path, headers={"Last-Event-ID": received[-1].id}, timeout=READ_TIMEOUT
        )
        assert done.status_code == 204
        missing = httpx.get(server.url + "/jobs/nope/events", timeout=READ_TIMEOUT)
        assert missing.status_code == 404
        assert missing.json() == {"detail": "No such job"}


def test_redis_log_a_job_started_in_one_process_is_resumed_through_two_others(
    tmp_path: Path, redis_url: str
) -> None:
    env = {"ASGI_STREAM_TICK": TICK, "ASGI_STREAM_EVENT_LOG": redis_url}
    with ExitStack() as stack:
        starter, reader, resumer = (
            stack.enter_context(serve(UVICORN, tmp_path, env=env)) for _ in range(3)
        )
        assert len({starter.port, reader.port, resumer.port}) == 3
        path = start_job(starter.url)
        received = disconnect_wait_resume(reader, resumer, path)
        assert_every_event_once_in_order(received)
        assert all(e.id.count("-") == 1 for e in received)  # Redis stream entry IDs
        done = httpx.get(
            reader.url + path, headers={"Last-Event-ID": received[-1].id}, timeout=READ_TIMEOUT
        )
        assert done.status_code == 204


def test_serve_with_workers_and_event_log_shares_jobs_between_workers(
    tmp_path: Path, redis_url: str
) -> None:
    """``asgi-stream serve --workers 2 --event-log redis://...``: any worker streams any job."""
    argv = ["-m", "asgi_stream", "serve", "--workers", "2", "--tick", TICK]
    with serve([*argv, "--event-log", redis_url], tmp_path) as server:
        path = start_job(server.url)
        for _ in range(4):  # new connections, spread over both workers by the kernel
            assert_every_event_once_in_order(read_events(server.url + path, None, None))

    job_id = path.split("/")[2]

    async def job_is_in_redis() -> bool:
        log = open_event_log(redis_url)
        try:
            return await log.exists(f"job:{job_id}")
        finally:
            await log.aclose()

    assert asyncio.run(job_is_in_redis())  # the workers used Redis, not their own memory


def test_post_answers_202_with_the_events_url_and_the_job_runs_on_its_own() -> None:
    async def main() -> None:
        router = Router()
        installed = jobs.install(router, Settings(tick=0.001))
        messages = await request(router, http_scope("POST", "/jobs"))
        assert messages[0]["status"] == 202
        job = json.loads(body_of(messages))
        assert job["events"] == f"/jobs/{job['id']}/events"
        await asyncio.wait_for(asyncio.gather(*installed.tasks), 5)
        assert not installed.tasks
        events = await request(router, http_scope("GET", job["events"]))
        body = body_of(events).decode()
        first = re.match(r"retry: 1\n\nid: ([0-9a-f]+)-1\ndata: ", body)
        assert first is not None, body[:100]
        assert body.endswith(f"event: done\nid: {first[1]}-{TOTAL + 2}\ndata: Completed\n\n")
        await installed.shutdown()

    asyncio.run(main())


def test_shutdown_cancels_running_jobs_and_records_that_they_failed() -> None:
    async def main() -> None:
        router = Router()
        installed = jobs.install(router, Settings(tick=1.0))
        job = json.loads(body_of(await request(router, http_scope("POST", "/jobs"))))
        (task,) = installed.tasks
        await installed.shutdown()
        assert task.cancelled()
        assert not installed.tasks
        last = await installed.log.last(f"job:{job['id']}")
        assert last is not None
        assert last.event == "failed"
        assert json.loads(last.data) == {"error": "Job cancelled: the server is shutting down"}

    asyncio.run(main())


def test_too_many_running_jobs_get_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "MAX_RUNNING_JOBS", 1)

    async def main() -> None:
        router = Router()
        installed = jobs.install(router, Settings(tick=1.0))
        assert (await request(router, http_scope("POST", "/jobs")))[0]["status"] == 202
        refused = await request(router, http_scope("POST", "/jobs"))
        assert refused[0]["status"] == 503
        assert (b"retry-after", b"1") in refused[0]["headers"]
        await installed.shutdown()

    asyncio.run(main())


def test_a_worker_keeps_only_the_newest_finished_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anonymous POSTs must not fill the log: past the cap, the oldest job is forgotten."""
    monkeypatch.setattr(jobs, "MAX_FINISHED_JOBS", 2)

    async def main() -> list[bool]:
        log = open_event_log()
        running = jobs.Jobs(log, tick=0.0001)
        streams = []
        for _ in range(3):
            answer = await running.start(Request(http_scope("POST", "/jobs"), receive=None))  # type: ignore[arg-type]
            job_id = json.loads(answer.body)["id"]
            streams.append(running.stream(job_id))
            await asyncio.wait(running.tasks, timeout=5)
        await asyncio.sleep(0.01)
        await log.append("job:trigger", "x")  # the in-memory log drops expired streams here
        return [await log.exists(stream) for stream in streams]

    assert asyncio.run(main()) == [False, True, True]
