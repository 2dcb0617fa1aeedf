"""A tiny router: from a path and a method to an endpoint.

The router is itself an ASGI application. A server calls it for every
connection, with one of three kinds of scope:

* ``lifespan``, once per worker process: the server announces startup and
  shutdown, and the app answers ``lifespan.startup.complete`` (or
  ``.failed``, which makes the server refuse to start) and
  ``lifespan.shutdown.complete``. The router runs its hooks in between, and
  a Starlette-style ``lifespan=`` context manager inside them.
* ``http``, once per request: find the route, build a
  :class:`~asgi_stream.request.Request`, call the endpoint, and run the
  response it returns.
* ``websocket``: we serve none, so the router refuses the handshake with a
  close, which the server turns into a 403.

**Patterns** are Starlette's: ``/items/{item_id}`` matches one path segment,
and ``/items/{item_id:int}`` converts it (``str``, ``int``, ``float``,
``uuid``, and ``path``, which also matches slashes). A pattern the router
could not serve is a :class:`ValueError` when it is added, not a route that
silently never matches.

**Behind a proxy at a prefix** the server puts the prefix in
``scope["root_path"]``. uvicorn also puts it in front of ``scope["path"]``
(the proxy is expected to strip it); hypercorn leaves the path as the client
sent it. Like Starlette, we route on the path with the root path taken off
when it is there (``route_path()`` in :mod:`asgi_stream.request`), so one app works
under both. :meth:`Router.mount` uses the same mechanism to hand a prefix to
another ASGI app.

**Endpoints** are written as in FastAPI: ``async def`` or plain ``def`` (run in
the thread pool, so it may block), taking the request and returning a response
(any ASGI callable, Starlette's responses included) or a ``dict`` or ``list``
(sent as a :class:`~asgi_stream.response.JSONResponse`).

Failures are answered as FastAPI would, with a JSON body: 404
``{"detail": "Not Found"}`` for an unknown path, 405 with an ``Allow`` header
for a known path and the wrong method, the endpoint's own
:class:`~asgi_stream.exceptions.HTTPException`, and 500
``{"detail": "Internal Server Error"}`` for anything else (except a client
that left while sending its body, which gets no answer at all), which is logged
with its traceback on the server and never shown to the client. An endpoint
that returns something that is not a response is a 500 too, logged in one line
that names the endpoint and what it returned, and so is an error whose detail
cannot be sent as JSON. Once an endpoint has returned its
response, errors belong to the response: the status line may already be on
the wire.

The response runs with :meth:`Request.receive
<asgi_stream.request.Request.receive>`, which tells it of the disconnect but
keeps the body for the request: a generator may read ``request.stream()``
(an upload, transformed and streamed back) while the response watches for
the client leaving. So an app that reads the body itself through
``receive()`` is mounted, not returned from an endpoint.

A ``GET`` route also answers ``HEAD``: the response classes send headers only
for HEAD, and a stream's generator is never started. So an endpoint must not
acquire anything in its body that only the generator releases (see
``examples/head_safe_subscription.py``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sys
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from .concurrency import is_async_callable, run_in_threadpool
from .datastructures import URLPath
from .exceptions import ClientDisconnect, HTTPException
from .headers import is_token
from .request import MAX_BODY_SIZE, Request, route_path
from .response import JSONResponse, Response, error_response, json_error
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Mount", "NoMatchFound", "Route", "Router"]

logger = logging.getLogger("asgi_stream")

#: An endpoint: a function, ``async`` or not, from the request to a response
#: (any ASGI app), a ``dict`` or a ``list``.
Endpoint = Callable[[Request], Any]
#: A lifespan hook: a function of no arguments, ``async`` or not, run at startup
#: or at shutdown (a plain one is called in the event loop, as Starlette does).
Hook = Callable[[], Awaitable[None] | None]
#: Starlette's ``lifespan=``: called with the router, gives an async context
#: manager entered at startup and left at shutdown. What it yields, if not
#: ``None``, is a mapping copied into every request's ``request.state``.
Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Mapping[str, Any] | None]]

#: The converters a pattern may name, ``{name:converter}``: the regex a value
#: must match, and the function that turns the matched text into the value.
CONVERTERS: Mapping[str, tuple[str, Callable[[str], Any]]] = {
    "str": ("[^/]+", str),
    "path": (".*", str),
    "int": ("[0-9]+", int),
    "float": (r"[0-9]+(?:\.[0-9]+)?", float),
    "uuid": ("[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}", uuid.UUID),
}

_BRACED = re.compile(r"{([^{}]*)}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What a path parameter's value may hold unescaped in a URL built by url_path_for.
_SEGMENT_SAFE = ":@!$&'()*+,;=~"


class NoMatchFound(LookupError):
    """No route has that name and those parameters (``url_path_for``, ``url_for``).

    When Starlette is loaded, what is raised is also Starlette's
    ``NoMatchFound``: Starlette's router, walking into a mounted
    :class:`Router`, tells a route that does not match by that exception.
    """

    def __init__(self, name: str, path_params: Mapping[str, Any]) -> None:
        self.name = name
        self.path_params = dict(path_params)
        params = ", ".join(sorted(path_params))
        # Exception.__init__, not super(): in the twin made for Starlette, the
        # next class in line is Starlette's, whose __init__ wants other arguments.
        Exception.__init__(self, f"no route is named {name!r} with the parameters ({params})")


def _no_match(name: str, path_params: Mapping[str, Any]) -> NoMatchFound:
    """A :class:`NoMatchFound`, which is also Starlette's if Starlette is loaded."""
    starlette_routing = sys.modules.get("starlette.routing")
    if starlette_routing is None:
        return NoMatchFound(name, path_params)
    return _twin_of(starlette_routing.NoMatchFound)(name, path_params)


