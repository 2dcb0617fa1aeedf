"""The public API is declared: ``asgi_stream.__all__`` is exactly :data:`PUBLIC`.

The names a user writes are listed here, once, so that adding one is a
decision made in a review, not a side effect of a module's ``__all__``. Each is
importable from ``asgi_stream`` and is the very object its module defines; a
module's own ``__all__`` holds only public names (its plumbing stays out of
``from module import *``). ``__all__`` is kept in the order ruff's RUF022 sorts
it (constants, then classes, then everything else), which is also the order
``ruff check --fix`` restores. ``tests/test_docs.py`` holds the API reference
to the same list.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
from pathlib import Path

import pytest

import asgi_stream

#: The declared public API.
PUBLIC = frozenset(
    {
        # Responses and Server-Sent Events
        *("Response", "JSONResponse", "StreamingResponse", "EventSourceResponse"),
        "ServerSentEvent",
        "FileResponse",
        # The request and routing
        *("Request", "Router", "Route", "Mount", "HTTPException", "ClientDisconnect"),
        "KeepRequestBody",
        *("URLPath", "NoMatchFound"),
        *("Headers", "MutableHeaders", "QueryParams", "URL", "Address", "State"),
        # Around a stream
        *("BackgroundTask", "BackgroundTasks", "run_in_threadpool"),
        *("timeout_each", "batched", "gzip_response"),
        # Resumable streams and fan-out
        *("EventLog", "MemoryEventLog", "RedisEventLog", "open_event_log", "Event"),
        "RedisClusterEventLog",
        *("EventIDNotFound", "ResumableEventSourceResponse", "last_event_id"),
        *("EventLogUnavailable", "LogSubscription", "retry_later"),
        *("Broadcast", "Subscription"),
        # Shutdown, tracing, warnings and types
        *("GracefulShutdown", "stop_streams", "Tracer", "ConnectionHeaderWarning"),
        *("ASGIApp", "Scope", "Receive", "Send", "Message", "HeadersInput", "Content"),
    }
)

LIBRARY_MODULES = sorted(
    f"asgi_stream.{path.stem}"
    for path in Path(asgi_stream.__file__).parent.glob("*.py")
    if path.stem not in {"__init__", "__main__"}
)
#: The submodules whose public names are their own, imported from them, each with its
#: declared list: the Starlette twins need a framework, which ``import asgi_stream`` must
#: never load, and the testing helpers are for a test suite, not for an app (as pytest's
#: and httpx's own are).
OWN_NAMESPACE = {
    "asgi_stream.starlette": frozenset({"starlette_compatible"}),
    "asgi_stream.testing": frozenset(
        {
            *("stream", "StreamedResponse", "lifespan", "http_scope"),
            *("EventStreamParser", "MessageEvent", "parse_event_stream", "ParsedEventStream"),
            *("ReadTimeout", "AppStillRunning", "IncompleteResponse", "LifespanFailed"),
        }
    ),
    "asgi_stream.testing_httpx": frozenset({"StreamingTransport"}),
}


def test_the_public_api_is_the_declared_list() -> None:
    assert set(asgi_stream.__all__) == PUBLIC
    assert len(asgi_stream.__all__) == len(PUBLIC) == 52


def ruff_order(name: str) -> tuple[int, list[str | int]]:
    """RUF022's "isort-style" key: SCREAMING_CASE, CamelCase, the rest; digits as numbers."""
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, natural


def test_every_name_in_all_exists() -> None:
    missing = [name for name in asgi_stream.__all__ if not hasattr(asgi_stream, name)]
    assert not missing


def test_all_is_sorted_without_duplicates() -> None:
    assert asgi_stream.__all__ == sorted(asgi_stream.__all__, key=ruff_order)
    assert len(asgi_stream.__all__) == len(set(asgi_stream.__all__))


def test_the_sort_key_is_ruffs() -> None:
    """The key is the one ruff applies, not plain ``sorted()``: constants come first."""
    names = ["timeout_each", "Tracer", "ASGIApp", "URL", "HTTPException", "Headers"]
    assert sorted(names, key=ruff_order) == [
        "URL",
        "ASGIApp",
        "HTTPException",
        "Headers",
        "Tracer",
        "timeout_each",
    ]


def test_everything_public_in_the_package_is_in_all() -> None:
    """In the spirit of httpx: a public name in ``asgi_stream``'s namespace is in ``__all__``."""
    public = {
        name
        for name, value in vars(asgi_stream).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(asgi_stream.__all__)


@pytest.mark.parametrize("module_name", LIBRARY_MODULES)
def test_each_modules_all_holds_only_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} states no __all__"
    assert module.__all__ == sorted(module.__all__, key=ruff_order)
    if module_name in OWN_NAMESPACE:
        assert set(module.__all__) == OWN_NAMESPACE[module_name]
        assert all(hasattr(module, name) for name in module.__all__)
        return
    for name in module.__all__:
        assert name in asgi_stream.__all__, f"{module_name}.{name} is not public"
        assert getattr(asgi_stream, name) is getattr(module, name)


@pytest.mark.parametrize("name", asgi_stream.__all__)
def test_each_export_is_defined_in_the_library(name: str) -> None:
    """A class or function exported is the library's own, never one re-exported from elsewhere.

    Constants and type aliases carry no ``__module__`` of their own (``MAX_THREADS``
    is an ``int``; ``Scope`` reports ``collections.abc``), so for them it is
    enough that some library module lists them in its ``__all__``.
    """
    value = getattr(asgi_stream, name)
    if inspect.isclass(value) or inspect.isfunction(value):
        assert value.__module__ in LIBRARY_MODULES
    assert any(name in importlib.import_module(module).__all__ for module in LIBRARY_MODULES)
