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

#: Aggregate throughput "does not fall" if it keeps this share of the one-stream figure
#: (the run-to-run noise on this machine is about 10 %).
SCALING_FLOOR = 0.90


def _targets() -> list[Target]:
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
            (f"(a) {reader}, pre-encoded bytes", ">= 0.90 of bare", "asgi-stream",
             ratio("asgi-stream"), lambda v: v >= 0.90),
            (f"(a) {reader}, SSE-encoded", ">= 0.80 of bare", "asgi-stream SSE",
             ratio("asgi-stream SSE"), lambda v: v >= 0.80),
            (f"(a) {reader}, against Starlette", ">= 1.2 x starlette", "asgi-stream",
             versus("asgi-stream", "starlette"), lambda v: v >= 1.2),
            (f"(a) {reader}, against sse-starlette", ">= 3 x sse-starlette", "asgi-stream SSE",
             versus("asgi-stream SSE", "sse-starlette"), lambda v: v >= 3.0),
        ]  # fmt: skip
    for reader in ("eager", "batched"):
        targets.append(
            (
                f"stretch: (a) {reader}, coalescing",
                ">= 2 x bare",
                "asgi-stream coalesce",
                lambda r, reader=reader: r["a"][reader]["asgi-stream coalesce"]["ratio_to_bare"],
                lambda v: v >= 2.0,
            )
        )
    for name in ("asgi-stream", "asgi-stream SSE", "asgi-stream coalesce"):
        targets += [
            ("(b) first event p50, minus bare", "<= 0.1 ms", name,
             lambda r, n=name: r["b"][n]["p50_minus_bare_ms"], lambda v: v <= 0.1),
            ("(b) first event p99, minus bare", "<= 0.3 ms", name,
             lambda r, n=name: r["b"][n]["p99_minus_bare_ms"], lambda v: v <= 0.3),
            ("(c) first byte under load, p99", "< 250 ms", name,
             lambda r, n=name: r["c"][n]["p99_ms"], lambda v: v < 250),
        ]  # fmt: skip
    targets += [
        ("(d) memory per idle stream, top level", "<= 15 KB", "asgi-stream SSE",
         lambda r: r["d"]["asgi-stream SSE"]["kb_per_stream_at_top"], lambda v: v <= 15),
        ("(d) idle CPU at the top level", "< 1 % of a core", "asgi-stream SSE",
         lambda r: r["d"]["asgi-stream SSE"]["idle_cpu_percent"], lambda v: v < 1.0),
    ]  # fmt: skip
    for name in ("asgi-stream", "asgi-stream SSE", "asgi-stream coalesce"):
        targets.append(
            (
                "(e) lowest capacity (1 / CPU per event) / one stream's",
                f">= {SCALING_FLOOR:.2f} (does not fall)",
                name,
                lambda r, n=name: min(r["e"][n]["capacity_ratio_to_one_stream"].values()),
                lambda v: v >= SCALING_FLOOR,
            )
        )
    return targets


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
        rows = [
            [name]
            + [_k(entry["events_per_s"][level]) for level in levels]
            + [" / ".join(f"{entry['cpu_us_per_event'][level]:.2f}" for level in levels)]
            + [f"{entry['capacity_ratio_to_one_stream'][levels[-1]]:.2f}"]
            for name, entry in results["e"].items()
        ]
        parts += [
            "",
            f"## (e) Aggregate events/s, N streams of {settings['scaling_events_per_stream']:,} "
            "events each (batched reader)",
            "",
            "One short stream's events/s is bound by its latency, not by the server; the "
            "server's capacity (1 / its CPU time per event) is what shows how cost grows "
            "with the number of streams.",
            "",
            _table(
                ["candidate"]
                + [f"N={int(level):,}" for level in levels]
                + ["CPU µs/ev at each N", f"capacity N={levels[-1]} / N=1"],
                rows,
            ),
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
        ]
    return "\n".join(parts) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [key for key in ("a", "e", "d") if key in results]
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
            for name, entry in results["e"].items():
                levels = list(entry["cpu_us_per_event"])
                axis.plot(
                    [int(level) for level in levels],
                    [1000 / entry["cpu_us_per_event"][level] for level in levels],
                    marker="o",
                    label=name,
                )
            axis.set_xscale("log")
            axis.set_xlabel("concurrent streams")
            axis.set_ylabel("server capacity, thousand events/s (1 / CPU per event)")
            axis.set_title("(e) many streams")
            axis.legend(fontsize="small")
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


def write(results: dict[str, Any], directory: Path) -> list[Path]:
    """Evaluate the targets and write the three files; returns their paths."""
    results["targets"] = evaluate(results)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "results.json", directory / "results.md", directory / "results.png"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results))
    chart(results, paths[2])
    return paths