@functools.cache
def _twin_of(theirs: type[Exception]) -> type[NoMatchFound]:
    bases = (NoMatchFound, theirs)
    twin: type[NoMatchFound] = type("NoMatchFound", bases, {"__module__": __name__})
    return twin


def _no_match_errors() -> tuple[type[Exception], ...]:
    """Ours, and Starlette's when it is loaded (a mounted Starlette app raises that)."""
    starlette_routing = sys.modules.get("starlette.routing")
    if starlette_routing is None:
        return (NoMatchFound,)
    return (NoMatchFound, starlette_routing.NoMatchFound)


def compile_pattern(path: str) -> tuple[re.Pattern[str], dict[str, Callable[[str], Any]]]:
    """The regex for a route pattern, and the converter of each parameter.

    Raises :class:`ValueError` for a pattern the router could not serve: no
    leading slash, an unbalanced brace, a parameter name that is not an
    identifier or is used twice, an unknown converter.
    """
    if not path.startswith("/"):
        raise ValueError(f"route path {path!r} must start with '/'")
    regex = []
    converters: dict[str, Callable[[str], Any]] = {}
    # split() with a group alternates: literal, parameter, literal, ..., literal.
    for i, piece in enumerate(_BRACED.split(path)):
        if i % 2 == 0:
            if "{" in piece or "}" in piece:
                raise ValueError(f"route path {path!r} has an unbalanced brace")
            regex.append(re.escape(piece))
            continue
        name, colon, kind = piece.partition(":")
        if not _NAME.fullmatch(name):
            raise ValueError(f"route path {path!r}: {name!r} is not a valid parameter name")
        if name in converters:
            raise ValueError(f"route path {path!r} uses the parameter {name!r} twice")
        kind = kind if colon else "str"
        if kind not in CONVERTERS:
            known = ", ".join(CONVERTERS)
            raise ValueError(f"route path {path!r}: unknown converter {kind!r} (known: {known})")
        pattern, converters[name] = CONVERTERS[kind]
        regex.append(f"(?P<{name}>{pattern})")
    return re.compile("".join(regex)), converters


def fill_pattern(path: str, path_params: Mapping[str, Any]) -> str:
    """The pattern ``path`` with the value of each of its parameters put in,
    percent-encoded; a :class:`ValueError` for a value the pattern would not
    match (``"a/b"`` for a ``str`` parameter, ``-1`` for an ``int``)."""

    def fill(parameter: re.Match[str]) -> str:
        key, _, kind = parameter[1].partition(":")
        kind = kind or "str"
        text = str(path_params[key])
        if not re.fullmatch(CONVERTERS[kind][0], text):
            raise ValueError(f"{text!r} is not a valid {key!r} for the route {path!r}")
        return quote(text, _SEGMENT_SAFE + "/" if kind == "path" else _SEGMENT_SAFE)

    return _BRACED.sub(fill, path)


