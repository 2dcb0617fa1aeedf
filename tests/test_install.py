"""What the tests need is installed by the project's own files, never by hand.

CI runs the suite in a virtual environment made afresh for each run
(``.ci/run``), so a missing install step fails there as it would for a new
user. These tests name the gap before that: every package that ``tests/`` or
``benchmarks/`` imports is in the standard library, in this project, or named
by the ``test`` extra of ``setup.cfg``; and every program the tests look up on
the ``PATH`` is one that ``scripts/test.sh`` installs.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"asgi_stream", "benchmarks", "examples", "tests"}


def imported_names(folder: Path) -> dict[str, Path]:
    """The top-level name of every absolute import under ``folder``, with a file that has it."""
    names: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module]
            else:
                continue
            for name in found:
                names.setdefault(name.partition(".")[0], path)
    return names


def requirements_of_the_test_extra() -> set[str]:
    """The distributions the ``test`` extra names (normalised), extras and versions dropped."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options.extras_require"]["test"].split("\n")
    return {_normalise(re.split(r"[\[<>=!~; ]", line.strip())[0]) for line in lines if line.strip()}


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_every_imported_package_is_installed_by_the_test_extra():
    extra = requirements_of_the_test_extra()
    distributions = packages_distributions()
    missing = []
    for folder in ("tests", "benchmarks"):
        for name, path in imported_names(ROOT / folder).items():
            if name in sys.stdlib_module_names or name in PROJECT:
                continue
            owners = {_normalise(owner) for owner in distributions.get(name, [])}
            if not owners & extra:
                where = path.relative_to(ROOT)
                missing.append(f"{name} (imported by {where}; installed by {owners or 'nothing'})")
    assert not missing, "not installed by the test extra of setup.cfg: " + ", ".join(missing)


def test_every_program_the_tests_look_up_is_installed_by_the_test_script():
    looked_up = set()
    for path in (ROOT / "tests").rglob("*.py"):
        looked_up.update(re.findall(r"shutil\.which\(\"([\w.-]+)\"\)", path.read_text()))
    script = (ROOT / "scripts" / "test.sh").read_text()
    checked = set(re.findall(r"command -v ([\w.-]+)", script))
    # chromium-browser is only another name that some systems give Chromium.
    assert looked_up - {"chromium-browser"} <= checked, looked_up - checked
