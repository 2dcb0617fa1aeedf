"""The three layers stay apart: the library never reaches up into the app or the tools.

The library is every module directly in ``asgi_stream/`` except ``__main__``
(the ``python -m asgi_stream`` entry point, which belongs to the command line).
The catalogue app (``asgi_stream.catalogue``) and the tools
(``asgi_stream.tools``) are built on the library and may import it; the
library imports neither of them, and nothing outside the standard library.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "asgi_stream"
LIBRARY = sorted(path for path in PACKAGE.glob("*.py") if path.name != "__main__.py")
UPPER_LAYERS = ("asgi_stream.catalogue", "asgi_stream.tools")


def library_module_names() -> list[str]:
    """``asgi_stream`` and ``asgi_stream.<module>`` for every library module."""
    return [
        "asgi_stream" if path.stem == "__init__" else f"asgi_stream.{path.stem}" for path in LIBRARY
    ]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module that ``path`` imports, made absolute, with its line number.

    ``from . import tools`` and ``from .catalogue import app`` count as well as
    ``import asgi_stream.tools``, and so do imports inside functions, which
    ``ast.walk`` reaches as it does the top level.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # the library is one flat package: "." is asgi_stream
                base = "asgi_stream" + (f".{node.module}" if node.module else "")
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            # "from asgi_stream import tools" names a submodule in the imported names.
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def is_upper_layer(module: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in UPPER_LAYERS)


def test_the_library_is_every_module_but_the_entry_point() -> None:
    names = {path.stem for path in LIBRARY}
    assert {"__init__", "response", "sse", "tracer", "types"} <= names
    assert "__main__" not in names


@pytest.mark.parametrize("path", LIBRARY, ids=lambda path: path.name)
def test_the_library_imports_neither_the_app_nor_the_tools(path: Path) -> None:
    wrong = [
        f"{path.name}:{line} imports {module}"
        for line, module in imported_modules(path)
        if is_upper_layer(module)
    ]
    assert not wrong


def test_the_import_reader_sees_every_form_of_import(tmp_path: Path) -> None:
    """The check above cannot pass by missing an import it was not written for."""
    module = tmp_path / "forbidden.py"
    module.write_text(
        "from .catalogue import app\n"
        "from . import tools\n"
        "import asgi_stream.tools.cli\n"
        "def later():\n"
        "    from asgi_stream.catalogue.endpoints import Settings\n"
        "    from .tools import servers\n"
    )
    lines = {line for line, name in imported_modules(module) if is_upper_layer(name)}
    assert lines == {1, 2, 3, 5, 6}
    assert not is_upper_layer("asgi_stream.toolset")


# Runs in a fresh interpreter, so that nothing the test session has imported counts.
# It prints the modules that importing the library added which are neither the
# standard library's nor asgi_stream's own.
PROBE = """
import importlib, json, sys
before = set(sys.modules)
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
added = set(sys.modules) - before
third_party = sorted(
    name for name in added
    if name.partition(".")[0] not in sys.stdlib_module_names
    and name.partition(".")[0] != "asgi_stream"
)
print(json.dumps(third_party))
"""


def third_party_loaded_by(modules: list[str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=PACKAGE.parent,
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_importing_the_library_loads_only_the_standard_library() -> None:
    """``import asgi_stream`` and every library module need nothing installed.

    ``redis_eventlog`` is among them: it imports ``redis`` only when a
    :class:`~asgi_stream.RedisEventLog` is made.
    """
    assert third_party_loaded_by(["asgi_stream"]) == []
    assert third_party_loaded_by(library_module_names()) == []


def test_the_probe_sees_a_third_party_package() -> None:
    """The check above can fail: the test environment has httpx, which is not stdlib."""
    assert "httpx" in third_party_loaded_by(["asgi_stream", "httpx"])
