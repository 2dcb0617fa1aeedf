"""`asgi-stream compare`: the whole catalogue against the tutorial's FastAPI code."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from asgi_stream.catalogue import tutorial
from asgi_stream.catalogue.differences import EXPECTED, expected_reasons
from asgi_stream.tools import compare
from asgi_stream.tools.compare import (
    PROBES,
    Probe,
    ProbeResult,
    compare_measurements,
)
from asgi_stream.tools.measure import Measurement
from tests.serving import ROOT

pytestmark = [pytest.mark.server, pytest.mark.slow]

FIVE = [f"data: {i}" for i in range(5)]


@pytest.fixture(scope="module")
def report() -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "asgi_stream", "compare", "--tick", "0.02", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    return json.loads(completed.stdout)


def test_every_difference_is_documented_and_every_documented_one_happens(report: dict) -> None:
    assert [result["probe"] for result in report["results"]] == [p.name for p in PROBES]
    assert report["unexpected"] == 0
    assert report["documented_but_not_seen"] == []
    found = {
        (result["probe"], difference["aspect"]): difference
        for result in report["results"]
        for difference in result["differences"]
    }
    assert set(found) == set(expected_reasons())
    for key, difference in found.items():
        assert difference["expected"]
        assert difference["reason"] == expected_reasons()[key]


def test_the_comparison_saw_real_responses(report: dict) -> None:
    results = {result["probe"]: result for result in report["results"]}
    for name in ("GET /stream", "GET /stream-full", "GET /stream-headers"):
        for app in ("asgi-stream", "FastAPI"):
            assert results[name][app]["status"] == 200
            assert results[name][app]["events"] == FIVE
    assert results["GET /conditional-stream?stream=maybe"]["FastAPI"]["status"] == 422
    # The tutorial's per-chunk gzip: one event of ten reaches the client.
    compressed = results["GET /stream-compressed"]
    assert len(compressed["asgi-stream"]["events"]) == 10
    assert len(compressed["FastAPI"]["events"]) == 1
    following = results["GET /logs (following)"]
    assert following["asgi-stream"]["events"] == [f"data: {line}" for line in compare.LOG_LINES]
    assert following["FastAPI"]["events"] == following["asgi-stream"]["events"]


def measurement(**changes: object) -> Measurement:
    body = "".join(f"{event}\n\n" for event in FIVE).encode()
    fields = {
        "status": 200,
        "headers": [("content-type", "text/event-stream; charset=utf-8")],
        "events": FIVE,
        "body": body,
        "first_event": 0.001,
        "total": 0.05,
    }
    return Measurement(**{**fields, **changes})


def test_a_new_difference_is_unexpected_and_fails_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = Probe("GET", "/stream-headers")
    theirs = measurement(headers=[*measurement().headers, ("connection", "keep-alive")])
    ours = measurement(headers=[*measurement().headers, ("x-new", "1")], first_event=0.5)
    differences = compare_measurements(probe, ours, theirs)
    verdicts = {d.aspect: d.expected for d in differences}
    assert verdicts == {"header x-new": False, "header connection": True, "first event": False}

    results = [ProbeResult(probe, ours, theirs, differences)]
    monkeypatch.setattr(compare, "run", lambda tick: results)
    assert compare.main(argparse.Namespace(tick=0.02, json=False, trace=None)) == 1
    table = capsys.readouterr().out
    assert "header x-new" in table
    assert "UNEXPECTED" in table
    assert "expected: The tutorial (section 4.1) sets Connection: keep-alive." in table
    assert "1 requests at tick 0.02: 1 expected differences, 2 unexpected." in table


def test_times_within_the_tolerance_are_the_same() -> None:
    probe = Probe("GET", "/stream")
    assert compare_measurements(probe, measurement(), measurement(total=0.07)) == []
    assert [
        d.aspect for d in compare_measurements(probe, measurement(), measurement(total=0.2))
    ] == ["total time"]


def test_every_expected_difference_names_a_probe_and_gives_a_reason() -> None:
    names = {probe.name for probe in PROBES}
    for expected in EXPECTED:
        assert expected.probe in names
        assert expected.aspects
        assert len(expected.reason) > 40


def test_the_command_line_does_not_import_the_catalogue() -> None:
    """Importing it would build the app before `serve` puts --tick in the environment."""
    code = "import sys, asgi_stream.tools.cli; print('asgi_stream.catalogue' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_without_the_examples_directory_it_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tutorial, "EXAMPLE", Path("examples", "missing.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="run it from a clone"):
        compare.source_tree()


def test_the_probes_cover_the_fifteen_endpoints_of_both_apps() -> None:
    from asgi_stream.catalogue import create_app
    from examples.fastapi_catalogue import app as fastapi_app

    # HEAD is a probe of the method, not an endpoint of its own (FastAPI answers it 405).
    endpoints = {(probe.method, probe.path) for probe in PROBES if probe.method != "HEAD"}
    assert len(endpoints) == 15
    theirs = {(method, route.path) for route in fastapi_app.routes for method in route.methods}
    assert endpoints <= theirs
    ours = create_app()
    for method, path in endpoints:
        ours.resolve(path, method)  # raises 404 or 405 for a path it does not serve


def test_a_documented_difference_that_did_not_happen_fails_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if asgi-stream had started to send the tutorial's Connection header.
    same = measurement(headers=[*measurement().headers, ("connection", "keep-alive")])
    results = [ProbeResult(Probe("GET", "/stream-headers"), same, same, [])]
    monkeypatch.setattr(compare, "run", lambda tick: results)
    assert compare.main(argparse.Namespace(tick=0.02, json=False, trace=None)) == 1
    assert "documented but not seen: GET /stream-headers: header connection" in (
        capsys.readouterr().out
    )
