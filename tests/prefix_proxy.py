"""A reverse proxy that serves an app at a prefix, the way nginx's ``proxy_pass`` does.

``location /api/ { proxy_pass http://app/; }`` takes ``/api`` off the request
target before passing the request on, and tells the app about the prefix
through its configuration (``--root-path /api``). uvicorn is built for that:
it puts the root path back in front of ``scope["path"]``. :func:`prefix_proxy`
does the same for tests, in a thread of its own (and, like nginx, redirects
``/api`` to ``/api/``): one request per connection
(it asks the app to close the connection after the response, so every request
line passes through here to be rewritten), bytes copied both ways untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from asgi_stream.tools.process import HOST


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    with contextlib.suppress(ConnectionError, RuntimeError):
        writer.write_eof()


async def _forward(
    prefix: bytes, upstream: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, _, fields = head.partition(b"\r\n")
        method, target, version = request_line.split(b" ")
        if target == prefix:  # as nginx does for `location /api/`
            writer.write(b"HTTP/1.1 301 Moved\r\nLocation: %s/\r\n\r\n" % prefix)
            return
        if not target.startswith(prefix + b"/"):
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        target = target[len(prefix) :]
        kept = [f for f in fields.split(b"\r\n") if f and not f.lower().startswith(b"connection:")]
        head = b"\r\n".join([b" ".join([method, target, version]), *kept, b"Connection: close"])
        app_reader, app_writer = await asyncio.open_connection(HOST, upstream)
        app_writer.write(head + b"\r\n\r\n")
        upload = asyncio.ensure_future(_pipe(reader, app_writer))
        await _pipe(app_reader, writer)  # until the app closes the connection
        upload.cancel()
        app_writer.close()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


@contextlib.contextmanager
def prefix_proxy(prefix: str, upstream: int) -> Iterator[str]:
    """Serve ``http://HOST:upstream`` at ``prefix`` until the block ends; the proxy's URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    servers: list[asyncio.Server] = []

    async def start() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _forward(prefix.encode(), upstream, reader, writer)

        servers.append(await asyncio.start_server(handle, HOST, 0))
        ready.set()

    thread = threading.Thread(target=loop.run_forever, name="prefix-proxy", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(5), "the proxy did not start"
    port = servers[0].sockets[0].getsockname()[1]

    async def stop() -> None:
        servers[0].close()
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        yield f"http://{HOST}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
