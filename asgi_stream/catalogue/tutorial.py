"""The tutorial's FastAPI code, served beside the catalogue under ``/fastapi``.

The demo page can run a card's request against both implementations at once:
ours at ``/stream``, the tutorial's own FastAPI code at ``/fastapi/stream``,
from the same server process, traced the same way. That code lives in
``examples/fastapi_catalogue.py``, at the top of a clone of the repository, not
in the installed package, and FastAPI is not a dependency of asgi-stream (the
``compare`` extra installs it). So nothing here imports FastAPI until a request
for ``/fastapi/...`` arrives; then the example file is loaded by its path, once,
in a worker thread (importing FastAPI takes long enough to stall every stream if
done on the event loop). Where FastAPI or the file is missing, those requests get
a 404 whose ``detail`` says why, and :func:`unavailable` tells the page the same.

It is mounted (:meth:`~asgi_stream.routing.Router.mount`), so it sees what a
mounted app sees: the full path, and ``/fastapi`` added to its ``root_path``. The
tutorial's code reads its tick once, from the environment
(``ASGI_STREAM_TICK``), and takes no ``?tick=``; :attr:`Tutorial.tick` reports it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ..request import Request
from ..response import JSONResponse
from ..routing import Router
from ..types import ASGIApp, Receive, Scope, Send
from .differences import for_page

__all__ = ["EXAMPLE", "PREFIX", "Tutorial", "source_tree", "unavailable"]

#: Where the tutorial's FastAPI code is, in a clone of the repository.
EXAMPLE = Path("examples", "fastapi_catalogue.py")
#: Where the catalogue serves it.
PREFIX = "/fastapi"
_MODULE = "examples.fastapi_catalogue"


def source_tree() -> Path | None:
    """The clone of the repository that holds :data:`EXAMPLE`: the one this package
    is installed from (editable), else the current directory; ``None`` if neither."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / EXAMPLE).is_file():
            return root
    return None


def unavailable() -> str | None:
    """Why the tutorial's FastAPI code cannot be served here, or ``None`` if it can."""
    if importlib.util.find_spec("fastapi") is None:
        return "FastAPI is not installed: pip install 'asgi-stream[compare]'"
    if source_tree() is None:
        return f"{EXAMPLE.as_posix()} was not found: it is in a clone of the repository"
    return None


class Tutorial:
    """An ASGI app that serves the tutorial's FastAPI app under :data:`PREFIX`."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None
        self._lock = asyncio.Lock()

    @property
    def tick(self) -> float | None:
        """The tick the FastAPI app runs at, once it is loaded."""
        return None if self._module is None else float(self._module.TICK)

    async def load(self) -> ModuleType | None:
        """The example's module, loaded on first use; ``None`` if it cannot be."""
        async with self._lock:
            if self._module is None and unavailable() is None:
                self._module = await asyncio.to_thread(_load)
        return self._module

    async def describe(self, request: Request) -> JSONResponse:
        """``GET /differences``: whether the FastAPI app is here, and the differences
        between it and ours that are on purpose (:mod:`~asgi_stream.catalogue.differences`)."""
        await self.load()
        fastapi = {"prefix": PREFIX, "unavailable": unavailable(), "tick": self.tick}
        return JSONResponse({"fastapi": fastapi, "differences": for_page()})

    def install(self, router: Router) -> None:
        """Mount the FastAPI app at :data:`PREFIX`, and add ``GET /differences``."""
        router.mount(PREFIX, self)
        router.add("/differences", self.describe)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        module = await self.load()
        if module is None:
            await JSONResponse({"detail": unavailable()}, 404)(scope, receive, send)
            return
        app: ASGIApp = module.app
        await app(scope, receive, send)


def _load() -> ModuleType:
    module = sys.modules.get(_MODULE)  # already imported by import string (a clone's cwd)
    if module is not None:
        return module
    root = source_tree()
    assert root is not None  # checked by unavailable()
    spec = importlib.util.spec_from_file_location(_MODULE, root / EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module  # as an import would, for code that looks itself up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_MODULE]
        raise
    return module
