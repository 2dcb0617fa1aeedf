"""asgi-stream against the tutorial's FastAPI code, on the wire: ``asgi-stream compare``.

Theory of operation
===================

Two applications serve the same fifteen endpoints: our catalogue
(``asgi_stream.catalogue:app``) and the tutorial's own FastAPI code
(``examples/fastapi_catalogue.py``). A comparison is only fair when everything
except the application is the same, so both are served the same way (two
``asgi-stream serve`` processes: uvicorn, on free 127.0.0.1 ports, with the
same ``--tick``), and one client (httpx, HTTP/1.1) makes the same requests to
both, one application after the other, after a warm-up request.

For every request (a :class:`Probe`) the client measures what a user could
observe (:mod:`asgi_stream.tools.measure`): the status; the headers but ``date``
and ``server``; the body's bytes, and the events a browser would parse from
it; the time to the first event, the total time, and the gaps between chunks.

Each aspect of the two measurements is then compared. Time is compared with a
tolerance (:data:`TIME_TOLERANCE`), since two runs of the same code never take
exactly as long; chunk gaps are shown but not judged, because the kernel may
merge two writes into one read. Every difference is then looked up in
:data:`~asgi_stream.catalogue.differences.EXPECTED` (in
:mod:`asgi_stream.catalogue.differences`, where the
demo page reads it too), the one list of differences that are there on purpose,
each with its reason: a mistake of the tutorial that we do not repeat (the README's
"The catalogue" lists them), or a deliberate difference from Starlette (the
README's "Deliberate differences"). A difference that is not in the list is
*unexpected*, and makes the command exit with status 1. So a change that makes
the two apps differ in a new way cannot go unnoticed: either it is a bug, or
it gets a line in that list with its reason. The same goes the other
way: a listed difference that did not happen (we started to repeat one of the
tutorial's mistakes, or the list is out of date) also fails the command.

``--trace PROBE`` serves both applications with ``--trace-json`` instead (see
:mod:`asgi_stream.tracer`), makes that one request, and shows the two ASGI
message sequences side by side.

FastAPI is not a dependency of asgi-stream, and this command never imports
it: the FastAPI application is served by import string from the
``examples/`` directory of a clone of the repository, so this command works
in a clone (``pip install -e '.[serve,compare]'``), and says so clearly
anywhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

from ..tracer import format_record
from .measure import Measurement, measure
from .process import ServerDidNotStart, serve

__all__ = [
    "PROBES",
    "Difference",
    "Probe",
    "compare_measurements",
    "main",
    "measure_probe",
    "run",
]

OURS = "asgi-stream"
THEIRS = "FastAPI"
APPS = {OURS: "asgi_stream.catalogue:app", THEIRS: "examples.fastapi_catalogue:app"}

#: Two times are the same when they differ by at most 25 ms plus 25 % of the longer one.
TIME_TOLERANCE = (0.025, 0.25)

#: What the log follower probe appends to the followed file, one line at a time.
LOG_LINES = ("first line", "第二行: UTF-8", "data: a line that looks like a field")

_TIMES = ("first event", "total time")
_SETTLE = 0.2  # seconds between a /logs response's headers and the first appended line


@dataclass(frozen=True)
class Probe:
    """One request, made to both applications.

    ``log`` prepares the followed log file: ``"missing"`` deletes it,
    ``"follow"`` creates it empty and appends :data:`LOG_LINES` while the
    response streams. ``stop_after`` makes the client leave after that many
    events, for a stream that never ends by itself.
    """

    method: str
    target: str
    note: str = ""
    headers: tuple[tuple[str, str], ...] = (("accept-encoding", "gzip"),)
    log: str | None = None
    stop_after: int | None = None

    @property
    def name(self) -> str:
        return f"{self.method} {self.target}" + (f" ({self.note})" if self.note else "")

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


#: Every endpoint of the catalogue, with the variants its query and headers allow.
PROBES: tuple[Probe, ...] = (
    Probe("GET", "/stream"),
    Probe("GET", "/stream-full"),
    Probe("GET", "/normal"),
    Probe("GET", "/stream-headers"),
    Probe("GET", "/stream-background"),
    Probe("GET", "/conditional-stream"),
    Probe("GET", "/conditional-stream?stream=true"),
    Probe("GET", "/conditional-stream?stream=maybe"),
    Probe("GET", "/stream-error"),
    Probe("GET", "/stream-robust"),
    Probe("GET", "/stream-timeout"),
    Probe("GET", "/stream-buffered"),
    Probe("GET", "/stream-heartbeat"),
    Probe("GET", "/stream-compressed"),
    Probe("GET", "/stream-compressed", "gzip not accepted", (("accept-encoding", "identity"),)),
    Probe("POST", "/chat-stream?message=hello"),
    Probe("POST", "/chat-stream", "no message"),
    Probe("GET", "/progress"),
    Probe("GET", "/logs", "no log file", log="missing"),
    Probe("GET", "/logs", "following", log="follow", stop_after=len(LOG_LINES)),
    Probe("HEAD", "/stream", "headers only"),
)


# Measuring --------------------------------------------------------------------------------


class _LogWriter(threading.Thread):
    """Appends :data:`LOG_LINES` to a followed file, a little after the stream started."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stopped = threading.Event()

    def run(self) -> None:
        for line in LOG_LINES:
            if self.stopped.wait(_SETTLE if line == LOG_LINES[0] else 0.05):
                return
            with self.path.open("a", encoding="utf-8") as log:
                log.write(line + "\n")


