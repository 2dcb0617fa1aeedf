"""The documentation stays true: it builds without a warning, and its code runs.

The convention these tests hold the pages to (``docs/development.rst`` states
it for writers): Python is written in ``.. code-block:: python`` blocks, and
every such block in ``README.rst`` and ``docs/*.rst`` is run on its own. A
block that defines test functions (``test_*``, as :doc:`testing` shows) then
has each of them called, an ``async def`` one in an event loop of its own; a
block that defines ``app`` and no tests is driven through asgiref's
``ApplicationCommunicator``: lifespan startup, one request per route without
path parameters (a status below 400, a first piece of body, then a
disconnect the app must obey at once), lifespan shutdown. Every other block
names a language that is not run (``console``, ``text``...), and bare ``::``
literal blocks are refused, so that no Python can hide from the test.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docutils.core
import pytest
from asgiref.testing import ApplicationCommunicator

import asgi_stream
from asgi_stream import Route, Router
from tests.asgi import SERVER_ASGI, http_scope
from tests.test_exported_members import OWN_NAMESPACE, PUBLIC

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.rst"
PAGES = [README, *sorted(DOCS.glob("*.rst"))]

#: Languages a code block may name. Only ``python`` is run.
NOT_RUN = {"console", "shell", "text", "json", "http"}
SPHINX_TIMEOUT = 180
ASGI_TIMEOUT = 5.0
#: How soon an app must return once its client has gone: well under the tour's 2.5 s stream.
LEAVE_TIMEOUT = 1.0

_CODE_BLOCK = re.compile(r"^(\s*)\.\. code-block::\s*(\S*)\s*$")
_DIRECTIVE = re.compile(r"^\s*\.\. [\w:-]+::")


@dataclass
class Snippet:
    path: Path
    line: int  # 1-based, of the directive
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Snippet]:
    """Every ``.. code-block::`` of a reST file, with its content dedented."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for number, line in enumerate(lines):
        found = _CODE_BLOCK.match(line)
        if not found:
            continue
        indent = len(found.group(1))
        body = []
        i = number + 1
        while i < len(lines) and re.match(r"^\s+:[\w-]+:", lines[i]):  # directive options
            i += 1
        for text in lines[i:]:
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(Snippet(path, number + 1, found.group(2), code))
    return blocks


PYTHON_SNIPPETS = [s for page in PAGES for s in code_blocks(page) if s.language == "python"]


def find_router(app: Any) -> Router | None:
    """The :class:`Router` inside ``app``, through middleware that keeps it as ``.app``."""
    for _ in range(10):
        if isinstance(app, Router):
            return app
        app = getattr(app, "app", None)
    return None


async def lifespan(comm: ApplicationCommunicator, phase: str) -> None:
    await comm.send_input({"type": f"lifespan.{phase}"})
    reply = await comm.receive_output(ASGI_TIMEOUT)
    assert reply["type"] == f"lifespan.{phase}.complete", reply


async def request_then_leave(
    app: Any, method: str, path: str, state: dict[str, Any] | None = None
) -> None:
    """One request: the status, a first piece of body, then the client leaves.

    ``state`` is the lifespan's: like uvicorn and hypercorn, each request gets a copy.
    """
    scope = http_scope(method, path)
    if state is not None:
        scope["state"] = dict(state)
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(ASGI_TIMEOUT)
    assert start["type"] == "http.response.start", start
    assert start["status"] < 400, f"{method} {path} answered {start['status']}"
    body = await comm.receive_output(ASGI_TIMEOUT)
    assert body["type"] == "http.response.body", body
    assert body["body"] or not body.get("more_body", False), f"{method} {path}: empty chunk"
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(LEAVE_TIMEOUT)  # cancels the app if it is still running then
    assert not comm.future.cancelled(), f"{method} {path}: still running after the client left"


async def exercise(app: Any) -> int:
    """Drive ``app`` as the module docstring says; the number of requests made."""
    router = find_router(app)
    if router is None:
        await request_then_leave(app, "GET", "/")
        return 1
    state: dict[str, Any] = {}
    life = ApplicationCommunicator(app, {"type": "lifespan", "asgi": SERVER_ASGI, "state": state})
    await lifespan(life, "startup")
    requests = 0
    for route in router.routes:
        if not isinstance(route, Route) or "{" in route.path:  # a mount; a parameter
            continue
        method = "GET" if "GET" in route.methods else min(route.methods)
        await request_then_leave(app, method, route.path, state)
        requests += 1
    await lifespan(life, "shutdown")
    await life.wait(ASGI_TIMEOUT)
    return requests


