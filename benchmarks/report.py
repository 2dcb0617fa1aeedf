"""Turn a run's results into ``results.json``, ``results.md`` and ``results.png``.

The markdown holds one table per measurement and, last, the issue's targets
with the measured value and pass or miss. Every target is a comparison within
the run (a ratio to bare, a difference from bare, a ratio to one stream), never
an absolute number from another day.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (metric, target text, candidate, how to read the value, test)
Target = tuple[str, str, str, Callable[[dict[str, Any]], float], Callable[[float], bool]]

#: Capacity "does not fall" if it keeps this share of the one-stream figure
#: (the run-to-run noise on this machine is about 10 %).
SCALING_FLOOR = 0.90
#: The many-streams levels the issue names.
MANY = ("200", "1000")


def _one_stream_targets() -> list[Target]:
    """Goals 1 and 3: one stream, each reader (section a)."""
    targets: list[Target] = []
    for reader in ("eager", "batched"):

        def ratio(name: str, reader: str = reader) -> Callable[[dict[str, Any]], float]:
            return lambda r: r["a"][reader][name]["ratio_to_bare"]

        def versus(
            ours: str, theirs: str, reader: str = reader
        ) -> Callable[[dict[str, Any]], float]:
            return lambda r: (
                r["a"][reader][ours]["events_per_s"] / r["a"][reader][theirs]["events_per_s"]
            )

        targets += [
            (f"1. (a) {reader}: one stream, default StreamingResponse", ">= 1.0 x bare",
             "asgi-stream", ratio("asgi-stream"), lambda v: v >= 1.0),
            (f"1. (a) {reader}: one stream, against Starlette", ">= 1.2 x starlette",
             "asgi-stream", versus("asgi-stream", "starlette"), lambda v: v >= 1.2),
            (f"1. (a) {reader}: generator that never awaits", ">= 2 x bare",
             "asgi-stream", ratio("asgi-stream"), lambda v: v >= 2.0),
            (f"3. (a) {reader}: SSE, ServerSentEvent items", ">= 0.75 x bare",
             "asgi-stream SSE objects", ratio("asgi-stream SSE objects"), lambda v: v >= 0.75),
            (f"3. (a) {reader}: SSE, str items", ">= 0.9 x bare",
             "asgi-stream SSE", ratio("asgi-stream SSE"), lambda v: v >= 0.9),
            (f"3. (a) {reader}: SSE, against sse-starlette", ">= 3 x sse-starlette",
             "asgi-stream SSE", versus("asgi-stream SSE", "sse-starlette"), lambda v: v >= 3.0),
        ]  # fmt: skip
    return targets


def _many_streams_targets() -> list[Target]:
    """Goal 2: 200 and 1,000 streams at once (section e)."""
    targets: list[Target] = []
    for level in MANY:

        def cpu(kind: str, name: str, level: str = level) -> Callable[[dict[str, Any]], float]:
            return lambda r: r["e"][kind][name]["cpu_us_per_event"][level]

        def over(
            kind: str, ours: str, theirs: str, level: str = level
        ) -> Callable[[dict[str, Any]], float]:
            return lambda r: cpu(kind, ours, level)(r) / cpu(kind, theirs, level)(r)

        targets += [
            (f"2. (e) {level} streams, generators await: CPU per event", "<= 1.05 x bare",
             "asgi-stream", over("awaits", "asgi-stream", "bare"), lambda v: v <= 1.05),
            (f"2. (e) {level} streams, generators await: CPU per event", "<= 1.0 x starlette",
             "asgi-stream", over("awaits", "asgi-stream", "starlette"), lambda v: v <= 1.0),
            (f"2. (e) {level} streams, never await: CPU per event", "<= 1.0 x bare",
             "asgi-stream", over("never awaits", "asgi-stream", "bare"), lambda v: v <= 1.0),
        ]  # fmt: skip
    targets.append(
        (
            "2. (e) 1,000 streams, never await: capacity (1 / CPU per event) / one stream's",
            f">= {SCALING_FLOOR:.2f}",
            "asgi-stream",
            lambda r: r["e"]["never awaits"]["asgi-stream"]["capacity_ratio_to_one_stream"]["1000"],
            lambda v: v >= SCALING_FLOOR,
        )
    )
    return targets


def _latency_and_idle_targets() -> list[Target]:
    """Goal 4 (fairness), the first event (b) not worse, and goal 5 (idle, section d)."""
    targets: list[Target] = []
    for name in ("asgi-stream", "asgi-stream SSE", "asgi-stream SSE objects"):
        targets += [
            ("4. (c) first byte while 50 never-awaiting streams run, p99", "<= 50 ms", name,
             lambda r, n=name: r["c"][n]["p99_ms"], lambda v: v <= 50),
            ("(b) first event p50, minus bare", "<= 0.1 ms", name,
             lambda r, n=name: r["b"][n]["p50_minus_bare_ms"], lambda v: v <= 0.1),
            ("(b) first event p99, minus bare", "<= 0.3 ms", name,
             lambda r, n=name: r["b"][n]["p99_minus_bare_ms"], lambda v: v <= 0.3),
        ]  # fmt: skip
    for shape in ("mostly empty", "only empty"):
        for name in ("asgi-stream", "asgi-stream coalesce", "asgi-stream one per chunk"):
            targets.append(
                (f"(c) empty chunks: first byte while 50 streams yield {shape} chunks, p99",
                 "<= 100 ms", name, lambda r, s=shape, n=name: r["c_empty"][s][n]["p99_ms"],
                 lambda v: v <= 100)
            )  # fmt: skip
    targets += [
        ("5. (d) memory per idle SSE stream at 10,000", "<= 13 KB", "asgi-stream SSE",
         lambda r: r["d"]["asgi-stream SSE"]["kb_per_stream"]["10000"], lambda v: v <= 13),
        ("5. (d) idle CPU at 10,000 streams, ratio to bare's", "<= 1.0", "asgi-stream SSE",
         lambda r: r["d"]["asgi-stream SSE"]["idle_cpu_percent"]
         / r["d"]["bare"]["idle_cpu_percent"], lambda v: v <= 1.0),
    ]  # fmt: skip
    return targets


def _fanout_targets() -> list[Target]:
    """Goal 6: fan-out (section f), measured for every candidate at both levels."""
    targets: list[Target] = []
    for level in ("1000", "10000"):
        for name in ("asgi-stream SSE", "asgi-stream broadcast"):
            targets += [
                (f"6. (f) {int(level):,} subscribers: CPU per delivered event",
                 "<= 1.0 x starlette (queue each)", name,
                 lambda r, n=name, lv=level: r["f"][n][lv]["cpu_us_per_event"]
                 / r["f"]["starlette"][lv]["cpu_us_per_event"], lambda v: v <= 1.0),
                (f"6. (f) {int(level):,} subscribers: every event delivered", "= 100 %", name,
                 lambda r, n=name, lv=level: r["f"][n][lv]["delivered_share"] * 100,
                 lambda v: v >= 99.95),
            ]  # fmt: skip
    return targets


#: The page that carries the mechanism's measured figures, and its section on them.
BENCHMARKS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.rst"
MECHANISM_SECTION = "How a stream is sent, and what it costs"


def _mechanism_is_stated(_: dict[str, Any]) -> float:
    """Goal 7, read from the sources: 1 if response.py's docstring states the
    mechanism (the body task) and the benchmarks page has its section with
    measured figures, else 0. (The figures left the docstring: they change with
    every run, the mechanism does not.)"""
    import asgi_stream.response

    doc = asgi_stream.response.__doc__ or ""
    page = BENCHMARKS_PAGE.read_text() if BENCHMARKS_PAGE.exists() else ""
    return float("body task" in doc and MECHANISM_SECTION in page and "Measured with" in page)


def _targets() -> list[Target]:
    return [
        *_one_stream_targets(),
        *_many_streams_targets(),
        *_latency_and_idle_targets(),
        *_fanout_targets(),
        (
            "7. the mechanism (response.py's docstring), its measured cost and benefit "
            "(docs/benchmarks.rst)",
            "1 (present)",
            "asgi-stream",
            _mechanism_is_stated,
            lambda v: v == 1,
        ),
    ]


#: For a target that missed: what was tried, and what was measured. Keyed by
#: the start of the target's metric; the closing note of results.md quotes it.
MISS_NOTES = {
    "2. (e)": (
        "A generator that awaits before every event gets one message per event by "
        "design (nothing is ready to be joined), so what is left is the cost per event "
        "of the generator and of the response's loop, and the bare loop has no "
        "generator at all. `python3 -m benchmarks.inprocess` measures that loop alone "
        "(uvloop, a `send()` that does nothing, 200,000 events from a generator "
        "awaiting `asyncio.sleep(0)`, four frames above the app as on a server, CPU "
        "time per event, as a ratio to the bare loop of the same run). Five runs on a "
        "busy machine, 2026-12-04: the same loop iterating a generator 1.04-1.27 in "
        "the server's task and 0.82-1.05 in a task of its own (0.34-0.70 µs less per "
        "event), Starlette 0.93-1.13, asgi-stream, whose body task steps the "
        "generator, 1.07-1.27; the implementation before the body task's rewrite "
        "gave 1.23-1.29 in two runs interleaved with two of these. Tried and kept: "
        "the generator stepped in a task of its own, so its suspensions do not travel "
        "through the server's frames; no fairness yield for a generator that yields "
        "by itself; a fairness budget that counts down. What remains over the loop in "
        "a task of its own is the response's work per chunk (the chunk's type, the "
        "disconnect flag, the fairness budget, the sender's call)."
    ),
    "5. (d) memory": (
        "Measured in-process with tracemalloc (2,000 idle streams, no server, "
        "2026-12-04): the bare loop's idle stream is 2.7 KB; an EventSourceResponse "
        "8.5 KB, with `ping=15` 8.3 KB (before the rewrite of the body task: 6.3 KB, "
        "and 8.6 KB with its heartbeat). The heartbeat is now a timer beside the "
        "generator, so a ping costs nothing while idle (the helper task it needed, "
        "2.4 KB, is gone); but each stream now carries the server-stop hook that ends "
        "it cleanly under a plain `uvicorn app:app` (0.7 KB: a context manager and "
        "its record) and the body sender (the rest). Not tried, for lack of time: the "
        "hook as a plain object instead of a generator-based context manager, and the "
        "sender made on the first chunk; the bare loop here is 12.6 KB per stream, "
        "so even the 1.5 KB they could save would leave a stream above 13 KB."
    ),
    "6. (f)": (
        "`asgi-stream SSE` is the queue-per-subscriber pattern written with "
        "EventSourceResponse: each subscriber's task wakes for each event and encodes "
        "it again, where the Starlette candidate's producer encodes once. This is the "
        "measurement that showed the need for `asgi_stream.Broadcast` (the "
        "`asgi-stream broadcast` row): one encoding per event, one append per "
        "subscriber, and the events a busy subscriber has waiting sent as one write."
    ),
}


def _closing_note(targets: list[dict[str, Any]]) -> list[str]:
    misses = [t for t in targets if t["verdict"] == "miss"]
    if not misses:
        return ["", "## Closing note", "", "Every target passed."]
    lines = ["", "## Closing note: the misses", ""]
    explained: set[str] = set()
    for target in misses:
        key = next((k for k in MISS_NOTES if target["metric"].startswith(k)), None)
        lines.append(
            f"- **{target['metric']}** ({target['candidate']}): {target['value']:.3g} "
            f"against {target['target']}."
            + ("" if key is None or key in explained else " " + MISS_NOTES[key])
            + (" (No note was written for this one.)" if key is None else "")
        )
        if key is not None:
            explained.add(key)
    return lines


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its value and verdict; targets whose data was not measured are left out."""
    rows = []
    for metric, target, candidate, read, test in _targets():
        try:
            value = read(results)
        except (KeyError, TypeError, ZeroDivisionError):
            continue
        verdict = "pass" if test(value) else "miss"
        rows.append(
            {"metric": metric, "target": target, "candidate": candidate, "value": value,
             "verdict": verdict}
        )  # fmt: skip
    return rows