def measure_probe(client: Any, base_url: str, probe: Probe, log_file: Path) -> Measurement:
    """Make ``probe``'s request with ``client`` (an ``httpx.Client``) and measure it.

    ``log_file`` is the file the application's ``/logs`` follows.
    """
    if probe.log == "missing":
        log_file.unlink(missing_ok=True)
    elif probe.log == "follow":
        log_file.write_text("")
    writer = _LogWriter(log_file)
    try:
        return measure(
            client,
            probe.method,
            base_url + probe.target,
            probe.headers,
            stop_after=probe.stop_after,
            on_response=writer.start if probe.log == "follow" else None,
        )
    finally:
        writer.stopped.set()
        if writer.is_alive():
            writer.join(5)


# Comparing --------------------------------------------------------------------------------


@dataclass
class Difference:
    """One aspect in which the two measurements of a probe differ."""

    aspect: str
    ours: str
    theirs: str
    expected: bool
    reason: str = ""


def _expected_reasons() -> dict[tuple[str, str], str]:
    # Imported when needed, not with this module: importing the catalogue builds
    # its app from the environment, and `asgi-stream serve` (whose module imports
    # this one) sets the environment only after that, just before it serves it.
    from ..catalogue.differences import expected_reasons

    return expected_reasons()


def _times_agree(ours: float | None, theirs: float | None) -> bool:
    if ours is None or theirs is None:
        return ours is theirs
    absolute, relative = TIME_TOLERANCE
    return abs(ours - theirs) <= absolute + relative * max(ours, theirs)


def compare_measurements(probe: Probe, ours: Measurement, theirs: Measurement) -> list[Difference]:
    """Every aspect in which ``ours`` and ``theirs`` differ, each marked expected or not."""
    found: list[tuple[str, str, str]] = []
    if ours.status != theirs.status:
        found.append(("status", str(ours.status), str(theirs.status)))
    if ours.error != theirs.error:
        found.append(("error", str(ours.error), str(theirs.error)))
    for name in dict.fromkeys(name for name, _ in ours.headers + theirs.headers):
        our_values = ours.header(name)
        their_values = theirs.header(name)
        if our_values != their_values:
            found.append((f"header {name}", our_values, their_values))
    if ours.events != theirs.events:
        found.append(("events", _summary(ours.events), _summary(theirs.events)))
    if ours.body != theirs.body:
        found.append(("bytes", f"{len(ours.body)} B", f"{len(theirs.body)} B"))
    if not _times_agree(ours.first_event, theirs.first_event):
        found.append(("first event", _ms(ours.first_event), _ms(theirs.first_event)))
    if not _times_agree(ours.total, theirs.total):
        found.append(("total time", _ms(ours.total), _ms(theirs.total)))
    reasons = _expected_reasons()
    return [
        Difference(
            aspect,
            ours_text,
            theirs_text,
            (probe.name, aspect) in reasons,
            reasons.get((probe.name, aspect), ""),
        )
        for aspect, ours_text, theirs_text in found
    ]


def _summary(events: list[str]) -> str:
    if not events:
        return "none"
    shown = events if len(events) <= 3 else [events[0], events[1], "…", events[-1]]
    return f"{len(events)}: " + " | ".join(shown)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _gaps(gaps: list[float]) -> str:
    if not gaps:
        return "-"
    return f"median {_ms(statistics.median(gaps))}, max {_ms(max(gaps))} ({len(gaps)})"


# Serving ----------------------------------------------------------------------------------


