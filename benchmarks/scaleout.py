"""Fan-out across two worker processes and Redis: ``python3 -m benchmarks.scaleout``.

Theory of operation
===================

Each candidate of :mod:`benchmarks.scaleout_apps` is served by *two* server
processes (:mod:`benchmarks.server`, uvicorn with httptools, both free to use
both cores), which share one Redis started here, fresh for each candidate.
Subscribers are spread evenly over the two, each half held by a client
process of its own (:mod:`benchmarks.fanout_client`). For each level (1,000
and 4,000 subscribers in all, by default):

1. **Memory per idle subscriber**: the growth of both servers' resident
   memory from a warm base of 50 subscribers each, divided by the
   subscribers added. It is what a subscriber costs on top of the server.
2. **Fan-out**: one process publishes ``RATE`` events a
   second for ``SECONDS`` (each event's data is its ``time.monotonic()``);
   the events go through Redis to both processes' subscribers. The
   in-memory candidates cannot cross processes, so there each process
   publishes to its own half. The clients count every event delivered, and
   time those reaching 100 probes per client (publish-to-deliver latency, by
   the subscribers' clock: the machine's monotonic clock, shared by every
   process).
3. **CPU**: both servers' CPU seconds during each round (from ``/proc``),
   and Redis's. *Delivered events per server CPU second* is the events the
   clients counted over the servers' CPU time.

All of it ``ROUNDS`` times, as passes over every candidate in turn (each
pass starts the servers again); a level reports the median of its rounds
(and every round, in the JSON).

**The Redis under test** is started for each candidate by a function that
gives a :class:`RedisUnderTest`: its URL (what the candidates get as
``BENCH_REDIS_URL``) and the process IDs whose CPU is counted as Redis's.
:func:`one_redis` is one ``redis-server``; :func:`cluster_redis` a Redis
Cluster of 3 masters and 3 replicas, which serves ``asgi-stream redis
cluster`` (the same app as ``asgi-stream redis``, on the cluster). The
rivals have no cluster support, so the cluster's targets are ratios to them
and to the bare fan-out on one Redis, in the same run.

The machine is shared and has 2 cores, which the servers, Redis and the
clients all use: read ratios between candidates of the same run, not
absolute figures. Results go to ``benchmarks/results/scaleout.json`` and
``scaleout.md``, with the issue's targets for ``asgi-stream redis`` marked
pass or miss.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from asgi_stream.tools.process import serve
from asgi_stream.tools.redis_servers import RedisCluster, RedisServer

from . import procfs
from .run import BENCH_SERVER, PRIMARY, RESULTS, ROOT, ClientProcess, log, percentile
from .scaleout_apps import CANDIDATES

BASE = 50  # subscribers per process before the memory base is read
QUIET = 3.0  # seconds without an event that end the counting
ROUNDS = 3  # passes over every candidate; a level reports the median of its rounds
SUBJECT = "asgi-stream redis"
SUBJECT_CLUSTER = "asgi-stream redis cluster"  # served from cluster_redis()
BARE = "bare ASGI (the server's own cost)"
BARE_REDIS = "bare ASGI redis (the floor on Redis)"
FLOOR = "asgi-stream memory (floor)"
RIVALS = ("broadcaster redis", "litestar redis streams")
#: The issue's targets, checked on SUBJECT (and SUBJECT_CLUSTER) at every level.
TARGET_OVER_RIVALS = 1.2  # events per server CPU second, over the best rival's
TARGET_OVER_BARE = 0.95  # ... and over the bare fan-out reading the same Redis
TARGET_EXTRA_KB = 2.0  # memory per idle subscriber, over the bare fan-out on Redis
LATENCY_LIMIT_MS = 100.0


@dataclasses.dataclass(frozen=True)
class RedisUnderTest:
    """A running Redis for the candidates: its URL, and the processes whose CPU is its own."""

    url: str
    pids: tuple[int, ...]


@contextlib.contextmanager
def one_redis(tmp: Path) -> Iterator[RedisUnderTest]:
    """One redis-server, as the :class:`RedisUnderTest` of a run."""
    with RedisServer(Path(tempfile.mkdtemp(dir=tmp)), persistent=False) as server:
        yield RedisUnderTest(server.url, (server.process.pid,))


@contextlib.contextmanager
def cluster_redis(tmp: Path) -> Iterator[RedisUnderTest]:
    """A Redis Cluster of 3 masters and 3 replicas: every node's CPU is Redis's."""
    with RedisCluster(Path(tempfile.mkdtemp(dir=tmp)), persistent=False) as cluster:
        yield RedisUnderTest(cluster.url, tuple(node.process.pid for node in cluster.nodes))


def measure_candidate(
    name: str, redis: RedisUnderTest, levels: Sequence[int], seconds: float, rate: float, tmp: Path
) -> dict[str, Any]:
    """One pass of ``name``: per level, the memory per idle subscriber and one round of fan-out."""
    attribute, through_redis = CANDIDATES[name]
    env = {"BENCH_REDIS_URL": redis.url}
    command = [*BENCH_SERVER, PRIMARY, f"benchmarks.scaleout_apps:{attribute}", "--cpus", "0,1"]
    result: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                serve(
                    command,
                    tmp / f"{attribute}-{i}.log",
                    cwd=ROOT,
                    env=env,
                    start_timeout=20,
                    stop_timeout=3,  # the bare candidate never notices its clients left
                )
            )
            for i in range(2)
        ]
        clients = [ClientProcess("benchmarks.fanout_client", server.port) for server in servers]
        for client in clients:
            stack.callback(client.close)
        pids = [server.process.pid for server in servers]
        for client in clients:
            client.send(f"open {BASE}")
        for client in clients:
            client.answer()
        time.sleep(0.5)
        base_rss = sum(procfs.rss_kib(pid) for pid in pids)
        for level in levels:
            log(f"scale-out: {name}, {level} subscribers")
            for client in clients:
                client.send(f"open {level // 2}")
            for client in clients:
                client.answer()
            time.sleep(1.0)
            grown = sum(procfs.rss_kib(pid) for pid in pids) - base_rss
            figures = fan_out(clients, pids, redis, level, seconds, rate, through_redis)
            figures["kib_per_idle_subscriber"] = grown / (level - 2 * BASE)
            result[str(level)] = figures
            log(f"  {json.dumps(figures)}")
    return result


def fan_out(
    clients: Sequence[ClientProcess],
    pids: Sequence[int],
    redis: RedisUnderTest,
    level: int,
    seconds: float,
    rate: float,
    through_redis: bool,
) -> dict[str, Any]:
    """One round of publishing: what was delivered, at what CPU and latency."""
    cpu_before = sum(procfs.cpu_seconds(pid) for pid in pids)
    redis_before = sum(procfs.cpu_seconds(pid) for pid in redis.pids)
    # A server that two others keep off the CPU can pause for longer than
    # the clients' usual quiet time: wait QUIET seconds of silence.
    clients[0].send(f"measure {seconds} {rate} {QUIET}")
    listen = "listen" if through_redis else "measure"
    clients[1].send(f"{listen} {seconds} {rate} {QUIET}")
    answers = [client.answer() for client in clients]
    cpu = sum(procfs.cpu_seconds(pid) for pid in pids) - cpu_before
    published = sum(answer["published"] for answer in answers)
    latencies = [ms * 1000 for answer in answers for ms in answer["latencies"]]
    return {
        "published": published,
        "expected": published * level if through_redis else published * level // 2,
        "delivered": sum(answer["delivered"] for answer in answers),
        "server_cpu_seconds": cpu,
        "redis_cpu_seconds": sum(procfs.cpu_seconds(pid) for pid in redis.pids) - redis_before,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
    }


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A level's figures from its rounds: the counts summed, the median of each rate,
    latency and memory reading."""

    def median(key: str) -> float | None:
        values = [r[key] for r in rounds if r[key] is not None]
        return statistics.median(values) if values else None

    for r in rounds:
        cpu = r["server_cpu_seconds"]
        r["delivered_per_cpu_second"] = r["delivered"] / cpu if cpu else None
    expected = sum(r["expected"] for r in rounds)
    delivered = sum(r["delivered"] for r in rounds)
    return {
        "published": sum(r["published"] for r in rounds),
        "delivered": delivered,
        "delivered_share": delivered / expected if expected else None,
        "server_cpu_seconds": sum(r["server_cpu_seconds"] for r in rounds),
        "delivered_per_cpu_second": median("delivered_per_cpu_second"),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "redis_cpu_seconds": sum(r["redis_cpu_seconds"] for r in rounds),
        "kib_per_idle_subscriber": median("kib_per_idle_subscriber"),
        "rounds": rounds,
    }


