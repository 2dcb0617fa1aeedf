"""Run every measurement and write the results: ``python3 -m benchmarks [--quick]``.

Theory of operation
===================

Every candidate of :mod:`benchmarks.apps` gets its own server process, all of
them started at once and pinned to CPU 0 (:mod:`benchmarks.server`). This
process is the client and pins itself to CPU 1, so the client never takes
the server's core. Absolute numbers on a shared two-core machine drift by
10-15 % from one minute to the next, so no figure is compared with a figure
from another minute: the rounds are interleaved (bare, asgi-stream, starlette,
..., bare, asgi-stream, ...), each figure is the median of its rounds, and
every candidate is reported as a ratio to the bare ASGI loop of the same run.

The measurements, as the issue names them:

(a) events per second on one stream, with an eager and a batched reader
    (:mod:`benchmarks.client`), and the server's CPU time per event;
(b) time to the first event on fresh connections, p50 and p99;
(c) time to first byte of a new connection while 50 streams saturate the
    server (the generators never await), p50 and p99; then again, for the
    ``StreamingResponse`` candidates, with generators whose chunks are
    almost all, or all, empty (``b""``), which write nothing but must still
    let the event loop serve the others;
(d) idle SSE streams with a 15 s heartbeat, on fresh servers: resident
    memory per stream at 1,000, 5,000 and 10,000 streams (the slope from a
    warm base of 100 streams) and the server's CPU over one heartbeat period;
(e) aggregate events per second with 1, 200 and 1,000 concurrent streams
    of 300 events each (batched reader), and the server's CPU time per event,
    twice: generators that never await, and generators that await before
    every event (as real ones await a queue or a socket). Each stream's own
    cost (request, headers, end) is then the same share of every figure, and
    what changes is what concurrency costs;
(f) fan-out: one producer broadcasts 10 events a second to 1,000 and then
    10,000 subscribers (:mod:`benchmarks.fanout_client`); the server's CPU
    time per delivered event and the producer-to-client latency, p50 and p99;
(g) fan-out across two server processes and Redis, 1,000 and 4,000
    subscribers: asgi-stream's event log against a bare ASGI fan-out on the
    same Redis, broadcaster and Litestar channels, each in its own app
    (:mod:`benchmarks.scaleout`, which writes its own ``scaleout.json`` and
    ``scaleout.md``);
(h) how fast a test reads a stream: :mod:`asgi_stream.testing` and its httpx
    transport against asgiref's ``ApplicationCommunicator`` and a real uvicorn
    with httpx (:mod:`benchmarks.testing_clients`, which writes its own
    ``testing.json`` and ``testing.md``, and runs alone as
    ``python3 -m benchmarks.testing_clients``);
(i) a 200 MB file, downloaded whole: MB/s and the server's CPU per MB, ours
    against Starlette's ``FileResponse`` and nginx (:mod:`benchmarks.files`,
    which writes its own ``files.json`` and ``files.md``);

and, on uvicorn with h11 and on hypercorn, (a) again with the eager reader
for a reduced set of candidates. :mod:`benchmarks.report` writes the JSON,
the markdown table (with the issue's targets, pass or miss) and the chart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from asgi_stream.tools.process import ServerProcess, serve

from . import client, procfs, report
from .apps import CANDIDATES
from .server import raise_open_files_limit

CLIENT_CPU = 1
RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent  # where ``benchmarks.*`` import from
#: A benchmark server (:mod:`benchmarks.server`); the server and candidate follow.
BENCH_SERVER = (sys.executable, "-m", "benchmarks.server")
PRIMARY = "uvicorn-httptools"
READERS = {"eager": False, "batched": True}
# Many streams are read by one epoll loop; the batched reader keeps that loop
# from becoming the bottleneck when a server interleaves small writes.
SCALING_BATCHED = True
SECTIONS = ("a", "b", "c", "d", "e", "f", "g", "h", "i", "secondary")
#: The two kinds of generator of (e): name -> whether it awaits before each event.
GENERATORS = {"never awaits": False, "awaits": True}
#: Candidates that differ from another only in fan-out, so are measured only there.
FANOUT_ONLY = ("asgi-stream broadcast",)
# Where time is short, the FastAPI candidates are left out: FastAPI's StreamingResponse
# is Starlette's, and its own EventSourceResponse is too slow to repeat in the time.
# The ServerSentEvent-items candidate differs from the str one only in its encoding,
# which (a) measures; the coalescing one only shows what the default does anyway.
REDUCED_SET = ("bare", "asgi-stream", "asgi-stream SSE", "starlette", "sse-starlette")


@dataclass(frozen=True)
class Settings:
    """How much of everything to measure. :data:`FULL` fits in 10 minutes here."""

    candidates: tuple[str, ...] = tuple(CANDIDATES)
    events: int = 100_000
    rounds: int = 5
    first_event_samples: int = 400
    fairness_streams: int = 50
    fairness_seconds: float = 3.0
    fairness_events: int = 10_000
    #: The candidates that yield bytes to a StreamingResponse, for the empty-chunk shapes.
    fairness_empty_candidates: tuple[str, ...] = (
        "asgi-stream",
        "asgi-stream coalesce",
        "asgi-stream one per chunk",
    )
    fairness_empty_chunks: int = 100_000
    #: The empty-chunk shapes: (name, one event in every K chunks; 0: none).
    fairness_empty_shapes: tuple[tuple[str, int], ...] = (("mostly empty", 100), ("only empty", 0))
    idle_candidates: tuple[str, ...] = (
        "bare",
        "asgi-stream SSE",
        "starlette",
        "sse-starlette",
        "fastapi SSE",
    )
    idle_base: int = 100
    idle_levels: tuple[int, ...] = (1_000, 5_000, 10_000)
    idle_window: float = 15.0
    scaling_candidates: tuple[str, ...] = REDUCED_SET
    scaling_levels: tuple[int, ...] = (1, 200, 1_000)
    scaling_events_per_stream: int = 300
    scaling_rounds: int = 3
    fanout_candidates: tuple[str, ...] = (
        "bare",
        "asgi-stream SSE",
        "asgi-stream broadcast",
        "starlette",
        "sse-starlette",
    )
    fanout_levels: tuple[int, ...] = (1_000, 10_000)
    fanout_rate: float = 10.0
    fanout_seconds: float = 1.0
    fanout_rounds: int = 2
    scaleout_levels: tuple[int, ...] = (1_000, 4_000)
    scaleout_rate: float = 10.0
    scaleout_seconds: float = 10.0
    scaleout_rounds: int = 3
    testing_events: int = 20_000
    testing_rounds: int = 3
    file_bytes: int = 200 * 1024 * 1024
    file_rounds: int = 3
    secondary_servers: tuple[str, ...] = ("uvicorn-h11", "hypercorn")
    secondary_candidates: tuple[str, ...] = (*REDUCED_SET, "asgi-stream coalesce")
    secondary_events: int = 30_000
    secondary_rounds: int = 3


FULL = Settings()
QUICK = Settings(
    events=2_000,
    rounds=1,
    first_event_samples=10,
    fairness_streams=5,
    fairness_seconds=0.3,
    fairness_events=1_000,
    fairness_empty_chunks=2_000,
    idle_base=10,
    idle_levels=(20, 50),
    idle_window=0.5,
    scaling_levels=(1, 10),
    scaling_events_per_stream=200,
    scaling_rounds=1,
    fanout_levels=(10, 20),
    fanout_seconds=0.3,
    fanout_rounds=1,
    scaleout_levels=(200, 400),
    scaleout_seconds=0.5,
    scaleout_rounds=1,
    testing_events=1_000,
    testing_rounds=1,
    file_bytes=10 * 1024 * 1024,
    file_rounds=1,
    secondary_events=1_000,
    secondary_rounds=1,
)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def servers(
    server: str, candidates: Sequence[str], tmp: Path, cpus: str = "0"
) -> Iterator[dict[str, ServerProcess]]:
    """One server process per candidate, all started at once, on ``cpus``."""
    with contextlib.ExitStack() as stack:
        running = {
            name: stack.enter_context(
                serve(
                    [*BENCH_SERVER, server, CANDIDATES[name][0], "--cpus", cpus],
                    tmp / f"{server}-{name}.log",
                    cwd=ROOT,
                    start_timeout=20.0,
                )
            )
            for name in candidates
        }
        try:
            yield running
        finally:
            for process in running.values():
                process.stop(timeout=5.0)


def with_ratios(medians: dict[str, float], base: str = "bare") -> dict[str, float | None]:
    floor = medians.get(base)
    return {name: (value / floor if floor else None) for name, value in medians.items()}


# -- (a) one stream ------------------------------------------------------------------------------


def throughput(
    running: dict[str, ServerProcess], events: int, rounds: int, readers: dict[str, bool]
) -> dict[str, Any]:
    rates: dict[str, dict[str, list[float]]] = {r: {c: [] for c in running} for r in readers}
    cpu: dict[str, dict[str, list[float]]] = {r: {c: [] for c in running} for r in readers}
    for _ in range(rounds):
        for reader, batched in readers.items():
            for name, server in running.items():
                before = procfs.cpu_seconds(server.process.pid)
                seconds, counted = client.read_stream(server.port, events, batched)
                used = procfs.cpu_seconds(server.process.pid) - before
                if counted != events:
                    raise RuntimeError(f"{name}: {counted} events arrived, {events} were sent")
                rates[reader][name].append(events / seconds)
                cpu[reader][name].append(used / events * 1e6)
    result: dict[str, Any] = {}
    for reader in readers:
        medians = {name: statistics.median(values) for name, values in rates[reader].items()}
        ratios = with_ratios(medians)
        result[reader] = {
            name: {
                "events_per_s": medians[name],
                "ratio_to_bare": ratios[name],
                "cpu_us_per_event": statistics.median(cpu[reader][name]),
                "rounds": rates[reader][name],
            }
            for name in running
        }
    return result


# -- (b) first event -----------------------------------------------------------------------------


def first_event(running: dict[str, ServerProcess], samples: int) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {name: [] for name in running}
    batch = 10
    for _ in range(max(1, samples // batch)):
        for name, server in running.items():
            latencies[name].extend(client.time_to_first(server.port) for _ in range(batch))
    bare = latencies.get("bare")
    result = {}
    for name, values in latencies.items():
        p50, p99 = percentile(values, 50) * 1e3, percentile(values, 99) * 1e3
        entry = {"p50_ms": p50, "p99_ms": p99, "samples": len(values)}
        if bare:
            entry["p50_minus_bare_ms"] = p50 - percentile(bare, 50) * 1e3
            entry["p99_minus_bare_ms"] = p99 - percentile(bare, 99) * 1e3
        result[name] = entry
    return result


# -- (c) fairness --------------------------------------------------------------------------------


def fairness(
    running: dict[str, ServerProcess], streams: int, path: str, seconds: float
) -> dict[str, Any]:
    """Each candidate's probes while ``streams`` streams of ``path`` keep it busy."""
    result = {}
    pids = [server.process.pid for server in running.values()]
    for name, server in running.items():
        latencies = client.fairness(server.port, streams, path, seconds)
        result[name] = {
            "p50_ms": percentile(latencies, 50) * 1e3,
            "p99_ms": percentile(latencies, 99) * 1e3,
            "max_ms": max(latencies) * 1e3,
            "probes": len(latencies),
        }
        # A response that never yields is still sending abandoned streams.
        procfs.wait_until_quiet(pids)
    return result