def _check_methods(methods: Iterable[str]) -> frozenset[str]:
    """The method names, upper-cased; refused unless each is an HTTP token.

    A lone ``str`` is a :class:`TypeError`: ``methods="GET"`` would be the
    methods G, E and T. A name that is not a token (a space, a CR LF) could
    never be requested, and would break the ``Allow`` header of a 405.
    """
    if isinstance(methods, str | bytes):
        raise TypeError(f"methods must be a collection of method names (['GET']), not {methods!r}")
    names = []
    for method in methods:
        if not isinstance(method, str):
            raise TypeError(f"a method must be a str, not {type(method).__name__}")
        if not is_token(method):
            raise ValueError(f"invalid method {method!r}: a method must be an HTTP token")
        names.append(method.upper())
    if not names:
        raise ValueError("a route needs at least one method")
    return frozenset(names)


class Route:
    """A path pattern such as ``/jobs/{id}``, its methods and its endpoint.

    ``name`` (by default the endpoint's ``__name__``, as in Starlette) is what
    :meth:`url_path_for` and ``request.url_for()`` find it by.
    """

    def __init__(
        self, path: str, endpoint: Endpoint, methods: Iterable[str], name: str | None = None
    ) -> None:
        self.path = path
        self.endpoint = endpoint
        self.name = name or getattr(endpoint, "__name__", type(endpoint).__name__)
        self.methods = _check_methods(methods)
        if "GET" in self.methods:
            self.methods |= {"HEAD"}
        self.regex, self.converters = compile_pattern(path)
        self.is_async = is_async_callable(endpoint)

    def match(self, path: str) -> dict[str, Any] | None:
        """The converted path parameters when ``path`` matches, else ``None``."""
        if not self.converters:
            return {} if path == self.path else None
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        try:
            return {name: self.converters[name](text) for name, text in found.groupdict().items()}
        except ValueError:  # int() refuses more than 4300 digits: no such item, so no match
            return None

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """This route's path with ``path_params`` in it, if it is named ``name``
        and takes exactly those parameters (else :class:`NoMatchFound`).

        A value whose text the route would not match (``"a/b"`` for a ``str``
        parameter, ``-1`` for an ``int``) is a :class:`ValueError`; the rest
        is percent-encoded.
        """
        if name != self.name or set(path_params) != set(self.converters):
            raise _no_match(name, path_params)
        return URLPath(fill_pattern(self.path, path_params))

    async def call(self, request: Request) -> Any:
        """Run the endpoint: awaited if async, in the thread pool if not."""
        if self.is_async:
            return await self.endpoint(request)
        return await run_in_threadpool(self.endpoint, request)


