"""How soon a client that leaves a Redis-backed stream is gone: ``-m benchmarks.leave_latency``.

``N`` resumable SSE responses follow one stream of a
:class:`~asgi_stream.RedisEventLog` (a throwaway redis-server is started),
driven by hand as a server would: each gets its first event, then an
``http.disconnect``. The time from that message to the end of the
response's task is the figure, p50 and p99 (the issue's bound is 100 ms;
redis-py held such a task for up to 5 s when the follower itself was inside
a command). Also printed: the subscribers left, and tasks left beside the
log's reader (its publisher started with the first append, before the count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asgi_stream import RedisEventLog, ResumableEventSourceResponse
from asgi_stream.tools.redis_servers import RedisServer

from .run import percentile


async def one_client(log: RedisEventLog, stream: str) -> float:
    """Follow ``stream`` until the first event, leave; seconds until the task ended."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    first_body = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            first_body.set()

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    scope["asgi"] = {"version": "3.0", "spec_version": "2.3"}
    await inbox.put({"type": "http.request", "body": b""})
    response = ResumableEventSourceResponse(log, stream)
    task = asyncio.ensure_future(response(scope, inbox.get, send))
    await asyncio.wait_for(first_body.wait(), 10)
    await asyncio.sleep(0.2)  # every client now waits for the next event
    left = time.perf_counter()
    await inbox.put({"type": "http.disconnect"})
    await asyncio.wait_for(task, 10)
    return time.perf_counter() - left


async def measure(url: str, clients: int) -> dict[str, Any]:
    log = RedisEventLog(url)
    try:
        await log.append("leave", "first")
        before = len(asyncio.all_tasks())
        seconds = await asyncio.gather(*(one_client(log, "leave") for _ in range(clients)))
        ms = [s * 1000 for s in seconds]
        return {
            "clients": clients,
            "p50_ms": statistics.median(ms),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms),
            "subscribers_left": log.subscribers,
            "tasks_left": len(asyncio.all_tasks()) - before,
        }
    finally:
        await log.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp), persistent=False) as redis:
        found = asyncio.run(measure(redis.url, args.clients))
    json.dump(found, sys.stdout)
    print()


if __name__ == "__main__":
    main()