def source_tree() -> Path:
    """The clone of the repository whose ``examples/`` holds the FastAPI application."""
    from ..catalogue import tutorial  # see _expected_reasons()

    root = tutorial.source_tree()
    if root is not None:
        return root
    raise SystemExit(
        f"asgi-stream compare: {tutorial.EXAMPLE.as_posix()} was not found. The comparison "
        "serves the tutorial's FastAPI code from the examples/ directory of a clone of the "
        "repository: run it from a clone (pip install -e '.[serve,compare]')."
    )


def _check_installed() -> None:
    missing = [
        name for name in ("fastapi", "uvicorn", "httpx") if not importlib.util.find_spec(name)
    ]
    if missing:
        raise SystemExit(
            f"asgi-stream compare needs {', '.join(missing)}: pip install -e '.[serve,compare]'"
        )


@contextlib.contextmanager
def _serving(app: str, root: Path, options: list[str], log_path: Path) -> Iterator[str]:
    """``asgi-stream serve --app APP OPTIONS`` (uvicorn) on a free port; yield its base URL."""
    command = [sys.executable, "-m", "asgi_stream", "serve", "--app", app, *options]
    try:
        with serve(command, log_path, cwd=root, stop_timeout=10.0) as server:
            yield server.url
    except ServerDidNotStart as exc:
        raise SystemExit(f"asgi-stream compare: the server did not start.\n{exc}") from None


@dataclass
class ProbeResult:
    probe: Probe
    ours: Measurement
    theirs: Measurement
    differences: list[Difference]

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.probe.name,
            OURS: self.ours.to_json(),
            THEIRS: self.theirs.to_json(),
            "differences": [asdict(difference) for difference in self.differences],
        }


