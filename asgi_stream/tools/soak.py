"""``asgi-stream soak``: mixed load on a real server for a set time, then what it left behind.

Theory of operation
===================

A leak does not show in one request. It shows as a slope: resident memory,
or the count of open file descriptors, that climbs a little with every
thousand requests and never comes down. A soak finds it by doing the same
mixed work for a long time and watching those numbers from outside.

The command starts ``asgi-stream serve`` (the catalogue, one worker, on a
free port of 127.0.0.1) and runs ``--clients`` concurrent clients against it
until ``--duration`` seconds have passed. Each client loops over the
scenarios a streaming server meets in real life (:data:`SCENARIOS`):

* ``short``: ``GET /stream``, five events, read to its clean end;
* ``endless``: ``GET /logs``, an endless stream, read for a while and left;
* ``chat``: ``POST /chat-stream`` with a small body, read to its end;
* ``disconnect``: ``GET /progress``, dropped mid-body, half the time with a
  TCP reset rather than a polite close;
* ``head``: ``HEAD /logs``, which must answer at once although the stream
  behind it is endless.

Every second the command samples the server's resident memory and open file
descriptors from ``/proc`` (so it runs on Linux only). At the end it lets the
streams wind down, takes a last sample, stops the server with SIGTERM and
reports: requests and errors per scenario (a wrong status, a body that did not
end cleanly, a timeout), the resident-memory slope (a least squares fit after
the first tenth, the warm-up, and another over the last half: a leak keeps
its slope to the end, a warming cache levels off), the descriptor count at
the start and at the end, the lines the server logged at error level, and its
exit status. The exit status of the command is 0 when nothing went wrong.

The client speaks HTTP/1.1 over raw asyncio streams (one request per
connection, ``Connection: close``; see :mod:`asgi_stream.tools.rawhttp`): it is
cheap, so the server gets the load, and it can leave at any byte, which no
ordinary client lets you choose. The reliability tests use it for the same
reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .process import open_fds, rss_kib, serve
from .rawhttp import TIMEOUT, abort, connect, fetch, read_body, read_head, request_bytes

__all__ = [
    "SCENARIOS",
    "SoakReport",
    "add_command",
    "open_stream",
    "soak",
]

# The scenarios. Each returns normally when the server behaved, raises otherwise.


async def short_stream(port: int, rng: random.Random) -> None:
    reply = await fetch(port, "GET", "/stream")
    _expect(reply.status == 200 and reply.complete, "incomplete")
    _expect(reply.body.count(b"data: ") == 5, "wrong body")


async def open_stream(
    port: int, target: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]]:
    """GET ``target`` and read the response head; any status but 200 is an error."""
    reader, writer = await connect(port)
    try:
        writer.write(request_bytes("GET", target))
        status, headers = await read_head(reader)
        _expect(status == 200, "status")
    except BaseException:
        writer.close()
        raise
    return reader, writer, headers


async def endless_stream(port: int, rng: random.Random) -> None:
    reader, writer, _ = await open_stream(port, "/logs")
    try:
        # A line arrives for each request the server logs; a quiet spell is no error.
        deadline = time.monotonic() + rng.uniform(0.2, 2.0)
        with contextlib.suppress(TimeoutError):
            while time.monotonic() < deadline:
                remaining = deadline - time.monotonic()
                if not await asyncio.wait_for(reader.read(65536), remaining):
                    raise SoakError("incomplete")  # an endless stream never ends by itself
    finally:
        writer.close()


async def chat(port: int, rng: random.Random) -> None:
    reply = await fetch(port, "POST", "/chat-stream?message=hello", body=b'{"history": []}')
    _expect(reply.status == 200 and reply.complete, "incomplete")
    _expect(b"data: " in reply.body, "wrong body")


async def disconnect(port: int, rng: random.Random) -> None:
    reader, writer, headers = await open_stream(port, "/progress")
    try:
        await read_body(reader, headers, limit=rng.randint(1, 2000))
    finally:
        if rng.random() < 0.5:
            abort(writer)
        else:
            writer.close()


async def head(port: int, rng: random.Random) -> None:
    reply = await fetch(port, "HEAD", "/logs")
    _expect(reply.status == 200, "status")


#: name -> scenario; each client picks one at random for each request.
SCENARIOS: dict[str, Callable[[int, random.Random], Any]] = {
    "short": short_stream,
    "endless": endless_stream,
    "chat": chat,
    "disconnect": disconnect,
    "head": head,
}


class SoakError(Exception):
    """A scenario saw the server misbehave; the message is the kind of error."""


def _expect(condition: bool, kind: str) -> None:
    if not condition:
        raise SoakError(kind)


@dataclass
class SoakReport:
    """What a soak found. Memory in KiB, the slope in KiB per minute."""

    server: str
    seconds: float
    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    rss_kib_start: int = 0
    rss_kib_end: int = 0
    rss_slope_kib_per_min: float = 0.0
    rss_slope_last_half_kib_per_min: float = 0.0
    fds_start: int = 0
    fds_peak: int = 0
    fds_end: int = 0
    server_errors: list[str] = field(default_factory=list)
    exit_status: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.server_errors and self.exit_status == 0

    def text(self) -> str:
        requests = ", ".join(f"{name} {count}" for name, count in self.requests.items())
        errors = ", ".join(f"{kind} {count}" for kind, count in self.errors.items()) or "none"
        return "\n".join(
            [
                f"soak on {self.server}: {self.seconds:.0f} s, "
                f"{sum(self.requests.values())} requests ({requests})",
                f"client errors: {errors}",
                f"resident memory: {self.rss_kib_start} KiB -> {self.rss_kib_end} KiB, "
                f"slope {self.rss_slope_kib_per_min:+.1f} KiB/min "
                f"({self.rss_slope_last_half_kib_per_min:+.1f} over the last half)",
                f"file descriptors: {self.fds_start} at the start, peak {self.fds_peak}, "
                f"{self.fds_end} at the end",
                f"server log lines at error level: {len(self.server_errors)}",
                *(f"  {line}" for line in self.server_errors[:10]),
                f"server exit status: {self.exit_status}",
                "result: " + ("OK" if self.ok else "FAILED"),
            ]
        )


def slope_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least squares slope of (seconds, KiB) samples, in KiB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in samples) / spread


async def run_load(
    port: int, pid: int, duration: float, clients: int, seed: int, report: SoakReport
) -> None:
    """Run the clients for ``duration`` seconds, sampling the server every second."""
    requests: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    stop = time.monotonic() + duration
    names = list(SCENARIOS)

    async def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        while time.monotonic() < stop:
            name = rng.choice(names)
            requests[name] += 1
            try:
                await asyncio.wait_for(SCENARIOS[name](port, rng), 4 * TIMEOUT)
            except SoakError as exc:
                errors[f"{name}: {exc}"] += 1
            except TimeoutError:  # before OSError, of which it is a subclass
                errors[f"{name}: timeout"] += 1
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                errors[f"{name}: {type(exc).__name__}"] += 1

    samples: list[tuple[float, int]] = []
    began = time.monotonic()
    tasks = [asyncio.create_task(client(number)) for number in range(clients)]
    report.rss_kib_start, report.fds_start = rss_kib(pid), open_fds(pid)
    while not all(task.done() for task in tasks):
        await asyncio.wait(tasks, timeout=1.0)
        samples.append((time.monotonic() - began, rss_kib(pid)))
        report.fds_peak = max(report.fds_peak, open_fds(pid))
    await asyncio.gather(*tasks)
    warm = samples[len(samples) // 10 :]
    report.rss_slope_kib_per_min = round(slope_per_minute(warm), 1)
    # A leak climbs at the same rate to the end; warming caches level off.
    report.rss_slope_last_half_kib_per_min = round(
        slope_per_minute(samples[len(samples) // 2 :]), 1
    )
    report.requests = dict(sorted(requests.items()))
    report.errors = dict(sorted(errors.items()))


def soak(
    duration: float = 600.0,
    server: str = "uvicorn",
    clients: int = 50,
    tick: float = 0.01,
    seed: int = 0,
    log_path: Path | None = None,
) -> SoakReport:
    """Serve the catalogue, run the mixed load for ``duration`` seconds, report."""
    log_path = log_path or Path(tempfile.mkstemp(prefix="asgi-stream-soak-", suffix=".log")[1])
    command = [sys.executable, "-m", "asgi_stream", "serve", "--server", server]
    command += ["--tick", str(tick)]
    report = SoakReport(server=server, seconds=duration)
    with serve(command, log_path) as running:
        pid = running.process.pid
        asyncio.run(run_load(running.port, pid, duration, clients, seed, report))
        time.sleep(1.0)  # the server notices the last disconnects
        report.rss_kib_end, report.fds_end = rss_kib(pid), open_fds(pid)
        report.exit_status = running.stop(signal.SIGTERM, timeout=30)
    output = running.output().splitlines()
    report.server_errors = [line for line in output if "ERROR" in line or "Traceback" in line]
    return report


def add_command(commands: Any) -> None:
    """Add ``soak`` to the command line's subcommands (an argparse subparsers object)."""
    parser = commands.add_parser(
        "soak",
        help="run a mixed load against the catalogue and report leaks and errors",
        description="Serve the catalogue on 127.0.0.1, run short streams, endless streams, "
        "chat POSTs, disconnects and HEAD requests against it for a set time, and report "
        "the resident-memory slope, file descriptors and error counts. Linux only.",
    )
    parser.set_defaults(command=_run)
    parser.add_argument(
        "--duration", type=float, default=600.0, help="seconds (default: %(default)s)"
    )
    parser.add_argument("--server", choices=("uvicorn", "hypercorn"), default="uvicorn")
    parser.add_argument(
        "--clients", type=int, default=50, help="concurrent clients (default: %(default)s)"
    )
    parser.add_argument(
        "--tick", type=float, default=0.01, help="the catalogue's pace (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="for the clients' random choices")
    parser.add_argument("--log", type=Path, help="where to keep the server's output")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _run(args: argparse.Namespace) -> int:
    report = soak(args.duration, args.server, args.clients, args.tick, args.seed, args.log)
    print(json.dumps(asdict(report), indent=2) if args.json else report.text())
    return 0 if report.ok else 1
