"""Jobs whose progress outlives the connection that watches them.

Theory of operation
===================

The tutorial's ``GET /progress`` computes its progress *inside* the response's
generator: close the tab, and the work stops; reconnect, and it starts again
from zero. Here the two are apart:

* ``POST /jobs`` starts a job and answers ``202 Accepted`` with its ID at once.
  The job runs in a task of its own. Its events go into the event log, in
  the stream ``job:ID``: 101 progress events with the tutorial's ``/progress``
  payloads (``{"current": i, "total": 100, "percentage": ..., "message":
  ...}``, one every 0.1 s times the tick), then ``event: done`` / ``data:
  Completed``. A job that fails, or is cancelled because its worker shuts
  down, ends with ``event: failed`` instead, so no reader waits forever.
* ``GET /jobs/ID/events`` streams the job's events with
  :class:`~asgi_stream.resumable.ResumableEventSourceResponse`: from the start,
  or after the request's ``Last-Event-ID`` (or ``?last_event_id=``, for a page
  that opens a new ``EventSource``), until the final event. An unknown
  job is a 404.

The job's first event is appended before ``POST`` answers, so the job exists
in the log from the moment its ID is known. With the Redis log, that existence
and all the events live in Redis: the job runs in the worker that received the
POST, and any worker on any host can stream it, resume it, and see it end.
A finished job's stream expires after :data:`RETENTION_SECONDS`, or sooner
when the worker has finished :data:`MAX_FINISHED_JOBS` newer ones.

No task is leaked: each running job is tracked, at most
:data:`MAX_RUNNING_JOBS` run at once in a worker (503 beyond), and the
router's shutdown hook cancels the running ones, waits for them, and closes
the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections import deque
from typing import Any, Protocol

from ..eventlog import open_event_log
from ..eventlog_base import EventLog
from ..exceptions import HTTPException
from ..request import Request
from ..response import JSONResponse
from ..resumable import ResumableEventSourceResponse, last_event_id
from ..routing import Router

__all__ = [
    "FINAL_EVENTS",
    "MAX_FINISHED_JOBS",
    "MAX_RUNNING_JOBS",
    "RETENTION_SECONDS",
    "Jobs",
    "install",
]

logger = logging.getLogger("asgi_stream")

#: The event types that end a job's stream.
FINAL_EVENTS = frozenset({"done", "failed"})
#: How long a finished job's events stay readable.
RETENTION_SECONDS = 3600.0
#: How many jobs one worker runs at once; more get 503.
MAX_RUNNING_JOBS = 100
#: How many finished jobs one worker keeps readable; past that the oldest is forgotten,
#: so that anonymous POSTs cannot fill the memory (or Redis) within the retention time.
MAX_FINISHED_JOBS = 1000
#: The number of steps of a job, as in the tutorial's /progress.
TOTAL = 100

_STEP_SECONDS = 0.1
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# How long a cancelled job may take to record its end, and shutdown to wait for jobs.
_FINAL_WRITE_TIMEOUT = 2.0


class JobSettings(Protocol):
    """What :func:`install` reads from the catalogue's settings."""

    @property
    def tick(self) -> float: ...

    @property
    def event_log(self) -> str | None: ...


def progress(current: int) -> dict[str, Any]:
    """The tutorial's /progress payload for step ``current`` of :data:`TOTAL`."""
    return {
        "current": current,
        "total": TOTAL,
        "percentage": current / TOTAL * 100,
        "message": f"Processing {current}/{TOTAL}",
    }


class Jobs:
    """The running jobs of one worker, and the endpoints that start and stream them."""

    def __init__(self, log: EventLog, tick: float = 1.0) -> None:
        self.log = log
        self.tick = tick
        self.tasks: set[asyncio.Task[None]] = set()
        self.finished: deque[str] = deque()  # oldest first

    @staticmethod
    def stream(job_id: str) -> str:
        return f"job:{job_id}"

    async def start(self, request: Request) -> JSONResponse:
        """``POST /jobs``: start a job; 202 with ``{"id": ..., "events": ...}``."""
        if len(self.tasks) >= MAX_RUNNING_JOBS:
            raise HTTPException(503, "Too many running jobs", {"Retry-After": "1"})
        job_id = secrets.token_urlsafe(12)
        stream = self.stream(job_id)
        await self.log.append(stream, json.dumps(progress(0)))
        task = asyncio.get_running_loop().create_task(self._run(stream), name=stream)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        # A path the client can use as it is: behind a proxy, with its prefix.
        events = f"{request.base_url.path}jobs/{job_id}/events"
        return JSONResponse({"id": job_id, "events": events}, 202)

    async def events(self, request: Request) -> ResumableEventSourceResponse:
        """``GET /jobs/{id}/events``: the job's events, resumable; 404 for no such job."""
        job_id = request.path_params["id"]
        if not _JOB_ID.fullmatch(job_id) or not await self.log.exists(self.stream(job_id)):
            raise HTTPException(404, "No such job")
        return ResumableEventSourceResponse(
            self.log,
            self.stream(job_id),
            last_event_id(request),
            retry=max(1, round(1000 * self.tick)),
            final_events=FINAL_EVENTS,
        )

    async def _run(self, stream: str) -> None:
        try:
            for current in range(1, TOTAL + 1):
                await asyncio.sleep(_STEP_SECONDS * self.tick)
                await self.log.append(stream, json.dumps(progress(current)))
            await self.log.append(stream, "Completed", event="done")
        except asyncio.CancelledError:
            await self._end(stream, "Job cancelled: the server is shutting down")
            raise
        except Exception:
            logger.exception("job %s failed", stream)
            await self._end(stream, "Job failed")
        else:
            await self._retire(stream)

    async def _retire(self, stream: str) -> None:
        """Let a finished job's stream expire, and forget the oldest past the cap."""
        await self.log.expire(stream, RETENTION_SECONDS)
        self.finished.append(stream)
        if len(self.finished) > MAX_FINISHED_JOBS:
            await self.log.expire(self.finished.popleft(), 0)

    async def _end(self, stream: str, reason: str) -> None:
        """Record that a job ended early, so that its readers stop; best effort."""
        try:
            async with asyncio.timeout(_FINAL_WRITE_TIMEOUT):
                await self.log.append(stream, json.dumps({"error": reason}), event="failed")
                await self._retire(stream)
        except Exception:
            logger.exception("could not record the end of job %s", stream)

    async def shutdown(self) -> None:
        """Cancel the running jobs, wait for them to record it, and close the log."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2 * _FINAL_WRITE_TIMEOUT)
        await self.log.aclose()


def install(router: Router, settings: JobSettings) -> Jobs:
    """Serve ``POST /jobs`` and ``GET /jobs/{id}/events`` on ``router``.

    The event log comes from ``settings.event_log`` (``"memory"``, the default, or a Redis
    URL, see :func:`~asgi_stream.eventlog.open_event_log`); job delays are
    scaled by ``settings.tick``. Shutting the router down stops the jobs.
    """
    jobs = Jobs(open_event_log(settings.event_log), settings.tick)
    router.add("/jobs", jobs.start, ("POST",))
    router.add("/jobs/{id}/events", jobs.events)
    router.on_shutdown.append(jobs.shutdown)
    return jobs