@pytest.mark.parametrize("snippet", PYTHON_SNIPPETS, ids=lambda s: s.name)
def test_python_snippet_runs(snippet: Snippet) -> None:
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}
    exec(compile(snippet.code, snippet.name, "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    for test in tests:
        if inspect.iscoroutinefunction(test):
            asyncio.run(asyncio.wait_for(test(), ASGI_TIMEOUT))
        else:
            test()
    if "app" in namespace and not tests:
        assert asyncio.run(exercise(namespace["app"])) > 0, "the app was never requested"


def test_the_snippets_are_found() -> None:
    # A parser that finds nothing would make every snippet test pass by vanishing.
    found = {s.path.name for s in PYTHON_SNIPPETS}
    assert {"README.rst", "getting-started.rst", "resumable.rst", "serving.rst"} <= found
    assert all("import" in s.code for s in PYTHON_SNIPPETS)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_names_a_known_language_and_none_is_bare(page: Path) -> None:
    for block in code_blocks(page):
        assert block.language in NOT_RUN | {"python"}, f"{block.name}: {block.language!r}"
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.rstrip().endswith("::") and not _DIRECTIVE.match(line):
            pytest.fail(f"{page.name}:{number}: a bare '::' block; use .. code-block:: LANG")


#: What a user writes: the names the API reference documents, each on its concept's page.
#: The library's reference: the index page and one page per concept.
REFERENCE = [
    DOCS / "api.rst",
    *sorted(set(DOCS.glob("api-*.rst")) - {DOCS / "api-catalogue-tools.rst"}),
]
_AUTOMODULE = re.compile(r"^( *)\.\. automodule:: (\S+)\n((?:\1   :[\w-]+:.*\n)*)", re.MULTILINE)
_DOCUMENTED = re.compile(
    r"^\.\. (?:auto(?:class|exception|function|data)|py:type|(currentmodule)):: ([\w.]+)$",
    re.MULTILINE,
)


def automodules(page: Path) -> list[tuple[str, str]]:
    """Each ``automodule`` of a page: the module, and the directive's options."""
    text = page.read_text(encoding="utf-8")
    return [(found[2], found[3]) for found in _AUTOMODULE.finditer(text)]


def modules_in(package: Path, prefix: str) -> set[str]:
    names = {prefix}
    names |= {f"{prefix}.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    return names


def test_every_library_module_opens_a_guide_page_once() -> None:
    # The modules' essays are the theory of each concept: they belong to the guide, once
    # each, and the reference holds what a user calls.
    package = ROOT / "asgi_stream"
    library = modules_in(package, "asgi_stream") - {"asgi_stream.__main__"}
    shown = []
    for page in sorted(set(DOCS.glob("*.rst")) - {DOCS / "api-catalogue-tools.rst"}):
        for module, options in automodules(page):
            assert page not in REFERENCE, f"{page.name}: the essay of {module} in the reference"
            assert ":no-members:" in options, f"{page.name}: {module} with its members"
            shown.append(module)
    assert sorted(shown) == sorted(library)


def test_the_catalogue_and_tools_reference_covers_every_module() -> None:
    package = ROOT / "asgi_stream"
    upper = modules_in(package / "catalogue", "asgi_stream.catalogue")
    upper |= modules_in(package / "tools", "asgi_stream.tools")
    assert {module for module, _ in automodules(DOCS / "api-catalogue-tools.rst")} == upper


def documented_names(page: Path) -> list[tuple[str, str]]:
    """``(module, name)`` for each name a reference page documents, by its ``currentmodule``."""
    module, found = "asgi_stream", []
    for is_module, name in _DOCUMENTED.findall(page.read_text("utf-8")):
        if is_module:
            module = name
        else:
            found.append((module, name))
    return found


def test_the_api_reference_documents_the_public_names_once_each() -> None:
    documented = [found for page in REFERENCE for found in documented_names(page)]
    assert sorted(name for module, name in documented if module == "asgi_stream") == sorted(PUBLIC)
    # A submodule with a namespace of its own is documented whole, or not at all.
    for module in {module for module, _ in documented} - {"asgi_stream"}:
        names = sorted(name for where, name in documented if where == module)
        assert names == sorted(OWN_NAMESPACE[module]), module
    not_exported = PUBLIC - set(asgi_stream.__all__)
    assert not not_exported, not_exported
    for page in REFERENCE:  # every member listed by hand: no page shows a module's internals
        assert ".. automodule::" not in page.read_text("utf-8"), page.name


def test_readme_is_a_front_page_that_renders_anywhere() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    # It is also the package's long description: an image must be a full URL.
    for target in re.findall(r"^\s*\.\. (?:image|figure):: (\S+)", text, re.MULTILINE):
        assert re.match(r"https?://", target), target
    # The first command gives the whole demo: FastAPI too, for the side-by-side column.
    assert "python3 -m pip install '.[serve,compare]' && python3 -m asgi_stream serve" in text
    assert "bash scripts/test.sh" in text
    for target in re.findall(r"<(docs/[^>]+)>`_", text):
        assert (ROOT / target).is_file(), target
    # Package indexes render it with docutils alone: no Sphinx roles or directives.
    settings = {"halt_level": 2, "report_level": 2, "output_encoding": "unicode"}
    docutils.core.publish_string(text, writer="html", settings_overrides=settings)


@pytest.mark.slow
def test_sphinx_build_passes_with_warnings_as_errors(tmp_path: Path) -> None:
    # -n: every cross-reference must lead somewhere (docs/conf.py says what may not).
    command = [sys.executable, "-m", "sphinx", "-n", "-W", "--keep-going", "-q", "-E"]
    command += ["-b", "html", "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=SPHINX_TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "html" / "api.html").is_file()