_THROUGHPUT_COLUMNS = ["ev/s", "ratio", "CPU µs/ev"]
_FAIRNESS_COLUMNS = ["(c) p50 ms", "(c) p99 ms", "(c) max ms", "(c) probes"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _k(value: float) -> str:
    return f"{value / 1000:,.1f}k"


#: A machine is "busy" when other processes kept this many cores busy, on average.
BUSY_LOAD = 0.2


def _load_note(meta: dict[str, Any]) -> str:
    other = meta.get("other_load", 0.0)
    note = f"Other processes kept {other:.2f} of the {meta['cpus']} cores busy during the run."
    if other > BUSY_LOAD:
        note += (
            " **Made on a busy machine**: other processes shared the two cores, so "
            "absolute figures are noisy; the ratios between candidates, measured in "
            "interleaved rounds of the same run, hold better."
        )
    return note


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    parts = [
        "# asgi-stream benchmarks",
        "",
        f"`{meta['command']}`, {meta['started_utc']} UTC, {meta['seconds']} s; "
        f"{meta['cpus']} CPUs; server {meta['primary_server']} (1 worker, CPU 0), "
        "raw-socket client (CPU 1). Medians of interleaved rounds; ratios are to `bare` "
        "from the same run. "
        + ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
        + ".",
        "",
        _load_note(meta),
        "",
        "Candidates: "
        + "; ".join(f"**{name}**: {text}" for name, text in meta["candidates"].items())
        + ".",
    ]
    settings = meta["settings"]
    if "a" in results:
        rows = []
        for name in results["a"]["eager"]:
            row = [name]
            for reader in ("eager", "batched"):
                entry = results["a"][reader][name]
                row += [
                    _k(entry["events_per_s"]),
                    f"{entry['ratio_to_bare']:.2f}",
                    f"{entry['cpu_us_per_event']:.2f}",
                ]
            rows.append(row)
        parts += [
            "",
            f"## (a) One stream of {settings['events']:,} events: eager reader, then batched",
            "",
            _table(
                ["candidate", *_THROUGHPUT_COLUMNS, *_THROUGHPUT_COLUMNS],
                rows,
            ),
        ]
    if "b" in results or "c" in results:
        rows = []
        for name in results.get("b") or results["c"]:
            row = [name]
            b = results.get("b", {}).get(name)
            row += [f"{b['p50_ms']:.3f}", f"{b['p99_ms']:.3f}"] if b else ["-", "-"]
            c = results.get("c", {}).get(name)
            row += (
                [f"{c['p50_ms']:.1f}", f"{c['p99_ms']:.1f}", f"{c['max_ms']:.1f}", str(c["probes"])]
                if c
                else ["-"] * 4
            )
            rows.append(row)
        parts += [
            "",
            "## (b) First event on a fresh connection; (c) first byte while "
            f"{settings['fairness_streams']} streams saturate the server",
            "",
            _table(
                ["candidate", "(b) p50 ms", "(b) p99 ms", *_FAIRNESS_COLUMNS],
                rows,
            ),
        ]
    if any(results.get("c_empty", {}).values()):
        shapes = dict(settings["fairness_empty_shapes"])
        names = list(next(iter(results["c_empty"].values())))
        header, rows = ["candidate"], [[name] for name in names]
        for shape, by_name in results["c_empty"].items():
            header += [f"{shape}: p50 ms", "p99 ms", "max ms", "probes"]
            for row, name in zip(rows, names, strict=True):
                c = by_name[name]
                row += [f"{c['p50_ms']:.1f}", f"{c['p99_ms']:.1f}", f"{c['max_ms']:.1f}",
                        str(c["probes"])]  # fmt: skip
        parts += [
            "",
            f"## (c) again, with empty chunks: first byte while {settings['fairness_streams']} "
            'streams yield `b""`',
            "",
            f"Each busy stream is {settings['fairness_empty_chunks']:,} chunks from a generator "
            "that never awaits, all of them empty but "
            + " or ".join(
                f"one event in every {every} ({shape})" if every else f"none ({shape})"
                for shape, every in shapes.items()
            )
            + ". An empty chunk writes nothing, yet the other connections must still be served.",
            "",
            _table(header, rows),
        ]
    if "d" in results:
        levels = [str(level) for level in settings["idle_levels"]]
        rows = [
            [name]
            + [f"{entry['kb_per_stream'][level]:.1f}" for level in levels]
            + [f"{entry['idle_cpu_percent']:.2f}", str(entry["streams_with_heartbeat"])]
            for name, entry in results["d"].items()
        ]
        parts += [
            "",
            f"## (d) Idle SSE streams, heartbeat every 15 s (CPU over {settings['idle_window']} s)",
            "",
            _table(
                ["candidate"]
                + [f"KB/stream at {int(level):,}" for level in levels]
                + [f"idle CPU % at {int(levels[-1]):,}", "streams that got a heartbeat"],
                rows,
            ),
        ]
    if "e" in results:
        levels = [str(level) for level in settings["scaling_levels"]]
        parts += [
            "",
            f"## (e) Aggregate events/s, N streams of {settings['scaling_events_per_stream']:,} "
            "events each (batched reader)",
            "",
            "One short stream's events/s is bound by its latency, not by the server; the "
            "server's capacity (1 / its CPU time per event) is what shows how cost grows "
            "with the number of streams.",
        ]
        for kind, by_name in results["e"].items():
            rows = [
                [name]
                + [_k(entry["events_per_s"][level]) for level in levels]
                + [" / ".join(f"{entry['cpu_us_per_event'][level]:.2f}" for level in levels)]
                + [" / ".join(f"{entry['cpu_ratio_to_bare'][level]:.2f}" for level in levels)]
                + [f"{entry['capacity_ratio_to_one_stream'][levels[-1]]:.2f}"]
                for name, entry in by_name.items()
            ]
            parts += [
                "",
                f"### Generators that {kind.replace('awaits', 'await')}",
                "",
                _table(
                    ["candidate"]
                    + [f"N={int(level):,}" for level in levels]
                    + [
                        "CPU µs/ev at each N",
                        "CPU/ev ratio to bare at each N",
                        f"capacity N={int(levels[-1]):,} / N={levels[0]}",
                    ],
                    rows,
                ),
            ]
    if "f" in results:
        levels = [str(level) for level in settings["fanout_levels"]]
        header = ["candidate"]
        for level in levels:
            n = f"{int(level):,}"
            header += [f"{n}: CPU µs/ev", "ratio to bare", "p50 ms", "p99 ms", "delivered"]
        rows = []
        for name, by_level in results["f"].items():
            row = [name]
            for level in levels:
                entry = by_level[level]
                row += [
                    f"{entry['cpu_us_per_event']:.2f}",
                    f"{entry.get('cpu_ratio_to_bare', float('nan')):.2f}",
                    f"{entry['p50_ms']:.1f}",
                    f"{entry['p99_ms']:.1f}",
                    f"{entry['delivered_share']:.1%}",
                ]
            rows.append(row)
        parts += [
            "",
            f"## (f) Fan-out: one producer, {settings['fanout_rate']:g} events a second to every "
            f"subscriber, {settings['fanout_seconds']:g} s per round",
            "",
            "CPU time of the server per delivered event; latency from the producer's clock to "
            "the client's, on subscribers spread over the subscription order.",
            "",
            _table(header, rows),
        ]
    if "secondary" in results:
        servers = list(results["secondary"])
        names = list(next(iter(results["secondary"].values())))
        rows = []
        for name in names:
            row = [name]
            for server in servers:
                entry = results["secondary"][server][name]
                row += [_k(entry["events_per_s"]), f"{entry['ratio_to_bare']:.2f}"]
            rows.append(row)
        header = ["candidate"]
        for server in servers:
            header += [f"{server} ev/s", "ratio"]
        parts += [
            "",
            f"## (a) on the secondary servers: one stream of {settings['secondary_events']:,} "
            "events, eager reader",
            "",
            _table(header, rows),
        ]
    targets = results.get("targets", [])
    if targets:
        parts += [
            "",
            "## Targets",
            "",
            _table(
                ["metric", "candidate", "target", "measured", "result"],
                [
                    [t["metric"], t["candidate"], t["target"], f"{t['value']:.3g}", t["verdict"]]
                    for t in targets
                ],
            ),
            *_closing_note(targets),
        ]
    return "\n".join(parts) + "\n"


def chart(results: dict[str, Any], path: Path) -> bool:
    """Draw the sections that have a panel into ``path``; False if none was measured."""
    panels = [key for key in ("a", "e", "d", "f") if key in results]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), squeeze=False)
    for axis, key in zip(axes[0], panels, strict=True):
        if key == "a":
            names = list(results["a"]["eager"])
            width = 0.4
            for offset, reader in ((-width / 2, "eager"), (width / 2, "batched")):
                values = [results["a"][reader][name]["ratio_to_bare"] for name in names]
                axis.bar([i + offset for i in range(len(names))], values, width, label=reader)
            axis.axhline(1.0, color="grey", linewidth=0.8)
            axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
            axis.set_ylabel("events/s, ratio to bare")
            axis.set_title("(a) one stream, uvicorn + httptools")
            axis.legend()
        elif key == "e":
            for kind, style in zip(results["e"], ("-", "--"), strict=False):
                for index, (name, entry) in enumerate(results["e"][kind].items()):
                    levels = list(entry["cpu_us_per_event"])
                    axis.plot(
                        [int(level) for level in levels],
                        [1000 / entry["cpu_us_per_event"][level] for level in levels],
                        style,
                        color=f"C{index}",
                        marker="o",
                        label=f"{name} ({kind})",
                    )
            axis.set_xscale("log")
            axis.set_xlabel("concurrent streams")
            axis.set_ylabel("server capacity, thousand events/s (1 / CPU per event)")
            axis.set_title("(e) many streams")
            axis.legend(fontsize="x-small")
        elif key == "f":
            names = list(results["f"])
            levels = [str(level) for level in results["meta"]["settings"]["fanout_levels"]]
            width = 0.8 / len(levels)
            for index, level in enumerate(levels):
                values = [results["f"][name][level]["cpu_us_per_event"] for name in names]
                offset = (index - (len(levels) - 1) / 2) * width
                axis.bar(
                    [i + offset for i in range(len(names))],
                    values,
                    width,
                    label=f"{int(level):,} subscribers",
                )
            axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
            axis.set_ylabel("server CPU µs per delivered event")
            axis.set_title("(f) fan-out, 10 events/s each")
            axis.legend()
        else:
            names = list(results["d"])
            values = [results["d"][name]["kb_per_stream_at_top"] for name in names]
            bars = axis.bar(range(len(names)), values)
            for bar, name in zip(bars, names, strict=True):
                cpu = results["d"][name]["idle_cpu_percent"]
                axis.annotate(
                    f"{cpu:.1f}% CPU",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize="small",
                )
            axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
            top = results["meta"]["settings"]["idle_levels"][-1]
            axis.set_ylabel(f"KB per idle stream at {top:,}")
            axis.set_title("(d) idle SSE streams (label: idle CPU)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def write(results: dict[str, Any], directory: Path) -> list[Path]:
    """Evaluate the targets and write the three files (the chart only if a section
    it draws was measured); returns the paths written."""
    results["targets"] = evaluate(results)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "results.json", directory / "results.md"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results))
    if chart(results, directory / "results.png"):
        paths.append(directory / "results.png")
    return paths
