"""A traced application for a server to import: ``uvicorn asgi_stream.tools.traced:app``.

A server builds its application from an import string, in each of its worker
processes, so "this application, traced" needs an import string of its own.
This module is it: ``app`` is the application named by
``ASGI_STREAM_TRACE_APP`` (the catalogue by default) wrapped in
:class:`~asgi_stream.tracer.Tracer`, which prints every ASGI message to
standard error (``ASGI_STREAM_TRACE_TEXT=0`` turns that off) and appends JSON
lines to ``ASGI_STREAM_TRACE_JSON`` when it is set::

    ASGI_STREAM_TRACE_APP=examples.lesson1_bare_asgi:app uvicorn asgi_stream.tools.traced:app

``asgi-stream serve --trace`` sets those variables with
:func:`trace_environment` and serves :data:`TRACED_APP`. ``app`` is built the
first time it is looked up, so importing this module for its helpers builds
nothing.
"""

from __future__ import annotations

import os
import pkgutil
from typing import Any

from ..tracer import Tracer

__all__ = ["TRACED_APP", "trace_environment", "traced_app_from_environment"]

#: The import string of the traced application, for a server.
TRACED_APP = "asgi_stream.tools.traced:app"
TRACE_APP_VARIABLE = "ASGI_STREAM_TRACE_APP"
TRACE_JSON_VARIABLE = "ASGI_STREAM_TRACE_JSON"
TRACE_TEXT_VARIABLE = "ASGI_STREAM_TRACE_TEXT"


def trace_environment(app: str, *, text: bool, json_lines: str | None) -> dict[str, str]:
    """The environment that makes :data:`TRACED_APP` trace ``app`` (``"module:attribute"``).

    A server's worker processes build their application from an import
    string, so the tracer's settings travel to them in environment variables:
    the application to wrap, whether to print text lines, and a file to append
    JSON lines to.
    """
    env = {TRACE_APP_VARIABLE: app, TRACE_TEXT_VARIABLE: "1" if text else "0"}
    if json_lines:
        env[TRACE_JSON_VARIABLE] = json_lines
    return env


def traced_app_from_environment() -> Tracer:
    """The application named by :func:`trace_environment`'s variables, traced.

    The catalogue, printing text lines, when none are set.
    """
    app = pkgutil.resolve_name(os.environ.get(TRACE_APP_VARIABLE, "asgi_stream.catalogue:app"))
    json_lines = os.environ.get(TRACE_JSON_VARIABLE) or None
    if os.environ.get(TRACE_TEXT_VARIABLE, "1") == "0":
        return Tracer(app, text=None, json_lines=json_lines)
    return Tracer(app, json_lines=json_lines)


def __getattr__(name: str) -> Any:
    # A module-level __getattr__ (PEP 562) runs only for names the module
    # lacks: the server's lookup of ``app`` builds it, once.
    if name == "app":
        globals()["app"] = traced_app_from_environment()
        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