def held_per_process(per_level: dict[str, Any]) -> int:
    """The most subscribers per process measured with p99 within the limit (0: none)."""
    held = [
        int(level) // 2
        for level, figures in per_level.items()
        if figures["p99_ms"] is not None and figures["p99_ms"] <= LATENCY_LIMIT_MS
    ]
    return max(held, default=0)


def ratio(results: dict[str, dict[str, Any]], name: str, other: str, level: str) -> float | None:
    """``name``'s delivered events per server CPU second over ``other``'s, at ``level``."""
    ours = results[name][level]["delivered_per_cpu_second"]
    theirs = results[other][level]["delivered_per_cpu_second"]
    return ours / theirs if ours and theirs else None


def targets(results: dict[str, dict[str, Any]], levels: Sequence[int]) -> list[dict[str, Any]]:
    """The issue's targets, for :data:`SUBJECT` and (if measured) :data:`SUBJECT_CLUSTER`."""
    rows = []
    for name in (SUBJECT, SUBJECT_CLUSTER):
        if name in results:
            for row in subject_targets(results, levels, name):
                rows.append({**row, "target": f"{name}: {row['target']}"})
    return rows


def subject_targets(
    results: dict[str, dict[str, Any]], levels: Sequence[int], name: str
) -> list[dict[str, Any]]:
    """The issue's targets for candidate ``name``: what was measured, and pass or miss."""
    subject = results[name]
    rows = []

    def row(target: str, measured: str | None, passed: bool) -> None:
        rows.append({"target": target, "measured": measured, "pass": passed})

    for level in map(str, levels):
        best = max(RIVALS, key=lambda rival: results[rival][level]["delivered_per_cpu_second"] or 0)
        over_rival = ratio(results, name, best, level)
        row(
            f">= {TARGET_OVER_RIVALS:g}x the best rival's events per server CPU s at {level} "
            f"({best})",
            None if over_rival is None else f"{over_rival:.2f}x",
            over_rival is not None and over_rival >= TARGET_OVER_RIVALS,
        )
        over_bare = ratio(results, name, BARE_REDIS, level)
        row(
            f">= {TARGET_OVER_BARE:g}x the bare fan-out on Redis at {level}",
            None if over_bare is None else f"{over_bare:.2f}x",
            over_bare is not None and over_bare >= TARGET_OVER_BARE,
        )
        p99 = subject[level]["p99_ms"]
        theirs = [results[rival][level]["p99_ms"] for rival in RIVALS]
        lowest = min((t for t in theirs if t is not None), default=None)
        row(
            f"p99 no worse than the rivals' at {level} (the lower: "
            f"{'-' if lowest is None else f'{lowest:.1f} ms'})",
            None if p99 is None else f"{p99:.1f} ms",
            p99 is not None and lowest is not None and p99 <= lowest,
        )
        kib = subject[level]["kib_per_idle_subscriber"]
        bare_kib = results[BARE_REDIS][level]["kib_per_idle_subscriber"]
        extra = (kib - bare_kib) * 1.024
        row(
            f"memory per idle subscriber within {TARGET_EXTRA_KB:g} KB of the bare fan-out "
            f"on Redis at {level}",
            f"{extra:+.1f} KB ({kib * 1.024:.1f} KB, the bare one {bare_kib * 1.024:.1f} KB)",
            extra <= TARGET_EXTRA_KB,
        )
        share = subject[level]["delivered_share"]
        row(
            f"every event delivered to every subscriber at {level}",
            "-" if share is None else f"{100 * share:.2f} %",
            share == 1.0,
        )
    return rows