class Mount:
    """Another ASGI app, serving every path under ``prefix``.

    As Starlette's ``Mount`` does, the child sees the prefix added to its
    ``root_path``; its ``path`` is the full path, root path included, which is
    how uvicorn builds a scope and what every ASGI framework can route on.

    The prefix may hold parameters, as a route's pattern does
    (``/users/{username}``): the child gets their values in
    ``scope["path_params"]``, with those of any mount around it, and its
    ``root_path`` ends with the text they matched (``/users/ada``). The
    parameter name ``path`` is the mount's own, in :meth:`Router.url_path_for`.

    Only the paths *below* the prefix are the child's: ``/users`` itself, for
    a mount at ``/users``, is answered by the router with Starlette's 307 to
    ``/users/``, whatever app is mounted there.

    ``prefix="/"`` mounts the app at the root, as the router's *fallback*: it
    serves every request that no route serves, wherever it was added among
    the routes (``mount("/", StaticFiles(directory="site", html=True))`` next
    to an API). A path that a route serves for other methods remains a 405.

    An exception the app raises before it has started its response is
    answered as an endpoint's would be: one with a ``status_code`` and a
    ``detail`` (Starlette's ``HTTPException``, which ``StaticFiles`` raises for
    a missing file and leaves to Starlette's app to answer) as that JSON
    error, anything else as a logged 500.
    """

    def __init__(self, prefix: str, app: ASGIApp, name: str | None = None) -> None:
        if prefix == "/":
            prefix = ""  # the root: every path is under it
        elif prefix != prefix.rstrip("/") or not prefix.startswith("/"):
            raise ValueError(
                f"mount prefix {prefix!r} must be '/', or start with '/' and not end with one"
            )
        self.prefix = prefix
        self.app = app
        self.name = name
        regex, self.converters = compile_pattern(prefix or "/")
        if "path" in self.converters:
            raise ValueError(
                f"mount prefix {prefix!r}: the parameter name 'path' is the mount's own"
            )
        # What follows the prefix is "/" and the rest of the path, or nothing.
        self._regex = re.compile(regex.pattern + "(?P<path>/.*)") if self.converters else None

    @property
    def routes(self) -> list[Any]:
        """The mounted app's routes, if it has any (Starlette's ``Mount`` has this too)."""
        return list(getattr(self.app, "routes", []))

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """The path of the mounted app's route ``name``, under the prefix.

        As in Starlette: a mount named ``"legacy"`` finds ``"legacy:hello"``,
        and ``("legacy", path="/a.css")`` is the prefix and that path (for
        static files); an unnamed one finds its app's names as they are.
        """
        if not set(self.converters) <= set(path_params):
            raise _no_match(name, path_params)
        prefix = fill_pattern(self.prefix, path_params)
        inner_params = {k: v for k, v in path_params.items() if k not in self.converters}
        if self.name is not None:
            if name == self.name and set(inner_params) == {"path"}:
                return URLPath(prefix + "/" + quote(str(inner_params["path"]).lstrip("/")))
            if not name.startswith(self.name + ":"):
                raise _no_match(name, path_params)
        inner = name if self.name is None else name[len(self.name) + 1 :]
        find = getattr(self.app, "url_path_for", None)
        if find is None:
            raise _no_match(name, path_params)
        try:
            path = find(inner, **inner_params)
        except _no_match_errors():
            raise _no_match(name, path_params) from None
        return URLPath(prefix + str(path), getattr(path, "protocol", "http"))

    def match(self, path: str) -> tuple[str, dict[str, Any]] | None:
        """When ``path`` is below the prefix: the rest of it (``/`` and what
        follows), and the prefix's parameters, converted."""
        if self._regex is None:
            if path.startswith(self.prefix + "/"):
                return path[len(self.prefix) :], {}
            return None
        found = self._regex.fullmatch(path)
        if found is None:
            return None
        texts = found.groupdict()
        rest = texts.pop("path")
        try:
            return rest, {key: self.converters[key](text) for key, text in texts.items()}
        except ValueError:  # as for a route: a number too long for int() matches nothing
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        matched = self.match(path)
        assert matched is not None, "the router calls a mount only for a path under its prefix"
        rest, params = matched
        root_path = scope.get("root_path", "") + path[: len(path) - len(rest)]
        child = {
            **scope,
            "root_path": root_path,
            "path": root_path + rest,
            "app_root_path": scope.get("app_root_path", scope.get("root_path", "")),
            "path_params": {**scope.get("path_params", {}), **params},
        }
        started = False

        async def watch_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(child, receive, watch_start)
        except Exception as exc:
            if started or scope["type"] != "http":
                raise
            error = error_response(exc)
            if error is None:
                logger.exception("mounted app failed: %s %s", scope["method"], scope["path"])
                error = json_error(500, "Internal Server Error")
            await error(scope, receive, send)


