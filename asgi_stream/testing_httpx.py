"""An httpx transport that streams from an app in-process: for endless streams in tests.

**Theory of operation.** An httpx client sends each request through its
transport's one method, ``handle_async_request`` (``handle_request`` for the
sync client), and reads the body from the stream of the response it returns.
:class:`StreamingTransport` answers that method with
:func:`asgi_stream.testing.stream`: it returns as soon as the app has sent its
headers, and the response's stream reads the body piece by piece as the
client asks for it; closing the response is the client leaving. So
``client.stream()``, ``aiter_lines()`` and httpx-sse's ``aconnect_sse`` work
on a stream that never ends::

    async with httpx.AsyncClient(transport=StreamingTransport(app)) as client:
        async with aconnect_sse(client, "GET", "http://testserver/events") as source:
            ...

=====================  =====================================================
Client                 Where the app runs
=====================  =====================================================
``httpx.AsyncClient``  In the test's event loop, in a task of its own.
``httpx.Client``       In an event loop on a thread of the transport's own,
                       started at the first request and stopped (its tasks
                       cancelled, the thread joined) when the client closes.
=====================  =====================================================

Either way the app runs in a context of its own, as on a server: a
contextvar the test sets is not seen by the app, nor the other way round.
The client's read timeout (``httpx.Timeout(read=...)``) bounds each wait for
a piece of body, and a timeout is :class:`httpx.ReadTimeout`, as on a
socket. What the app raises reaches the test as itself: before the start
from the request, after it from the read that meets it.

The library imports nothing outside the standard library, and this module
imports httpx only when :class:`StreamingTransport` is first asked for
(``from asgi_stream.testing_httpx import StreamingTransport`` runs the
module's ``__getattr__``, PEP 562, which makes the class then, once), as
:mod:`asgi_stream.starlette` does with Starlette: the class is
``Transport``'s logic on httpx's two transport bases, so that it is an
``httpx.AsyncBaseTransport`` and an ``httpx.BaseTransport`` both, as httpx's
own ``MockTransport`` is.

The name: ``StreamingTransport``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from . import testing
from .types import ASGIApp

if TYPE_CHECKING:
    import httpx

__all__ = ["StreamingTransport"]

T = TypeVar("T")
#: What a wait on the app's thread may take beyond the bounds the response keeps itself.
MARGIN = 5.0


class LoopThread:
    """An event loop running on a daemon thread of its own, for the sync client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="asgi-stream StreamingTransport", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the loop; its result, or its exception, here."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self, timeout: float) -> None:
        """Cancel what still runs (a response never closed), stop the loop, join the thread."""
        self.run(_cancel_all(timeout), timeout + MARGIN)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self.loop.close()


async def _cancel_all(timeout: float) -> None:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    # The threads of run_in_executor(None, ...), which an app's sync code may have started.
    await asyncio.wait_for(loop.shutdown_default_executor(), timeout)


