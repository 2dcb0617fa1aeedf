"""Sphinx configuration for the asgi-stream documentation.

Built-in theme and extensions only, and no network: ``sphinx-build -n -W -b
html docs DIR`` must pass on a machine with no internet access (the test suite
runs it, ``tests/test_docs.py``).
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

# Autodoc imports the package from this checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asgi_stream

project = "asgi-stream"
author = "the asgi-stream authors"
copyright = "2026, the asgi-stream authors"
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    # Enabled for :external: roles, but with no mappings: the build never goes online.
    "sphinx.ext.intersphinx",
]
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "alabaster"
html_theme_options = {
    "description": "HTTP streaming and Server-Sent Events on raw ASGI",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []

# Python code blocks are run by tests/test_docs.py; every other block names its
# language. Nothing is highlighted as Python unless it says so.
highlight_language = "none"

# The API reference lists each class's members by hand (``:members: a, b``), so
# that only what a user writes is documented; nothing is added by default.
autodoc_member_order = "bysource"
autodoc_default_options: dict[str, Any] = {}
autodoc_typehints = "description"
autodoc_preserve_defaults = True
# Signatures name the ASGI aliases instead of spelling out what they stand for:
# ``send (Send)``, not ``send (Callable[[MutableMapping[str, Any]], ...])``.
_ALIASES = ["ASGIApp", "Scope", "Receive", "Send", "Message", "HeadersInput", "Content"]
autodoc_type_aliases = {name: name for name in _ALIASES}

# Every cross-reference must resolve (``-n``), except to the standard library:
# with no network there is no inventory of Python's own documentation to link to.
nitpicky = True
_STDLIB = (
    "abc|asyncio|collections|collections\\.abc|contextlib|contextvars|concurrent\\.futures"
    "|enum|io|json|logging|os|pathlib|re|secrets|signal|types|typing|urllib\\.parse"
)
nitpick_ignore_regex = [
    ("py:.*", f"({_STDLIB})\\..*"),
    (
        "py:.*",
        "Any|AsyncIterable|AsyncIterator|Awaitable|Callable|Iterable|Mapping|MutableMapping"
        "|AbstractAsyncContextManager|None|NoneType|Ellipsis",
    ),
    # The router's own aliases, which its page explains in words, and the protocol and
    # the fan-out a log's subscription works with (a LogSubscription is made by
    # EventLog.subscribe).
    ("py:class", "Endpoint|Hook|Lifespan|SubscriptionSource|StreamFanout"),
    # What a test sends as a request's body and headers, which stream() explains in words.
    ("py:class", "Body|HeaderPairs"),
    # httpx, which the testing transport is for: no inventory of its documentation either.
    ("py:.*", "httpx\\..*"),
    # The type variable of a generic function: ``batched(source: AsyncIterable[T], ...)``.
    ("py:class", r"(asgi_stream\.\w+\.)?[TR]"),
]
exclude_patterns = ["_build"]


# The public names are documented where a user imports them, ``asgi_stream.Request``,
# but their docstrings and annotations say where they are defined,
# ``asgi_stream.request.Request``: a reference to the second finds the first.
_SUBMODULE = re.compile(r"asgi_stream\.[a-z_]+\.(?P<name>[A-Z_a-z][\w.]*)")


def _public_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    found = _SUBMODULE.fullmatch(target)
    if found:
        candidates = [f"asgi_stream.{found['name']}"]
    elif not target.startswith("asgi_stream"):
        # A bare name in a library module's docstring: ``StreamingResponse``.
        module = node.get("py:module") or ""
        if not module.startswith("asgi_stream") or module.startswith(
            ("asgi_stream.catalogue", "asgi_stream.tools")
        ):
            return None
        candidates = [f"asgi_stream.{target}"]
        if node.get("py:class"):
            # A member of the class, or one it inherits: ``charset`` in StreamingResponse.
            cls = getattr(asgi_stream, node["py:class"], None)
            bases = [c.__name__ for c in getattr(cls, "__mro__", ()) if c is not object]
            candidates[:0] = [f"asgi_stream.{base}.{target}" for base in bases]
    else:
        return None
    domain = env.get_domain("py")
    for candidate in candidates:
        resolved = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
        )
        if resolved is not None:
            return resolved
    return None


# The catalogue and the tools are shown by their modules' introductions only
# (api-catalogue-tools.rst), which name the functions and classes they describe.
# Such a name is shown as code, not linked, once it is found in its module: a
# name that does not exist still fails the build.
_PROJECT_MODULES = ("asgi_stream.catalogue", "asgi_stream.tools")


def _project_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    module_name = node.get("py:module") or ""
    if node.get("refdomain") != "py" or not module_name.startswith(_PROJECT_MODULES):
        return None
    target = node["reftarget"].lstrip("~.")
    for start, path in ((module_name, target), *_absolute(target)):
        found: Any = importlib.import_module(start)
        for part in path.split("."):
            found = getattr(found, part, _MISSING)
        if found is not _MISSING:
            return contnode
    return None


_MISSING: Any = object()


def _absolute(target: str) -> list[tuple[str, str]]:
    """``a.b.c.name`` as (module, attribute path) pairs, longest module first."""
    parts = target.split(".")
    pairs = []
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        pairs.append((module, ".".join(parts[cut:])))
    return pairs


def setup(app: Any) -> None:
    app.connect("missing-reference", _public_name)
    app.connect("missing-reference", _project_name)
