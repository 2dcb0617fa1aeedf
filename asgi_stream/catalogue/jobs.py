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

**Faults of the log.** With Redis, the log can be away for a while (a
restart, a failover). A job waits it out: a step whose append fails is tried
again, with a growing delay, for up to :data:`OUTAGE_SECONDS`, and its readers
see a delay, not a gap. A job that cannot go on ends ``failed``, and that end
is tried until the log takes it (for up to :data:`RETENTION_SECONDS`), so its
readers do not wait forever. A job whose worker died (SIGKILL, a crash) can
record nothing: a reader that connects and finds its newest event older than
:data:`LOST_AFTER_SECONDS`, with no final event, appends ``failed`` with
``{"error": "Job lost: ..."}`` for every reader; a reader that was already
waiting sees its stream end after that long without an event, reconnects,
and is told the same way. While the log cannot be
reached, ``GET /jobs/ID/events`` answers a stream with only ``retry:``, which
``EventSource`` retries; a 5xx would make it give up.

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
import time
from collections import deque
from typing import Any, Protocol

from ..eventlog import open_event_log
from ..eventlog_base import EventLog, EventLogUnavailable
from ..exceptions import HTTPException
from ..request import Request
from ..response import JSONResponse
from ..resumable import ResumableEventSourceResponse, last_event_id, retry_later
from ..routing import Router
from ..sse import EventSourceResponse

__all__ = [
    "FINAL_EVENTS",
    "LOST_AFTER_SECONDS",
    "MAX_FINISHED_JOBS",
    "MAX_RUNNING_JOBS",
    "OUTAGE_SECONDS",
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
#: How long a running job waits for the event log to come back before it fails.
OUTAGE_SECONDS = 60.0
#: A job with no final event whose newest event is older than this was lost with its worker.
#: Longer than a job waits out an outage, so that a job that is only waiting is not declared lost.
LOST_AFTER_SECONDS = OUTAGE_SECONDS + 30.0
#: The number of steps of a job, as in the tutorial's /progress.
TOTAL = 100

_STEP_SECONDS = 0.1
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# How long a cancelled job may take to record its end, and shutdown to wait for jobs.
_FINAL_WRITE_TIMEOUT = 2.0
# The delays between two tries of an append while the log is away.
_RETRY_FIRST = 0.05
_RETRY_MAX = 2.0
# A Redis entry ID starts with its time in milliseconds; a memory log's IDs hold no time.
_REDIS_ID = re.compile(r"([0-9]{1,19})-[0-9]{1,19}")


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

    async def events(self, request: Request) -> EventSourceResponse:
        """``GET /jobs/{id}/events``: the job's events, resumable; 404 for no such job."""
        job_id = request.path_params["id"]
        retry = max(1, round(1000 * self.tick))
        if not _JOB_ID.fullmatch(job_id):
            raise HTTPException(404, "No such job")
        stream = self.stream(job_id)
        try:
            if not await self.log.exists(stream):
                raise HTTPException(404, "No such job")
            await self._end_if_lost(stream)
        except EventLogUnavailable as exc:
            return retry_later(retry, exc)
        return ResumableEventSourceResponse(
            self.log,
            stream,
            last_event_id(request),
            retry=retry,
            final_events=FINAL_EVENTS,
            # A reader waiting when the job's worker died comes back, and is told.
            idle_timeout=LOST_AFTER_SECONDS,
        )

    async def _end_if_lost(self, stream: str) -> None:
        """Record that a job is lost when it has not moved for :data:`LOST_AFTER_SECONDS`."""
        if any(task.get_name() == stream for task in self.tasks):
            return  # it runs here
        last = await self.log.last(stream)
        if last is None or last.event in FINAL_EVENTS:
            return
        written = _REDIS_ID.fullmatch(last.id)
        if written is None:  # an in-memory job runs in this process, or ended with it
            return
        # Redis's clock against this host's: a skew of seconds is small beside the bound.
        if time.time() * 1000 - int(written[1]) > LOST_AFTER_SECONDS * 1000:
            error = {"error": "Job lost: the worker that ran it stopped"}
            await self.log.append(stream, json.dumps(error), event="failed")

    async def _append(self, stream: str, data: str, event: str | None, patience: float) -> None:
        """Append, waiting out an outage of the log for up to ``patience`` seconds."""
        delay = _RETRY_FIRST
        async with asyncio.timeout(patience):
            while True:
                try:
                    await self.log.append(stream, data, event)
                    return
                except EventLogUnavailable:
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, _RETRY_MAX)

    async def _run(self, stream: str) -> None:
        try:
            for current in range(1, TOTAL + 1):
                await asyncio.sleep(_STEP_SECONDS * self.tick)
                await self._append(stream, json.dumps(progress(current)), None, OUTAGE_SECONDS)
            await self._append(stream, "Completed", "done", OUTAGE_SECONDS)
        except asyncio.CancelledError:
            await self._end(
                stream, "Job cancelled: the server is shutting down", _FINAL_WRITE_TIMEOUT
            )
            raise
        except Exception:
            logger.exception("job %s failed", stream)
            await self._end(stream, "Job failed", RETENTION_SECONDS)
        else:
            await self._retire(stream)

    async def _retire(self, stream: str) -> None:
        """Let a finished job's stream expire, and forget the oldest past the cap."""
        try:
            await self.log.expire(stream, RETENTION_SECONDS)
            self.finished.append(stream)
            if len(self.finished) > MAX_FINISHED_JOBS:
                await self.log.expire(self.finished.popleft(), 0)
        except EventLogUnavailable as exc:
            logger.warning("job %s will not expire: %s", stream, exc)

    async def _end(self, stream: str, reason: str, patience: float) -> None:
        """Record that a job ended early, so that its readers stop; wait up to ``patience`` s."""
        try:
            await self._append(stream, json.dumps({"error": reason}), "failed", patience)
        except Exception:
            logger.exception("could not record the end of job %s", stream)
        else:
            await self._retire(stream)

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
    URL, see :func:`~asgi_stream.open_event_log`); job delays are
    scaled by ``settings.tick``. Shutting the router down stops the jobs.
    """
    jobs = Jobs(open_event_log(settings.event_log), settings.tick)
    router.add("/jobs", jobs.start, ("POST",))
    router.add("/jobs/{id}/events", jobs.events)
    router.on_shutdown.append(jobs.shutdown)
    return jobs