class Router:
    """Routes requests to endpoints and mounted apps, and answers the lifespan protocol.

    ``lifespan`` is Starlette's: a function that takes the router and returns
    an async context manager (``contextlib.asynccontextmanager`` makes one).
    It is entered after the ``on_startup`` hooks and left before the
    ``on_shutdown`` hooks, so both styles can be used at once. Mounted apps get
    no lifespan events, as in Starlette.
    """

    def __init__(
        self,
        on_startup: Iterable[Hook] = (),
        on_shutdown: Iterable[Hook] = (),
        max_body_size: int = MAX_BODY_SIZE,
        lifespan: Lifespan | None = None,
    ) -> None:
        self.routes: list[Route | Mount] = []
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.max_body_size = max_body_size
        self.lifespan = lifespan

    def add(
        self,
        path: str,
        endpoint: Endpoint,
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
    ) -> None:
        """Serve ``endpoint`` at ``path`` for ``methods`` (a ``GET`` route answers ``HEAD`` too).

        ``name`` is the route's name for :meth:`url_path_for`; by default the
        endpoint's ``__name__``.

        A pattern the router cannot serve is a :class:`ValueError`, and so is
        a method that is not an HTTP token; ``methods`` as one ``str``
        (``"GET"``, not ``["GET"]``) is a :class:`TypeError`.
        """
        self.routes.append(Route(path, endpoint, methods, name))

    def mount(self, prefix: str, app: ASGIApp, name: str | None = None) -> None:
        """Hand every request under ``prefix`` to ``app``: another Router, a
        Starlette or FastAPI app, Starlette's ``StaticFiles``, any ASGI app.

        ``"/"`` makes ``app`` the fallback for whatever no route serves (see
        :class:`Mount`); there can be one. ``name`` scopes the names of the
        app's routes for :meth:`url_path_for`, as Starlette's ``Mount`` does.
        """
        mount = Mount(prefix, app, name)
        if not mount.prefix and any(isinstance(r, Mount) and not r.prefix for r in self.routes):
            raise ValueError("an app is already mounted at '/': the second would never be reached")
        self.routes.append(mount)

    def route(
        self, path: str, methods: Iterable[str] = ("GET",), name: str | None = None
    ) -> Callable[[Endpoint], Endpoint]:
        """The decorator form of :meth:`add`."""
        methods = _check_methods(methods)  # here, not when the decorator is applied

        def decorator(endpoint: Endpoint) -> Endpoint:
            self.add(path, endpoint, methods, name)
            return endpoint

        return decorator

    def get(self, path: str, name: str | None = None) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, ("GET",), name)

    def post(self, path: str, name: str | None = None) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, ("POST",), name)

    def put(self, path: str, name: str | None = None) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, ("PUT",), name)

    def delete(self, path: str, name: str | None = None) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, ("DELETE",), name)

    def patch(self, path: str, name: str | None = None) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, ("PATCH",), name)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """The path of the route named ``name`` with ``path_params`` in it,
        searched in order, into mounted apps too (Starlette's API, and what a
        Starlette app around this router calls); :class:`NoMatchFound` if none.

        The path is relative to the app's root; ``request.url_for()`` makes
        the whole URL, with the root path in it.
        """
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise _no_match(name, path_params)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            # The outermost router answers url_for() for every app inside it,
            # mounted ones included (Starlette's convention, which they follow).
            scope.setdefault("router", self)
            await self.handle_http(scope, receive, send)
        elif kind == "lifespan":
            await self.handle_lifespan(scope, receive, send)
        elif kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
        else:
            logger.warning("ignored an ASGI scope of unknown type %r", kind)

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, max_body_size=self.max_body_size)
        try:
            response = await self.respond(request)
        except HTTPException as exc:
            response = json_error(exc.status_code, exc.detail, exc.headers)
        except ClientDisconnect:
            return  # the client left while sending its body: nobody to answer
        except Exception:
            logger.exception("endpoint failed: %s %s", scope["method"], scope["path"])
            response = json_error(500, "Internal Server Error")
        if isinstance(response, Mount):
            await response(scope, receive, send)  # the body is the mounted app's to read
        else:
            # The request's receive: a disconnect the endpoint has already
            # seen (is_disconnected()) is seen again by the response, and the
            # body stays with the request, for a generator that reads it.
            await response(scope, request.receive, send)

    async def respond(self, request: Request) -> ASGIApp:
        """The response to ``request``: the endpoint's, a mounted app, or a redirect."""
        scope = request.scope
        path = route_path(scope)
        if not path:
            # The bare prefix (/api, no slash): relative links on a page there
            # would miss the prefix, so send the client to /api/ as Starlette does.
            return _redirect(scope.get("root_path", "") + "/", scope.get("query_string", b""))
        try:
            route, params = self.resolve(path, scope["method"])
        except HTTPException as exc:
            other = self._other_slash(path) if exc.status_code == 404 else None
            if other is None:
                raise
            # /items/ for /items (or the reverse): Starlette's redirect_slashes.
            return _redirect(scope.get("root_path", "") + other, scope.get("query_string", b""))
        if isinstance(route, Mount):
            return route
        request.check_declared_size()  # 413 before any response starts, whoever reads the body
        # Merged, as Starlette does: a route in a mount with parameters sees them too.
        scope["path_params"] = {**scope.get("path_params", {}), **params}
        return self.as_response(route, await route.call(request))

    def _other_slash(self, path: str) -> str | None:
        """``path`` with its trailing slash added or taken off, if a route or a
        mount (not the one at the root, which takes every path) serves that."""
        if path == "/":
            return None
        other = path[:-1] if path.endswith("/") else path + "/"
        served = any(
            (isinstance(r, Route) or r.prefix) and r.match(other) is not None for r in self.routes
        )
        return other if served else None

    def as_response(self, route: Route, result: Any) -> ASGIApp:
        """What the endpoint returned, as an ASGI app: a dict or list becomes JSON."""
        if isinstance(result, dict | list):
            return JSONResponse(result)
        if callable(result):
            app: ASGIApp = result  # any callable is taken for an ASGI app, as Starlette does
            return app
        logger.error(
            "endpoint %s returned %s, not a response, dict or list",
            _name_of(route.endpoint),
            type(result).__qualname__,
        )
        return JSONResponse({"detail": "Internal Server Error"}, 500)

    def resolve(self, path: str, method: str) -> tuple[Route | Mount, dict[str, Any]]:
        """The first route or mount that serves ``path`` and ``method``, with
        the path parameters; 405 when only the method is wrong; else the app
        mounted at ``/``, if any, or 404."""
        allowed: set[str] = set()
        fallback: Mount | None = None
        for route in self.routes:
            if isinstance(route, Mount):
                if not route.prefix:
                    fallback = route  # tried last, whatever its place
                elif (matched := route.match(path)) is not None:
                    return route, matched[1]
                continue
            params = route.match(path)
            if params is None:
                continue
            if method in route.methods:
                return route, params
            allowed |= route.methods
        if allowed:
            raise HTTPException(405, "Method Not Allowed", {"Allow": ", ".join(sorted(allowed))})
        if fallback is not None:
            return fallback, {}
        raise HTTPException(404, "Not Found")

    async def handle_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with contextlib.AsyncExitStack() as stack:
            await receive()  # lifespan.startup
            await self._lifespan_phase("startup", send, self._startup(scope, stack))
            await receive()  # lifespan.shutdown
            await self._lifespan_phase("shutdown", send, self._shutdown(stack))

    async def _startup(self, scope: Scope, stack: contextlib.AsyncExitStack) -> None:
        for hook in self.on_startup:
            await _run_hook(hook)
        if self.lifespan is not None:
            state = await stack.enter_async_context(self.lifespan(self))
            if state is not None:
                if "state" not in scope:
                    raise RuntimeError("the lifespan yielded state, but the server keeps none")
                scope["state"].update(state)

    async def _shutdown(self, stack: contextlib.AsyncExitStack) -> None:
        await stack.aclose()
        for hook in self.on_shutdown:
            await _run_hook(hook)

    async def _lifespan_phase(self, phase: str, send: Send, work: Awaitable[None]) -> None:
        """Run one phase and report it. A failure is reported, with its
        traceback (which the server logs), then raised, as Starlette does: a
        server or test client that waits for the app to return sees why."""
        try:
            await work
        except BaseException:
            await send({"type": f"lifespan.{phase}.failed", "message": traceback.format_exc()})
            raise
        await send({"type": f"lifespan.{phase}.complete"})


async def _run_hook(hook: Hook) -> None:
    """Call a lifespan hook, and await what it returns if it is awaitable."""
    result = hook()
    if result is not None:
        await result


def _redirect(path: str, query: bytes) -> Response:
    """A 307 to ``path`` with the same query string (percent-encoded, so header-safe)."""
    location = quote(path)
    if query:
        location += "?" + quote(query.decode("latin-1"), safe="=&;+%/:@,!$'()*~")
    return Response(status_code=307, headers={"Location": location})


def _name_of(endpoint: Any) -> str:
    name = getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__
    return f"{getattr(endpoint, '__module__', None) or '?'}.{name}"