def run(
    tick: float, probes: Sequence[Probe] = PROBES, trace_dir: Path | None = None
) -> list[ProbeResult]:
    """Serve both applications, make every probe's request to each, compare.

    With ``trace_dir``, both are served through the tracer, which writes
    ``asgi-stream.jsonl`` and ``FastAPI.jsonl`` there.
    """
    _check_installed()
    root = source_tree()
    import httpx

    with (
        tempfile.TemporaryDirectory(prefix="asgi-stream-compare-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        urls = {}
        for name, app in APPS.items():
            options = ["--tick", str(tick), "--log-file", str(work / f"{name}.log")]
            if trace_dir is not None:
                options += ["--trace-json", str(trace_dir / f"{name}.jsonl")]
            urls[name] = stack.enter_context(
                _serving(app, root, options, work / f"{name}.server.log")
            )
        timeout = httpx.Timeout(5.0, read=5.0 + 2 * tick)
        client = stack.enter_context(httpx.Client(timeout=timeout))
        for url in urls.values():  # first-request costs (imports, caches) are not measured
            measure_probe(client, url, PROBES[0], work / "warm-up.log")
        results = []
        for probe in probes:
            result = _measure_both(client, urls, probe, work)
            if any(difference.aspect in _TIMES for difference in result.differences):
                # A busy machine can delay one response: a time counts only if it differs twice.
                result = _measure_both(client, urls, probe, work)
            results.append(result)
        return results


def _measure_both(client: Any, urls: dict[str, str], probe: Probe, work: Path) -> ProbeResult:
    ours, theirs = (measure_probe(client, urls[name], probe, work / f"{name}.log") for name in APPS)
    return ProbeResult(probe, ours, theirs, compare_measurements(probe, ours, theirs))


# Reporting --------------------------------------------------------------------------------

_WIDTH = 36  # of each application's column


def _cell(text: str, width: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(result: ProbeResult) -> str:
    """One probe's side-by-side table, then the reason for each expected difference."""
    ours, theirs = result.ours, result.theirs
    by_aspect = {difference.aspect: difference for difference in result.differences}
    rows = [
        ("status", str(ours.status), str(theirs.status)),
        *(
            (f"header {name}", ours.header(name), theirs.header(name))
            for name in dict.fromkeys(name for name, _ in ours.headers + theirs.headers)
        ),
        ("events", _summary(ours.events), _summary(theirs.events)),
        (
            "bytes",
            f"{len(ours.body)} B",
            "equal" if ours.body == theirs.body else f"{len(theirs.body)} B, differ",
        ),
        ("first event", _ms(ours.first_event), _ms(theirs.first_event)),
        ("total time", _ms(ours.total), _ms(theirs.total)),
        ("chunk gaps", _gaps(ours.gaps), _gaps(theirs.gaps)),
    ]
    if ours.error or theirs.error:
        rows.insert(1, ("error", str(ours.error), str(theirs.error)))
    a, b = max(len(aspect) for aspect, _, _ in rows), _WIDTH
    lines = [result.probe.name, f"  {'':<{a}} {OURS:<{b}} {THEIRS}"]
    for aspect, left, right in rows:
        difference = by_aspect.get(aspect)
        verdict = "" if difference is None else "expected" if difference.expected else "UNEXPECTED"
        if aspect == "chunk gaps":
            verdict = "(not judged)"
        row = f"  {aspect:<{a}} {_cell(left, b):<{b}} {_cell(right, b):<{b}} {verdict}"
        lines.append(row.rstrip())
    reasons = dict.fromkeys(d.reason for d in result.differences if d.expected)
    lines.extend(
        textwrap.fill(reason, 100, initial_indent="  expected: ", subsequent_indent=" " * 12)
        for reason in reasons
    )
    return "\n".join(lines)


def format_report(results: list[ProbeResult], tick: float) -> str:
    tables = [format_table(result) for result in results]
    differences = [d for result in results for d in result.differences]
    unexpected = sum(not d.expected for d in differences)
    unseen = unseen_differences(results)
    summary = [
        f"{len(results)} requests at tick {tick}: {len(differences) - unexpected} expected "
        f"differences, {unexpected} unexpected."
    ]
    summary += [f"documented but not seen: {probe}: {aspect}" for probe, aspect in unseen]
    return "\n\n".join([*tables, "\n".join(summary)])


def unseen_differences(results: list[ProbeResult]) -> list[tuple[str, str]]:
    """The expected differences, of the probes that ran, that did not happen."""
    seen = {(result.probe.name, d.aspect) for result in results for d in result.differences}
    ran = {result.probe.name for result in results}
    return [key for key in _expected_reasons() if key[0] in ran and key not in seen]


def format_traces(records: dict[str, list[dict[str, Any]]]) -> str:
    """The two applications' ASGI messages for one request, side by side."""
    pairs = [
        (_record_lines(left), _record_lines(right))
        for left, right in zip_longest(records[OURS], records[THEIRS])
    ]
    width = min(90, max((len(line) for left, _ in pairs for line in left), default=0))
    lines = [f"{OURS:<{width}}  {THEIRS}", f"{'-' * width}  {'-' * width}"]
    for left_lines, right_lines in pairs:
        for left_line, right_line in zip_longest(left_lines, right_lines, fillvalue=""):
            lines.append(f"{_cell(left_line, width):<{width}}  {right_line}".rstrip())
    return "\n".join(lines)


def _record_lines(record: dict[str, Any] | None) -> list[str]:
    return format_record(record).split("\n") if record else []


def read_trace(path: Path, probe: Probe) -> list[dict[str, Any]]:
    """The tracer's records of the (last) request for ``probe``'s path, from a JSON lines file."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    wanted = [
        record["connection"]
        for record in records
        if record["event"] == "scope" and record.get("path") == probe.path
    ]
    return [record for record in records if wanted and record["connection"] == wanted[-1]]


# The command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``asgi-stream compare``."""
    parser.add_argument(
        "--tick",
        type=float,
        default=float(os.environ.get("ASGI_STREAM_TICK", "0.1")),
        help="scale every delay of both catalogues (default 0.1, or ASGI_STREAM_TICK)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--trace",
        metavar="PROBE",
        help="show both apps' ASGI messages for one request, e.g. /stream",
    )


def find_probe(wanted: str) -> Probe:
    for probe in PROBES:
        if wanted in (probe.name, probe.target, probe.path):
            return probe
    names = ", ".join(probe.name for probe in PROBES)
    raise SystemExit(f"asgi-stream compare: no request {wanted!r}; choose from: {names}")


def main(options: argparse.Namespace) -> int:
    """Run ``asgi-stream compare``; 1 when a difference is unexpected or an expected one missing."""
    if options.trace:
        probes = (find_probe(options.trace),)
        with tempfile.TemporaryDirectory(prefix="asgi-stream-trace-") as tmp:
            trace_dir = Path(tmp)
            results = run(options.tick, probes, trace_dir)
            traces = {name: read_trace(trace_dir / f"{name}.jsonl", probes[0]) for name in APPS}
    else:
        results = run(options.tick)
        traces = None
    unexpected = sum(not d.expected for result in results for d in result.differences)
    unseen = unseen_differences(results)
    if options.json:
        output: dict[str, Any] = {
            "tick": options.tick,
            "results": [result.to_json() for result in results],
            "unexpected": unexpected,
            "documented_but_not_seen": [list(key) for key in unseen],
        }
        if traces is not None:
            output["trace"] = traces
        print(json.dumps(output, ensure_ascii=False, indent=2))
    else:
        print(format_report(results, options.tick))
        if traces is not None:
            print("\n" + format_traces(traces))
    return 1 if unexpected or unseen else 0