def notes(report: dict[str, Any]) -> list[str]:
    """What the figures say, from the figures themselves."""
    results = report["results"]
    if not {SUBJECT, BARE, BARE_REDIS, FLOOR, *RIVALS} <= results.keys():
        return []
    lines = ["## What the figures say", ""]
    for level in results[SUBJECT]:
        rate = {
            name: per_level[level]["delivered_per_cpu_second"]
            for name, per_level in results.items()
        }
        lines.append(
            f"- At {int(level):,} subscribers: asgi-stream on Redis "
            f"{rate[SUBJECT]:,.0f} events per server CPU second; the bare fan-out on Redis "
            f"{rate[BARE_REDIS]:,.0f}: the same server and Redis, with no library, so "
            f"{rate[SUBJECT] / rate[BARE_REDIS]:.2f}x is what the library costs or saves; "
            + ", ".join(f"{rival} {rate[rival]:,.0f}" for rival in RIVALS)
            + " (their own apps and responses). In memory, where nothing crosses processes: "
            f"asgi-stream {rate[FLOOR]:,.0f}, bare {rate[BARE]:,.0f}."
            + (
                f" On a Redis Cluster (3 masters, 3 replicas, appends waiting for a replica): "
                f"asgi-stream {rate[SUBJECT_CLUSTER]:,.0f}."
                if SUBJECT_CLUSTER in rate
                else ""
            )
        )
    lines += [
        "",
        "The rivals run as their users write them (see benchmarks/scaleout_apps.py): "
        "broadcaster in a Starlette app with sse-starlette's `EventSourceResponse`, "
        "Litestar channels in a Litestar app with its `ServerSentEvent`. Each event is "
        "one socket write per subscriber, on two cores that also run both client "
        "processes and Redis, so latency grows with the level for every candidate.",
        "",
    ]
    return lines


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Fan-out across two worker processes and {report['redis']}",
        "",
        f"Command: `{report['command']}`. {report['machine']}.",
        f"{report['rate']:g} events/s for {report['seconds']:g} s per round, "
        f"{report['rounds']} rounds per level, passes over every candidate in turn (the "
        "median of each figure); two "
        "server processes (uvicorn + httptools), clients on the same machine.",
        "",
        "| candidate | subscribers | delivered | events / server CPU s | p50 ms | p99 ms "
        "| Redis CPU s | KB / idle subscriber |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, per_level in report["results"].items():
        for level, f in per_level.items():
            share = "-" if f["delivered_share"] is None else f"{100 * f['delivered_share']:.1f} %"
            rate = f["delivered_per_cpu_second"]
            lines.append(
                f"| {name} | {int(level):,} | {share} | {rate or 0:,.0f} | {f['p50_ms'] or 0:.1f} "
                f"| {f['p99_ms'] or 0:.1f} | {f['redis_cpu_seconds']:.2f} "
                f"| {f['kib_per_idle_subscriber'] * 1.024:.1f} |"
            )
    if SUBJECT in report["results"]:
        others = [name for name in report["results"] if name != SUBJECT]
        levels = list(report["results"][SUBJECT])
        lines += [
            "",
            f"{SUBJECT}'s events per server CPU second as a ratio to each candidate's:",
            "",
            "| over | " + " | ".join(f"{int(level):,}" for level in levels) + " |",
            "|---|" + "---:|" * len(levels),
        ]
        for other in others:
            cells = [ratio(report["results"], SUBJECT, other, level) for level in levels]
            lines.append(
                f"| {other} | "
                + " | ".join("-" if c is None else f"{c:.2f}x" for c in cells)
                + " |"
            )
    lines += [
        "",
        "Subscribers one process held with p99 within 100 ms (largest level measured):",
        "",
    ]
    for name, held in report["held_per_process"].items():
        lines.append(f"- {name}: {held:,}" if held else f"- {name}: none of the levels measured")
    if report["targets"]:
        lines += ["", "## Targets", "", "| target | measured | result |"]
        lines.append("|---|---|---|")
        for row in report["targets"]:
            lines.append(
                f"| {row['target']} | {row['measured']} | {'pass' if row['pass'] else 'miss'} |"
            )
        lines += [
            "| zero lost, duplicated or reordered events through a Redis restart, a worker "
            "SIGKILL and client reconnects | a test: tests/library/test_scaleout.py, "
            "test_fanout.py, test_scaleout_browser.py, test_redis_faults.py | pass |",
        ]
    lines.append("")
    return "\n".join(lines + notes(report))


