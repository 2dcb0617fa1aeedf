"""The request, as much of it as a streaming endpoint needs.

Everything except the body is already in the ASGI ``scope``: the method, the
path (percent-decoded by the server), the raw query string and the headers.
:class:`Request` gives them convenient shapes. The body is different: it
arrives in ``http.request`` messages from ``receive()``, possibly in many
pieces, and possibly far bigger than we are willing to hold. :meth:`Request.body`
collects it up to a limit and answers 413 beyond it, before reading more;
:meth:`Request.stream` hands it over chunk by chunk, under the same limit.

The names and their meanings are Starlette's (``url``, ``base_url``,
``cookies``, ``state``, ``is_disconnected()``, ``stream()``), so endpoints move
here by changing one import.

Input from the client is hostile until proven otherwise, so every parse that
can fail raises :class:`~asgi_stream.exceptions.HTTPException` with a 4xx
(the router turns it into a JSON error) instead of letting a ``ValueError``
become a 500.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Generator
from typing import Any
from urllib.parse import parse_qsl, quote

from .datastructures import URL, Address, FormData, QueryParams, State
from .exceptions import ClientDisconnect, HTTPException
from .headers import Headers
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["KeepRequestBody", "Request"]

#: The default limit on a request body, in bytes (413 beyond it).
MAX_BODY_SIZE = 1024 * 1024
#: The limit on the raw query string, in bytes (414 beyond it).
MAX_QUERY_SIZE = 8 * 1024

# How FastAPI (pydantic) reads a bool from a query string.

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# What a URL path may hold unescaped (RFC 3986 "pchar" and "/").
_PCHAR = "/:@!$&'()*+,;=~"


def route_path(scope: Scope) -> str:
    """The path to route on: ``scope["path"]`` without the root path.

    uvicorn puts the root path in front of the path (``/api/normal``) and
    hypercorn does not (``/normal``); both give ``/normal`` here. Only a whole
    segment is taken off: ``/apiary`` under ``/api`` stays ``/apiary``.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :]
    return path


