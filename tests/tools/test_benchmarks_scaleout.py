"""The scale-out fan-out benchmark runs end to end: two processes, Redis, every event counted.

Tiny levels and this project's candidates only (broadcaster and Litestar are
in the ``bench`` extra, not the tests'): this checks the harness, not the
speed. Speed is never asserted in a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import ROOT

pytestmark = [pytest.mark.server, pytest.mark.slow]

CANDIDATES = ["bare ASGI (the server's own cost)", "asgi-stream redis"]


def test_scaleout_counts_every_event_across_two_processes(tmp_path: Path) -> None:
    options = ["--levels", "120,160", "--seconds", "0.3", "--rounds", "1"]
    options += ["--candidates", ",".join(CANDIDATES)]
    subprocess.run(
        [sys.executable, "-m", "benchmarks.scaleout", *options, "--out", str(tmp_path / "s")],
        cwd=ROOT,
        check=True,
        timeout=180,
        capture_output=True,
    )
    report = json.loads((tmp_path / "s.json").read_text())
    assert set(report["results"]) == set(CANDIDATES)
    for per_level in report["results"].values():
        assert set(per_level) == {"120", "160"}
        for figures in per_level.values():
            assert figures["delivered_share"] == 1.0  # through Redis, to both processes
            assert 0 < figures["p50_ms"] <= figures["p99_ms"]
            assert figures["delivered_per_cpu_second"] > 0
    assert "| asgi-stream redis | 160 |" in (tmp_path / "s.md").read_text()


def test_a_client_that_leaves_a_redis_stream_leaves_nothing_behind() -> None:
    found = subprocess.run(
        [sys.executable, "-m", "benchmarks.leave_latency", "--clients", "20"],
        cwd=ROOT,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    result = json.loads(found.stdout)
    assert result["subscribers_left"] == 0
    assert result["tasks_left"] == 1  # the log's shared reader, which the first client started
    assert result["p99_ms"] > 0
