"""Events per second that one resumable stream reaches: Redis Streams log against the in-memory log.

Run it from the repository root (it starts its own redis-server on a free port)::

    python3 benchmarks/bench_eventlog.py [--events 20000] [--rounds 3]

For each log it measures three rates of a single stream, in rounds that
alternate between the logs (numbers drift between runs on a small machine;
alternating keeps the ratio honest), and reports the median:

* ``append``: one writer appending events one by one, each awaited, as a job
  does;
* ``live``: the writer appends while a :class:`ResumableEventSourceResponse`
  follows the stream live and encodes every event; the time until the
  response has sent the final event;
* ``replay``: a response that resumes at the start of a full stream and sends
  it all (a client coming back after a long absence).

The responses send to a ``send`` that only counts: this measures the log and
the response, not a server or a client. With ``--pin``, redis-server runs on
CPU 0 and Python on CPU 1; that steadies the numbers on a quiet machine, and
hurts on a busy one. The result is written to
``benchmarks/results/eventlog.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asgi_stream import EventLog, open_event_log  # noqa: E402
from asgi_stream.resumable import ResumableEventSourceResponse  # noqa: E402
from asgi_stream.tools.process import serve  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "eventlog.json"
PAYLOAD = json.dumps({"current": 50, "total": 100, "percentage": 50.0, "message": "Processing"})


def redis_command(directory: str, pin: bool) -> list[str]:
    """redis-server without persistence, in ``directory``; :func:`serve` adds ``--port``."""
    argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", directory]
    return ["taskset", "-c", "0", *argv] if pin else argv


async def stream_to_counter(log: EventLog, stream: str) -> int:
    """Run a response for ``stream`` until its final event; the events it sent."""
    sent = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        sent += message.get("body", b"").count(b"\n\n")  # events waiting go out together

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never leaves
        return {"type": "http.disconnect"}

    response = ResumableEventSourceResponse(log, stream, final_events=("done",))
    await response({"type": "http", "method": "GET"}, receive, send)
    return sent


async def append_all(log: EventLog, stream: str, events: int) -> None:
    for _ in range(events - 1):
        await log.append(stream, PAYLOAD)
    await log.append(stream, "Completed", event="done")


async def timed(work: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def one_round(url: str, events: int, round_no: int) -> dict[str, float]:
    # The in-memory writer never yields to the reader: let its buffer hold every event.
    log = open_event_log(url, maxlen=events + 1, max_pending=events + 1)
    try:
        appended = await timed(append_all(log, f"append-{round_no}", events))
        live_stream = f"live-{round_no}"
        reader = asyncio.ensure_future(stream_to_counter(log, live_stream))
        await asyncio.sleep(0.05)  # the reader is waiting before the first event

        async def live() -> None:
            await append_all(log, live_stream, events)
            assert await reader == events

        live_seconds = await timed(live())
        replayed = await timed(stream_to_counter(log, f"append-{round_no}"))
        return {
            "append": events / appended,
            "live": events / live_seconds,
            "replay": events / replayed,
        }
    finally:
        await log.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="redis-server on CPU 0, Python on CPU 1 (a quiet machine)",
    )
    args = parser.parse_args(argv)
    if args.pin:
        os.sched_setaffinity(0, {1})
    with (
        tempfile.TemporaryDirectory() as directory,
        serve(
            redis_command(directory, args.pin),
            Path(directory, "redis.log"),
            start_timeout=10.0,
            stop_timeout=10.0,
        ) as redis,
    ):
        logs: dict[str, str] = {"memory": "memory", "redis": f"redis://127.0.0.1:{redis.port}/0"}
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in logs}
        for round_no in range(args.rounds):
            for name, url in logs.items():
                rounds[name].append(asyncio.run(one_round(url, args.events, round_no)))
        version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True
        ).stdout.split()

    median: Callable[[str, str], float] = lambda name, kind: round(  # noqa: E731
        statistics.median(r[kind] for r in rounds[name])
    )
    kinds = ("append", "live", "replay")
    results = {name: {kind: median(name, kind) for kind in kinds} for name in logs}
    report = {
        "what": "events per second through one stream of the event log, median of the rounds",
        "command": "python3 benchmarks/bench_eventlog.py "
        + f"--events {args.events} --rounds {args.rounds}"
        + (" --pin" if args.pin else ""),
        "events_per_round": args.events,
        "rounds": args.rounds,
        "results": results,
        "redis_over_memory": {
            kind: round(results["redis"][kind] / results["memory"][kind], 4) for kind in kinds
        },
        "all_rounds": rounds,
        "python": platform.python_version(),
        "redis_server": next((w for w in version if w.startswith("v=")), "?")[2:],
        "cpus": os.cpu_count(),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    for name in logs:
        print(f"{name:>7}: " + ", ".join(f"{k} {results[name][k]:,} ev/s" for k in kinds))
    print(f"written to {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