class Request:
    """One HTTP request: ``Request(scope, receive)``."""

    def __init__(
        self, scope: Scope, receive: Receive, *, max_body_size: int = MAX_BODY_SIZE
    ) -> None:
        self.scope = scope
        self.max_body_size = max_body_size
        self.headers = Headers(scope.get("headers", ()))
        self._receive = receive
        self._unread: deque[Message] = deque()  # body messages taken from the server, not yet read
        self._received = 0  # bytes of body taken from the server, read or not
        self._too_large = False  # past max_body_size: the body is dropped, and a read is a 413
        self._disconnected = False
        self._reading = asyncio.Lock()  # held while waiting on the server's receive()
        self._taken = 0  # messages taken from the server so far
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._body: bytes | None = None
        self._streamed = False

    @property
    def method(self) -> str:
        method: str = self.scope["method"]  # a scope's values are Any; ASGI says a str
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def path_params(self) -> dict[str, Any]:
        """The route's parameters, converted: ``{item_id: 5}`` for ``/items/{item_id:int}``."""
        params: dict[str, Any] = self.scope.get("path_params", {})
        return params

    @property
    def url(self) -> URL:
        """The URL the client asked for, with the root path (a proxy's prefix) in it."""
        path = self.scope.get("root_path", "") + route_path(self.scope)
        url = self._origin() + quote(path, _PCHAR)
        query: bytes = self.scope.get("query_string", b"")
        return URL(f"{url}?{query.decode('latin-1')}" if query else url)

    @property
    def base_url(self) -> URL:
        """The URL of the application's root, ending in ``/``: in a mounted app, the top one's."""
        root: str = self.scope.get("app_root_path", self.scope.get("root_path", ""))
        return URL(self._origin() + quote(root.rstrip("/") + "/", _PCHAR))

    def _origin(self) -> str:
        """``scheme://host[:port]``, from the ``Host`` header or else the server's address."""
        scheme = self.scope.get("scheme", "http")
        host = self.headers.get("host")
        if host is None and self.scope.get("server"):
            name, port = self.scope["server"]
            host = name if port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
        return f"{scheme}://{host}" if host else ""

    @property
    def cookies(self) -> dict[str, str]:
        """The ``Cookie`` header's pairs, read leniently as browsers write them.

        Browsers send ``name=value; name2=value2`` and never reject a cookie
        for its form, so neither do we: a piece without ``=`` is a value with
        an empty name (as Firefox and Chrome store ``document.cookie = "x"``),
        an empty piece is skipped, a later name wins. A value in double quotes
        is unquoted as Python's ``http.cookies`` quotes it (Starlette's
        ``set_cookie`` writes "Hello, cookies!" as ``"Hello\\054 cookies!"``);
        a stray quote stays as it is.
        """
        if self._cookies is None:
            self._cookies = {}
            # HTTP/2 may split the header into several fields.
            for piece in "; ".join(self.headers.getlist("cookie")).split(";"):
                name, equals, value = piece.partition("=")
                if not equals:
                    name, value = "", name
                name, value = name.strip(), value.strip()
                if name or value:
                    self._cookies[name] = _unquote_cookie(value)
        return self._cookies

    @property
    def state(self) -> State:
        """Attributes for this request, shared with middleware (``scope["state"]``)."""
        return State(self.scope.setdefault("state", {}))

    @property
    def client(self) -> Address | None:
        """The client's address, ``request.client.host`` and ``.port``, when the server knows it."""
        client = self.scope.get("client")
        return Address(*client) if client else None

    @property
    def query_params(self) -> QueryParams:
        """Parsed on first use; 414 when too long, 400 when not UTF-8."""
        if self._query is None:
            raw: bytes = self.scope.get("query_string", b"")
            if len(raw) > MAX_QUERY_SIZE:
                raise HTTPException(414, "Query string too long")
            # Raw bytes are not allowed in a URI; UTF-8 at most.
            self._query = QueryParams(_urlencoded(raw, "Invalid query string"))
        return self._query

    async def receive(self) -> Message:
        """The ``receive`` to hand the response: it returns ``http.disconnect``
        when the client goes, and every time after that (some servers send it
        once; the response must see it even after the endpoint did).

        It never returns the body: a piece of the body that comes while it
        waits is kept for :meth:`stream` and :meth:`body`. So the response's
        disconnect watcher and a generator reading the upload as it streams
        can both wait at once and take nothing from each other. (Starlette's
        streaming response waits on the server's ``receive`` itself, under a
        server older than ASGI 2.4, and the request loses the pieces it takes.)
        """
        while not self._disconnected:
            await self._take()
        return {"type": "http.disconnect"}

    async def _take(self) -> None:
        """Take one message from the server and :meth:`_keep` it.

        The server's ``receive()`` has one reader at a time: two waiting at
        once could each get half of what arrives. A caller that finds another
        reading waits for it, and then returns to look at what it took.
        """
        taken = self._taken
        async with self._reading:
            if self._taken == taken:
                self._keep(await self._receive())

    def _keep(self, message: Message) -> None:
        """Note a message taken from the server: the disconnect, or a piece of
        the body, held until :meth:`stream` reads it. What is held counts
        against :attr:`max_body_size` as what is read does: past it, the body
        is dropped and reading it is a 413."""
        self._taken += 1
        if message["type"] == "http.disconnect":
            self._disconnected = True
            return
        self._received += len(message.get("body", b""))
        if self._received > self.max_body_size:
            self._too_large = True
            self._unread.clear()
        elif not self._too_large:
            self._unread.append(message)

    async def is_disconnected(self) -> bool:
        """Whether the client has gone, without waiting: a message the server
        has ready is looked at (a piece of the body is kept for :meth:`stream`,
        within :attr:`max_body_size`), none is awaited."""
        if self._disconnected:
            return True
        if self._reading.locked():
            # Another reader (the response's watcher, say) is waiting on the
            # server and will note the disconnect: give it its turn.
            await asyncio.sleep(0)
            return self._disconnected
        async with self._reading:
            poll = asyncio.ensure_future(self._receive())
            await asyncio.sleep(0)  # one turn of the loop: a ready message arrives now
            if poll.done():
                self._keep(poll.result())
            else:
                poll.cancel()
        return self._disconnected

    def check_declared_size(self) -> None:
        """413 now if the ``Content-Length`` is beyond :attr:`max_body_size`.

        The router calls it before the endpoint runs, so that an upload too
        large to read is refused before any response starts, even when only
        the stream's generator reads it. (A body sent without a length can
        only be refused when the limit is reached, as it is read.)
        """
        declared = self.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared[:20]) > self.max_body_size:
            raise HTTPException(413, "Request body too large")

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk as the client sends it; 413 past :attr:`max_body_size`.

        After :meth:`body`, the whole body at once. The stream can be read
        only once: :meth:`body` after it is a :class:`RuntimeError`.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._streamed:
            raise RuntimeError("the request body has already been streamed")
        self._streamed = True
        self.check_declared_size()
        more_body = True
        while more_body:
            if self._too_large:
                raise HTTPException(413, "Request body too large")
            if not self._unread:
                if self._disconnected:
                    raise ClientDisconnect
                await self._take()
                continue
            message = self._unread.popleft()
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            more_body = message.get("more_body", False)

    async def body(self) -> bytes:
        """The whole body, at most :attr:`max_body_size` bytes (413 beyond)."""
        if self._body is None:
            self._body = b"".join([chunk async for chunk in self.stream()])
        return self._body

    async def json(self) -> Any:
        """The body parsed as JSON (400 when it is not)."""
        try:
            return json.loads(await self.body())
        except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting too
            raise HTTPException(400, "Request body is not valid JSON") from None

    def form(self) -> FormReading:
        """The body as an HTML form: ``application/x-www-form-urlencoded`` only.

        As in Starlette, ``await request.form()`` gives the :class:`FormData`,
        and so does ``async with request.form() as form:``.
        ``multipart/form-data`` (file uploads) needs a parser the standard
        library lacks, so it is a 415 that says so, as is any other type: read
        such a body with :meth:`stream` and a parser of your choice. 400 when
        the form is not UTF-8, or has more than 1000 fields.
        """
        return FormReading(self)

    async def _read_form(self) -> FormData:
        media_type = self.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            raise HTTPException(
                415,
                f"form() reads application/x-www-form-urlencoded, not {media_type or 'no type'}: "
                "read other bodies with request.stream()",
            )
        return FormData(_urlencoded(await self.body(), "Invalid form body"))

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """The whole URL of the route named ``name``, root path included.

        As in Starlette, the outermost router answers (``scope["router"]``),
        so from inside a mounted app the name is found among every route of
        the whole site; an unknown one is a
        :class:`~asgi_stream.routing.NoMatchFound` (a bug in the caller, so a
        500).
        """
        router = self.scope.get("router") or self.scope.get("app")
        if router is None or not hasattr(router, "url_path_for"):
            raise RuntimeError("url_for() needs a router: serve the app with asgi_stream.Router")
        return URL(str(router.url_path_for(name, **path_params).make_absolute_url(self.base_url)))


