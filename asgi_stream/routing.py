"""A tiny router: from a path and a method to an endpoint.

The router is itself an ASGI application. A server calls it for every
connection, with one of three kinds of scope:

* ``lifespan``, once per worker process: the server announces startup and
  shutdown, and the app answers ``lifespan.startup.complete`` (or
  ``.failed``, which makes the server refuse to start) and
  ``lifespan.shutdown.complete``. The router runs its hooks in between.
* ``http``, once per request: find the route, build a
  :class:`~asgi_stream.request.Request`, await the endpoint, and run the
  response it returns. Every endpoint is ``async def endpoint(request)`` and
  returns a response (any ASGI callable).
* ``websocket``: we serve none, so the router refuses the handshake with a
  close, which the server turns into a 403.

Failures are answered as FastAPI would, with a JSON body: 404
``{"detail": "Not Found"}`` for an unknown path, 405 with an ``Allow`` header
for a known path and the wrong method, the endpoint's own
:class:`~asgi_stream.exceptions.HTTPException`, and 500
``{"detail": "Internal Server Error"}`` for anything else (except a client
that left while sending its body, which gets no answer at all), which is logged
with its traceback on the server and never shown to the client. Once an
endpoint has returned its response, errors belong to the response: the
status line may already be on the wire.

A ``GET`` route also answers ``HEAD``: the response classes send headers only
for HEAD, and a stream's generator is never started.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .exceptions import ClientDisconnect, HTTPException
from .request import MAX_BODY_SIZE, Request
from .response import JSONResponse
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["Endpoint", "Hook", "Route", "Router"]

logger = logging.getLogger("asgi_stream")

#: An endpoint: an async function from the request to the response (any ASGI app).
Endpoint = Callable[[Request], Awaitable[ASGIApp]]
#: A lifespan hook: an async function of no arguments, run at startup or at shutdown.
Hook = Callable[[], Awaitable[None]]

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")


class Route:
    """A path pattern such as ``/jobs/{id}``, its methods and its endpoint."""

    def __init__(self, path: str, endpoint: Endpoint, methods: Iterable[str]) -> None:
        self.path = path
        self.endpoint = endpoint
        self.methods = frozenset(method.upper() for method in methods)
        if "GET" in self.methods:
            self.methods |= {"HEAD"}
        # Each {name} matches one non-empty path segment; the rest matches literally.
        parts = _PARAM.split(path)  # literal, name, literal, name, ..., literal
        pattern = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
        )
        self.regex = re.compile(pattern)
        self.has_params = bool(_PARAM.search(path))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` matches, else ``None``."""
        if not self.has_params:
            return {} if path == self.path else None
        found = self.regex.fullmatch(path)
        return found.groupdict() if found else None


class Router:
    """Routes requests to endpoints, and answers the lifespan protocol."""

    def __init__(
        self,
        on_startup: Iterable[Hook] = (),
        on_shutdown: Iterable[Hook] = (),
        max_body_size: int = MAX_BODY_SIZE,
    ) -> None:
        self.routes: list[Route] = []
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.max_body_size = max_body_size

    def add(self, path: str, endpoint: Endpoint, methods: Iterable[str] = ("GET",)) -> None:
        """Serve ``endpoint`` at ``path`` for ``methods``."""
        self.routes.append(Route(path, endpoint, methods))

    def route(self, path: str, methods: Iterable[str] = ("GET",)) -> Callable[[Endpoint], Endpoint]:
        """The decorator form of :meth:`add`."""

        def decorator(endpoint: Endpoint) -> Endpoint:
            self.add(path, endpoint, methods)
            return endpoint

        return decorator

    def get(self, path: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, ("GET",))

    def post(self, path: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, ("POST",))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle_http(scope, receive, send)
        elif kind == "lifespan":
            await self.handle_lifespan(receive, send)
        elif kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
        else:
            logger.warning("ignored an ASGI scope of unknown type %r", kind)

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            route, params = self.resolve(scope["path"], scope["method"])
            scope["path_params"] = params
            request = Request(scope, receive, max_body_size=self.max_body_size)
            response: ASGIApp = await route.endpoint(request)
        except HTTPException as exc:
            response = JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)
        except ClientDisconnect:
            return  # the client left while sending its body: nobody to answer
        except Exception:
            logger.exception("endpoint failed: %s %s", scope["method"], scope["path"])
            response = JSONResponse({"detail": "Internal Server Error"}, 500)
        await response(scope, receive, send)

    def resolve(self, path: str, method: str) -> tuple[Route, dict[str, str]]:
        """The route and path parameters for a request; 404 or 405 otherwise."""
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if method in route.methods:
                return route, params
            allowed |= route.methods
        if allowed:
            raise HTTPException(405, "Method Not Allowed", {"Allow": ", ".join(sorted(allowed))})
        raise HTTPException(404, "Not Found")

    async def handle_lifespan(self, receive: Receive, send: Send) -> None:
        if await self._run_hooks(await receive(), self.on_startup, send):
            await self._run_hooks(await receive(), self.on_shutdown, send)

    async def _run_hooks(self, message: dict[str, Any], hooks: list[Hook], send: Send) -> bool:
        phase = message["type"]  # "lifespan.startup" or "lifespan.shutdown"
        try:
            for hook in hooks:
                await hook()
        except Exception as exc:
            logger.exception("%s hook failed", phase)
            await send({"type": f"{phase}.failed", "message": repr(exc)})
            return False
        await send({"type": f"{phase}.complete"})
        return True
