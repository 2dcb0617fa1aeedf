"""Naming Python objects in strings: ``"package.module:attribute"``.

Settings that cross a process boundary (a command-line flag, an environment
variable read by a server's worker) cannot carry a Python object, only its
name. uvicorn and hypercorn name apps this way; we name apps and chat models
the same way, and resolve every such name here.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_object"]


def import_object(name: str) -> Any:
    """The object named by ``"module:attribute"`` (``attribute`` may be dotted)."""
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"an object is named as 'module:attribute', not {name!r}")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found