class SharedReceive:
    """A ``receive`` that a reader of the body and a disconnect watch may call at once.

    Calling it gives the server's messages in order, as the server's own
    ``receive()`` does: each piece of the body once, to whoever asks next,
    then ``http.disconnect``. :meth:`wait_for_disconnect` waits for
    ``http.disconnect`` alone and takes nothing from that reader: a streaming
    response's watch finds it with :func:`disconnect_only`. Pieces the watch
    took from the server before the reader asked are kept for the reader.
    """

    __slots__ = ("request",)

    def __init__(self, request: Request) -> None:
        self.request = request

    async def __call__(self) -> Message:
        request = self.request
        while not request._unread:
            if request._too_large:
                raise HTTPException(413, "Request body too large")
            if request._disconnected:
                return {"type": "http.disconnect"}
            await request._take()
        return request._unread.popleft()

    def wait_for_disconnect(self) -> Awaitable[Message]:
        return self.request.receive()


def disconnect_only(receive: Receive) -> Receive:
    """The ``receive`` to wait on for ``http.disconnect`` alone.

    A ``SharedReceive`` has one that leaves the body to the app; any
    other ``receive`` is returned as it is (our router already gives a
    response :meth:`Request.receive`, which never returns the body).
    """
    return receive.wait_for_disconnect if isinstance(receive, SharedReceive) else receive


class KeepRequestBody:
    """ASGI middleware: the request body is kept for whoever reads the request.

    A streaming response waits on ``receive()`` for the client to leave while
    its generator runs. A generator that reads the upload itself
    (``request.stream()`` of a FastAPI or Starlette request) calls the same
    ``receive()``, and each message goes to one of the two: the watch would
    take pieces of the body. Our :class:`~asgi_stream.Router` shares one
    reader between them; wrap any other app in this middleware to do the same
    there::

        app.add_middleware(KeepRequestBody)  # FastAPI, Starlette
        app = KeepRequestBody(app)           # any ASGI app

    The app is given a ``SharedReceive``. A body whose ``Content-Length`` is
    beyond ``max_body_size`` (the limit of :class:`Request` by default: raise
    it for uploads) is refused with a JSON 413 before the app runs; one sent
    without a length is refused when it reaches the limit, as it is read.
    Only our responses' watch leaves the body alone: another disconnect
    listener that reads ``receive()`` itself (Starlette's own
    ``StreamingResponse`` has one, under ASGI 2.3) still takes what it gets.
    Lifespan and websocket scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, max_body_size: int = MAX_BODY_SIZE) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, max_body_size=self.max_body_size)
        try:
            request.check_declared_size()  # refused before the app runs, as JSON
        except HTTPException as exc:
            # Written out here: the responses import this module, not the reverse.
            body = json.dumps({"detail": exc.detail}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send(
                {"type": "http.response.start", "status": exc.status_code, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await self.app(scope, SharedReceive(request), send)


class FormReading:
    """What :meth:`Request.form` returns: awaited, or entered with ``async with``,
    it reads the form. Starlette's ``async with`` closes the form's uploaded
    files on the way out; a form here has none (urlencoded only), so leaving
    the block has nothing to close."""

    __slots__ = ("_request",)

    def __init__(self, request: Request) -> None:
        self._request = request

    def __await__(self) -> Generator[Any, None, FormData]:
        return self._request._read_form().__await__()

    async def __aenter__(self) -> FormData:
        return await self._request._read_form()

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_COOKIE_ESCAPE = re.compile(r"\\(?:([0-3][0-7]{2})|(.))")


def _unquote_cookie(value: str) -> str:
    """A cookie value without the double quotes and backslash escapes that
    ``http.cookies`` puts around a value with a space, comma or semicolon
    (``\\054`` is a comma, in octal); any other value as it is."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    return _COOKIE_ESCAPE.sub(
        lambda escape: chr(int(escape[1], 8)) if escape[1] else escape[2], value[1:-1]
    )


def _urlencoded(raw: bytes, error: str) -> list[tuple[str, str]]:
    """The pairs of ``a=1&b=2`` (UTF-8, at most 1,000); a 400 saying ``error`` if it is not."""
    try:
        return parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=1000,
        )
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, error) from None
