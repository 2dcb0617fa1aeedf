"""Sphinx configuration for the asgi-stream documentation.

Built-in theme and extensions only, and no network: ``sphinx-build -W -b html
docs DIR`` must pass on a machine with no internet access (the test suite runs
it, ``tests/test_docs.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Autodoc imports the package from this checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
nitpicky = False
exclude_patterns = ["_build"]