def versions() -> dict[str, str]:
    names = ("uvicorn", "redis", "broadcaster", "starlette", "sse-starlette", "litestar")
    found = {name: metadata.version(name) for name in names}
    found["python"] = platform.python_version()
    return found


def run(
    levels: Sequence[int],
    rate: float,
    seconds: float,
    names: Sequence[str],
    out: Path,
    command: str,
    redis: Callable[[Path], contextlib.AbstractContextManager[RedisUnderTest]] = one_redis,
    rounds: int = ROUNDS,
    label: str = "one Redis",
) -> dict[str, Any]:
    """Measure every candidate in ``names``, each on a fresh ``redis(tmp)``; write
    ``out``.json and .md; return the report. ``label`` names that Redis in the title.

    The rounds are passes over every candidate in turn, not one candidate's
    rounds back to back: on a machine shared with other work, a busy minute
    then slows one round of each candidate, not every round of one.
    """
    passes: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp_name:
        tmp = Path(tmp_name)
        for number in range(rounds):
            log(f"scale-out: round {number + 1} of {rounds}")
            for name in names:
                start = cluster_redis if name == SUBJECT_CLUSTER else redis
                with start(tmp) as server:  # a fresh Redis each: no streams left over
                    passes[name].append(measure_candidate(name, server, levels, seconds, rate, tmp))
    results = {
        name: {str(level): summary([p[str(level)] for p in runs]) for level in levels}
        for name, runs in passes.items()
    }
    report = {
        "command": command,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared with other work",
        "redis": label,
        "versions": versions(),
        "rate": rate,
        "seconds": seconds,
        "rounds": rounds,
        "results": results,
        "held_per_process": {name: held_per_process(per) for name, per in results.items()},
        "targets": targets(results, levels)
        if {SUBJECT, BARE_REDIS, *RIVALS} <= results.keys()
        else [],
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    log(f"wrote {out.with_suffix('.md')}")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1000,4000", help="subscribers in all, per level")
    parser.add_argument("--rate", type=float, default=10.0, help="events published a second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each round publishes")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="fan-out rounds per level")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--out", default=str(RESULTS / "scaleout"), help="results, without suffix")
    args = parser.parse_args(argv)
    command = " ".join(
        ["python3 -m benchmarks.scaleout", *(sys.argv[1:] if argv is None else argv)]
    )
    levels = [int(level) for level in args.levels.split(",")]
    if min(levels) <= 2 * BASE:
        parser.error(f"every level must be above {2 * BASE}, the subscribers of the memory base")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    names = args.candidates.split(",")
    run(levels, args.rate, args.seconds, names, Path(args.out), command, rounds=args.rounds)


if __name__ == "__main__":
    main()