# -- (d) idle streams ----------------------------------------------------------------------------


class ClientProcess:
    """A client in a process of its own (:mod:`benchmarks.idle_client`,
    :mod:`benchmarks.fanout_client`), spoken to one line at a time."""

    def __init__(self, module: str, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the idle client exited with {self.process.wait(10)}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.send("quit")
            self.process.wait(30)


def all_answer(clients: dict[str, ClientProcess], command: str) -> dict[str, dict[str, Any]]:
    """Give every client the same command at once, then collect the answers."""
    for idle in clients.values():
        idle.send(command)
    return {name: idle.answer() for name, idle in clients.items()}


def idle_streams(settings: Settings, tmp: Path) -> dict[str, Any]:
    candidates = [name for name in settings.idle_candidates if name in settings.candidates]
    # Memory and idle CPU do not depend on the core, and opening 10,000 streams on
    # each server goes twice as fast when the servers may use both.
    with servers(PRIMARY, candidates, tmp, "0,1") as running, contextlib.ExitStack() as stack:
        clients = {
            name: ClientProcess("benchmarks.idle_client", server.port)
            for name, server in running.items()
        }
        for idle in clients.values():
            stack.callback(idle.close)
        pid = {name: server.process.pid for name, server in running.items()}
        all_answer(clients, f"open {settings.idle_base}")
        time.sleep(0.5)
        base = {name: procfs.rss_kib(pid[name]) for name in running}
        per_stream: dict[str, dict[str, float]] = {name: {} for name in running}
        rss: dict[str, dict[str, int]] = {name: {} for name in running}
        for level in settings.idle_levels:
            log(f"(d) opening {level} idle streams on each server")
            all_answer(clients, f"open {level}")
            time.sleep(1.0)
            for name in running:
                rss[name][str(level)] = procfs.rss_kib(pid[name])
                grown = rss[name][str(level)] - base[name]
                per_stream[name][str(level)] = grown * 1.024 / (level - settings.idle_base)
        log(f"(d) measuring idle CPU over {settings.idle_window} s")
        before = {name: procfs.cpu_seconds(pid[name]) for name in running}
        time.sleep(settings.idle_window)
        used = {name: procfs.cpu_seconds(pid[name]) - before[name] for name in running}
        heard = all_answer(clients, "heard")
    top = str(settings.idle_levels[-1])
    return {
        name: {
            "kb_per_stream": per_stream[name],
            "rss_kib": {"base": base[name], **rss[name]},
            "kb_per_stream_at_top": per_stream[name][top],
            "idle_cpu_percent": used[name] / settings.idle_window * 100,
            "streams_with_heartbeat": heard[name]["heard"],
        }
        for name in running
    }


# -- (e) many streams ----------------------------------------------------------------------------


def scaling(
    running: dict[str, ServerProcess],
    levels: Sequence[int],
    events: int,
    rounds: int,
    awaiting: bool,
) -> dict[str, Any]:
    rates: dict[str, dict[int, list[float]]] = {c: {n: [] for n in levels} for c in running}
    cpu: dict[str, dict[int, list[float]]] = {c: {n: [] for n in levels} for c in running}
    for level in levels:
        for _ in range(rounds):
            for name, server in running.items():
                before = procfs.cpu_seconds(server.process.pid)
                seconds, counted = client.aggregate(
                    server.port, level, events, SCALING_BATCHED, awaiting
                )
                used = procfs.cpu_seconds(server.process.pid) - before
                expected = events * level
                if counted != expected:
                    raise RuntimeError(f"{name}: {counted} of {expected} events with {level}")
                rates[name][level].append(counted / seconds)
                cpu[name][level].append(used / counted * 1e6)
    result = {}
    bare_cpu = {level: statistics.median(values) for level, values in cpu.get("bare", {}).items()}
    for name, by_level in rates.items():
        medians = {level: statistics.median(values) for level, values in by_level.items()}
        cpu_medians = {level: statistics.median(values) for level, values in cpu[name].items()}
        first = medians[levels[0]]
        result[name] = {
            "events_per_s": {str(level): value for level, value in medians.items()},
            "ratio_to_one_stream": {str(level): value / first for level, value in medians.items()},
            "cpu_us_per_event": {str(level): value for level, value in cpu_medians.items()},
            "cpu_ratio_to_bare": {
                str(level): value / bare_cpu[level]
                for level, value in cpu_medians.items()
                if bare_cpu.get(level)
            },
            # What the server could sustain if it did nothing else (1 / CPU per event),
            # relative to one stream: one short stream's events/s is bound by latency.
            "capacity_ratio_to_one_stream": {
                str(level): cpu_medians[levels[0]] / value for level, value in cpu_medians.items()
            },
        }
    return result


# -- (f) fan-out --------------------------------------------------------------------------------


def fanout(settings: Settings, tmp: Path) -> dict[str, Any]:
    """One producer, many subscribers: CPU per delivered event, and latency."""
    candidates = [name for name in settings.fanout_candidates if name in settings.candidates]
    result: dict[str, Any] = {name: {} for name in candidates}
    # Opening 10,000 subscriptions goes twice as fast on both cores; the CPU time
    # per event is counted in the kernel's clock, whichever core it ran on.
    with servers(PRIMARY, candidates, tmp, "0,1") as running, contextlib.ExitStack() as stack:
        clients = {
            name: ClientProcess("benchmarks.fanout_client", server.port)
            for name, server in running.items()
        }
        for subscribers in clients.values():
            stack.callback(subscribers.close)
        for level in settings.fanout_levels:
            log(f"(f) opening {level} subscriptions on each server")
            all_answer(clients, f"open {level}")
            cpu: dict[str, list[float]] = {name: [] for name in running}
            latencies: dict[str, list[float]] = {name: [] for name in running}
            delivered: dict[str, float] = {name: 0.0 for name in running}
            for _ in range(settings.fanout_rounds):
                for name, server in running.items():
                    # The client answers once the subscribers have been quiet for a while.
                    before = procfs.cpu_seconds(server.process.pid)
                    clients[name].send(f"measure {settings.fanout_seconds} {settings.fanout_rate}")
                    answer = clients[name].answer()
                    used = procfs.cpu_seconds(server.process.pid) - before
                    expected = answer["published"] * level
                    if not answer["delivered"]:
                        raise RuntimeError(f"{name}: no event reached {level} subscribers")
                    cpu[name].append(used / answer["delivered"] * 1e6)
                    latencies[name].extend(answer["latencies"])
                    delivered[name] += answer["delivered"] / expected / settings.fanout_rounds
            for name in running:
                result[name][str(level)] = {
                    "cpu_us_per_event": statistics.median(cpu[name]),
                    "p50_ms": percentile(latencies[name], 50) * 1e3,
                    "p99_ms": percentile(latencies[name], 99) * 1e3,
                    "delivered_share": delivered[name],
                    "samples": len(latencies[name]),
                }
    for levels in result.values():
        for level, entry in levels.items():
            bare = result.get("bare", {}).get(level)
            if bare:
                entry["cpu_ratio_to_bare"] = entry["cpu_us_per_event"] / bare["cpu_us_per_event"]
    return result


# -- the run -------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("uvicorn", "httptools", "uvloop", "h11", "hypercorn", "starlette"):
        found[package] = metadata.version(package)
    for package in ("fastapi", "sse-starlette"):
        found[package] = metadata.version(package)
    return found


def scaleout(settings: Settings, output: Path) -> dict[str, Any]:
    """(g): :mod:`benchmarks.scaleout`, which writes ``scaleout.json`` and ``scaleout.md``."""
    from . import scaleout as measure_scaleout  # it imports this module's helpers
    from .scaleout_apps import CANDIDATES as SCALEOUT_CANDIDATES

    command = "python3 -m benchmarks --sections g (benchmarks/scaleout.py)"
    report_ = measure_scaleout.run(
        settings.scaleout_levels,
        settings.scaleout_rate,
        settings.scaleout_seconds,
        list(SCALEOUT_CANDIDATES),
        output / "scaleout",
        command,
        rounds=settings.scaleout_rounds,
    )
    return {"see": "scaleout.md", "targets": report_["targets"]}


def testing_clients(settings: Settings, output: Path) -> dict[str, Any]:
    """(h): :mod:`benchmarks.testing_clients`, which writes ``testing.json`` and ``testing.md``."""
    from . import testing_clients as measure_testing  # it imports this module's helpers

    command = "python3 -m benchmarks --sections h (benchmarks/testing_clients.py)"
    found = measure_testing.run(settings.testing_events, settings.testing_rounds, output, command)
    return {"see": "testing.md", "readers": found["readers"]}


def files(settings: Settings, output: Path) -> dict[str, Any]:
    """(i): :mod:`benchmarks.files`, which writes ``files.json`` and ``files.md``."""
    from . import files as measure_files  # it imports this module's helpers

    command = "python3 -m benchmarks --sections i (benchmarks/files.py)"
    report_ = measure_files.run(output, command, settings.file_bytes, settings.file_rounds)
    return {"see": "files.md", "target": report_["target"]}


def measure(
    settings: Settings, sections: Sequence[str], tmp: Path, output: Path = RESULTS
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    candidates = [name for name in settings.candidates if name not in FANOUT_ONLY]
    timed: dict[str, float] = {}

    def section(key: str, label: str, run: Callable[[], Any], into: str | None = None) -> None:
        """Run section ``key`` if it was asked for; its results go in ``results[into or key]``."""
        if key in sections:
            log(label)
            started = time.monotonic()
            results[into or key] = run()
            timed[into or key] = round(time.monotonic() - started, 1)

    primary_sections = {"a", "b", "c", "e"} & set(sections)
    if primary_sections:
        with servers(PRIMARY, candidates, tmp) as running:
            for server in running.values():  # warm up: imports, caches, first allocations
                client.read_stream(server.port, min(settings.events, 10_000), False)
            section(
                "a",
                "(a) one stream",
                lambda: throughput(running, settings.events, settings.rounds, READERS),
            )
            section(
                "b", "(b) first event", lambda: first_event(running, settings.first_event_samples)
            )
            subset = {c: s for c, s in running.items() if c in settings.scaling_candidates}
            section(
                "e",
                "(e) concurrent streams",
                lambda: {
                    kind: scaling(
                        subset,
                        settings.scaling_levels,
                        settings.scaling_events_per_stream,
                        settings.scaling_rounds,
                        awaiting,
                    )
                    for kind, awaiting in GENERATORS.items()
                },
            )
            section(
                "c",
                "(c) fairness",
                lambda: fairness(
                    running,
                    settings.fairness_streams,
                    client.stream_path(settings.fairness_events),
                    settings.fairness_seconds,
                ),
            )
            emptying = {c: s for c, s in running.items() if c in settings.fairness_empty_candidates}
            section(
                "c",
                "(c) fairness, empty chunks",
                lambda: {
                    shape: fairness(
                        emptying,
                        settings.fairness_streams,
                        client.stream_path(settings.fairness_empty_chunks, empty=every),
                        settings.fairness_seconds,
                    )
                    for shape, every in settings.fairness_empty_shapes
                },
                into="c_empty",
            )
    section("d", "(d) idle streams", lambda: idle_streams(settings, tmp))
    section("f", "(f) fan-out", lambda: fanout(settings, tmp))
    section("g", "(g) fan-out across two processes and Redis", lambda: scaleout(settings, output))
    section("h", "(h) a test reading a stream", lambda: testing_clients(settings, output))
    section("i", "(i) a 200 MB file", lambda: files(settings, output))

    def secondary() -> dict[str, Any]:
        chosen = [c for c in settings.secondary_candidates if c in candidates]
        found = {}
        for server in settings.secondary_servers:
            log(f"    {server}")
            with servers(server, chosen, tmp) as running:
                found[server] = throughput(
                    running,
                    settings.secondary_events,
                    settings.secondary_rounds,
                    {"eager": False},
                )["eager"]
        return found

    section("secondary", "(a) on the secondary servers", secondary)
    results["seconds_per_section"] = timed
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, for development")
    parser.add_argument("--candidates", help="comma-separated subset of: " + ", ".join(CANDIDATES))
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for the results")
    args = parser.parse_args(argv)

    settings = QUICK if args.quick else FULL
    if args.candidates:
        chosen = tuple(name.strip() for name in args.candidates.split(","))
        unknown = set(chosen) - set(CANDIDATES)
        if unknown:
            parser.error(f"unknown candidates: {', '.join(sorted(unknown))}")
        settings = replace(settings, candidates=chosen)
    sections = [s.strip() for s in args.sections.split(",")]

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CPU})
    raise_open_files_limit()
    started = time.time()
    busy_before, own_before = procfs.machine_busy_seconds(), procfs.own_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(settings, sections, Path(tmp), args.output)
    results["meta"] = {
        "command": " ".join(["python3 -m benchmarks", *(sys.argv[1:] if argv is None else argv)]),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        # Cores kept busy by other processes than this run's, on average.
        "other_load": round(
            (procfs.machine_busy_seconds() - busy_before - (procfs.own_seconds() - own_before))
            / (time.time() - started),
            2,
        ),
        "seconds": round(time.time() - started, 1),
        "quick": args.quick,
        "primary_server": PRIMARY,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions(),
        "settings": asdict(settings),
        "candidates": {name: CANDIDATES[name][1] for name in settings.candidates},
    }
    paths = report.write(results, args.output)
    log("wrote " + ", ".join(str(path) for path in paths))