class Transport:
    """Send each request to an ASGI app in-process, and stream its response back.

    ``app`` is any ASGI app. ``read_timeout`` bounds each wait for the app
    when the client's own timeout says none; ``close_timeout`` bounds the wait
    for the app to return once the client has left
    (:class:`~asgi_stream.testing.AppStillRunning`). ``client`` is the
    client's address in the scope, ``root_path`` the scope's, and ``state``
    the lifespan's (from :func:`asgi_stream.testing.lifespan`), copied into
    each request's scope as a server does.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        read_timeout: float = 5.0,
        close_timeout: float = 5.0,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        root_path: str = "",
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.close_timeout = close_timeout
        self.client = client
        self.root_path = root_path
        self.state = state
        self._thread: LoopThread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StreamingTransport({self.app!r})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to the app; its response, as soon as the app has started it."""
        response = await self._open(request)
        return _response(request, response, _classes().async_body(response))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """As :meth:`handle_async_request`, for ``httpx.Client``: the app runs on a thread."""
        with self._lock:
            if self._thread is None:
                self._thread = LoopThread()
            thread = self._thread
        bound = self._bound(request)
        response = thread.run(self._open(request), bound)
        return _response(request, response, _classes().sync_body(response, thread, bound))

    def close(self) -> None:
        """Stop the app's thread, if the sync client started one."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.close(self.close_timeout)

    def _read_timeout(self, request: httpx.Request) -> float:
        read: float | None = request.extensions.get("timeout", {}).get("read")
        return self.read_timeout if read is None else read

    def _bound(self, request: httpx.Request) -> float:
        """How long one step on the app's thread may take: the response's own bounds, and more."""
        return self._read_timeout(request) + 2 * self.close_timeout + MARGIN

    async def _open(self, request: httpx.Request) -> testing.StreamedResponse:
        import httpx  # here: the library imports httpx only when a test uses it

        # The request's body as the app will receive it: the whole of it when httpx
        # has it in memory, else piece by piece from its (async or sync) stream.
        content: testing.Body = request.stream
        if isinstance(request.stream, httpx.ByteStream):
            content = request.read()
        url = request.url
        host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
        scope: dict[str, Any] = {
            "scheme": url.scheme,
            "server": (host, port),
            "client": self.client,
            "root_path": self.root_path,
        }
        if self.state is not None:
            scope["state"] = dict(self.state)
        try:
            response = testing.stream(
                self.app,
                request.method,
                url.raw_path.decode("ascii"),
                headers=request.headers.raw,
                body=content,
                scope=scope,
                read_timeout=self._read_timeout(request),
                close_timeout=self.close_timeout,
            )
            return await response.start()
        except testing.ReadTimeout as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc


def _response(
    request: httpx.Request, response: testing.StreamedResponse, body: Any
) -> httpx.Response:
    import httpx

    return httpx.Response(
        response.status,
        headers=response.headers.raw,
        stream=body,
        request=request,
        extensions={"http_version": b"HTTP/1.1"},
    )


class AsyncBody:
    """The body of a response to ``httpx.AsyncClient``: each read is the app's next piece."""

    def __init__(self, response: testing.StreamedResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncBody:
        return self

    async def __anext__(self) -> bytes:
        import httpx

        try:
            chunk = await self._response.read_chunk()
        except testing.ReadTimeout as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class SyncBody:
    """The body of a response to ``httpx.Client``: each read runs on the app's thread."""

    def __init__(
        self, response: testing.StreamedResponse, thread: LoopThread, bound: float
    ) -> None:
        self._response = response
        self._thread = thread
        self._bound = bound  # how long one step on the thread may take

    def __iter__(self) -> SyncBody:
        return self

    def __next__(self) -> bytes:
        import httpx

        try:
            chunk = self._thread.run(self._response.read_chunk(), self._bound)
        except testing.ReadTimeout as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        if not chunk:
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._thread.run(self._response.aclose(), self._bound)


class _Classes:
    """The httpx twins of this module's classes, made once, when first needed."""

    def __init__(self) -> None:
        import httpx

        def twin(cls: type[Any], *bases: type[Any]) -> type[Any]:
            attributes = {"__module__": __name__, "__qualname__": cls.__qualname__}
            return type(cls.__name__, (cls, *bases), {**attributes, "__doc__": cls.__doc__})

        self.transport = twin(Transport, httpx.AsyncBaseTransport, httpx.BaseTransport)
        self.transport.__name__ = self.transport.__qualname__ = "StreamingTransport"
        self.async_body = twin(AsyncBody, httpx.AsyncByteStream)
        self.sync_body = twin(SyncBody, httpx.SyncByteStream)


@functools.cache
def _classes() -> _Classes:
    return _Classes()


if TYPE_CHECKING:

    class StreamingTransport(Transport, httpx.AsyncBaseTransport, httpx.BaseTransport):
        """For a type checker: :class:`Transport` on httpx's transport bases."""

else:

    def __getattr__(name: str) -> Any:
        if name != "StreamingTransport":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return _classes().transport
