"""``asgi-stream soak``, shortened: the mixed load runs clean, and its report counts failures.

The full soak (10 minutes) is a documented command, not a test; see
``docs/reliability.rst`` for its result.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import pytest

from asgi_stream.tools import soak
from asgi_stream.tools.cli import main

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_a_short_soak_on_uvicorn_runs_every_scenario_without_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["soak", "--duration", "4", "--clients", "20", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0, report
    assert set(report["requests"]) == set(soak.SCENARIOS)
    assert all(count > 5 for count in report["requests"].values()), report
    assert report["errors"] == {} and report["server_errors"] == []
    assert report["exit_status"] == 0
    # Every connection of the load is closed again.
    assert report["fds_end"] <= report["fds_start"] < report["fds_peak"]


def test_a_short_soak_on_hypercorn(tmp_path: Path) -> None:
    report = soak.soak(duration=3, server="hypercorn", clients=10, log_path=tmp_path / "log")
    assert report.ok, report.text()
    assert report.fds_end <= report.fds_start


def test_the_load_counts_each_kind_of_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    async def incomplete(port: int, rng: random.Random) -> None:
        raise soak.SoakError("incomplete")

    async def refused(port: int, rng: random.Random) -> None:
        raise ConnectionRefusedError

    monkeypatch.setattr(soak, "SCENARIOS", {"a": incomplete, "b": refused})
    report = soak.SoakReport(server="none", seconds=0.3)
    asyncio.run(soak.run_load(0, os.getpid(), 0.3, 2, 0, report))
    assert set(report.errors) == {"a: incomplete", "b: ConnectionRefusedError"}
    assert sum(report.errors.values()) == sum(report.requests.values()) > 0
    assert not report.ok and "FAILED" in report.text()


def test_the_memory_slope_is_a_least_squares_fit_per_minute() -> None:
    assert soak.slope_per_minute([(0, 100), (30, 110), (60, 120)]) == pytest.approx(20)
    assert soak.slope_per_minute([(0, 100), (1, 90), (2, 110), (3, 100)]) == pytest.approx(120)
    assert soak.slope_per_minute([(0, 100)]) == 0.0
