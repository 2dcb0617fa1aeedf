"""The benchmark harness runs end to end and writes results of the documented shape.

Tiny settings (``--quick``) and two candidates: this checks the harness, not
the speed. Speed is never asserted in a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import ROOT

pytestmark = [pytest.mark.server, pytest.mark.slow]

CANDIDATES = ["bare", "asgi-stream", "asgi-stream SSE"]


def test_quick_run_writes_json_table_and_chart(tmp_path):
    options = ["--quick", "--candidates", ",".join(CANDIDATES), "--sections", "a,b,c,d,e,f"]
    subprocess.run(
        [sys.executable, "-m", "benchmarks", *options, "--output", str(tmp_path)],
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )
    results = json.loads((tmp_path / "results.json").read_text())

    for reader in ("eager", "batched"):
        assert set(results["a"][reader]) == set(CANDIDATES)
        assert results["a"][reader]["bare"]["ratio_to_bare"] == 1.0
        for entry in results["a"][reader].values():
            assert entry["events_per_s"] > 0
            assert entry["cpu_us_per_event"] > 0
    for section in ("b", "c"):
        for entry in results[section].values():
            assert 0 < entry["p50_ms"] <= entry["p99_ms"]
    for shape in ("mostly empty", "only empty"):  # only StreamingResponse yields b""
        assert set(results["c_empty"][shape]) == {"asgi-stream"}
        assert results["c_empty"][shape]["asgi-stream"]["p50_ms"] > 0
    idle = results["d"]["asgi-stream SSE"]
    assert set(idle["kb_per_stream"]) == {"20", "50"}
    assert idle["idle_cpu_percent"] >= 0
    for kind in ("never awaits", "awaits"):
        assert set(results["e"][kind]["bare"]["events_per_s"]) == {"1", "10"}
        assert results["e"][kind]["bare"]["cpu_ratio_to_bare"]["10"] == 1.0
    for level in ("10", "20"):
        fanout = results["f"]["asgi-stream SSE"][level]
        assert fanout["delivered_share"] == 1.0  # every subscriber got every event
        assert 0 < fanout["p50_ms"] <= fanout["p99_ms"]
        assert fanout["cpu_us_per_event"] > 0
    verdicts = {(t["metric"], t["candidate"]): t["verdict"] for t in results["targets"]}
    assert verdicts[("3. (a) eager: SSE, str items", "asgi-stream SSE")] in {"pass", "miss"}
    assert results["meta"]["settings"]["events"] == 2_000

    table = (tmp_path / "results.md").read_text()
    assert "| bare |" in table and "## Targets" in table and "## (f) Fan-out" in table
    assert "with empty chunks" in table
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


def run_quick_section(section: str, output: Path) -> None:
    """``python3 -m benchmarks --quick --sections SECTION``, its results in ``output``."""
    options = ["--quick", "--sections", section, "--output", str(output)]
    subprocess.run(
        [sys.executable, "-m", "benchmarks", *options],
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )


def test_section_h_writes_the_table_of_test_readers(tmp_path):
    run_quick_section("h", tmp_path)
    results = json.loads((tmp_path / "testing.json").read_text())
    readers = results["readers"]
    assert set(readers) == {
        "ApplicationCommunicator",
        "testing.stream",
        "transport, AsyncClient",
        "transport, Client",
        "uvicorn + httpx",
    }
    assert readers["ApplicationCommunicator"]["ratio_to_communicator"] == 1.0
    assert all(entry["events_per_second"] > 0 for entry in readers.values())
    assert json.loads((tmp_path / "results.json").read_text())["h"]["see"] == "testing.md"
    assert "| transport, AsyncClient |" in (tmp_path / "testing.md").read_text()


def test_the_file_section_writes_its_own_results(tmp_path):
    run_quick_section("i", tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["i"]["see"] == "files.md"
    report = json.loads((tmp_path / "files.json").read_text())
    assert {"bare", "asgi-stream", "starlette"} <= set(report["results"])
    for entry in report["results"].values():
        assert entry["mb_per_s"] > 0 and entry["server_cpu_ms_per_mb"] > 0
    assert report["target"] in {"pass", "miss"}
    assert "| asgi-stream |" in (tmp_path / "files.md").read_text()
