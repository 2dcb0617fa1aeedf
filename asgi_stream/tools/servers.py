"""Running an app under uvicorn or hypercorn, with a graceful shutdown.

Theory of operation
===================

``asgi-stream serve`` starts a real server through its public Python API, in
three steps:

1. :func:`bind_socket` binds the listening socket, once, in the first
   process. With ``--workers N`` the socket is handed to N worker processes
   (:mod:`asgi_stream.tools.workers`), which all accept connections from it; the
   kernel shares them out.
2. :func:`run_worker` imports the app in the process that serves it (so each
   worker builds its own, from the environment), wraps it in
   :class:`~asgi_stream.shutdown.GracefulShutdown`, and runs the chosen server
   on the socket until SIGTERM or SIGINT arrives.
3. The signal starts the shutdown, and that is where the servers need help
   (see :mod:`asgi_stream.shutdown` for why). Each server offers a public
   place to hook it, and we call ``GracefulShutdown.shut_down()`` there, just
   before the server closes its listener and waits for its connections:

   * uvicorn: :class:`GracefulUvicorn` is a ``uvicorn.Server`` whose
     ``shutdown()`` ends the streams first, then does what uvicorn's does.
   * hypercorn: ``hypercorn.asyncio.serve()`` takes a ``shutdown_trigger``, a
     coroutine function whose return starts the shutdown. Ours waits for the
     signal, ends the streams, waits until they have ended, and returns.
     Until then the listener stays open, and new requests are answered 503.

   Each server's own timeout (uvicorn's ``timeout_graceful_shutdown``,
   hypercorn's ``graceful_timeout``) is set one second past the grace period,
   as a backstop that a well-behaved app never reaches.

Both servers then exit with status 0. (uvicorn alone raises the signal again
once it has shut down, so that the process dies of it: status 143 in a shell
for SIGTERM. A process manager that sent SIGTERM expects a clean exit.)

HTTP/2: hypercorn speaks it on every connection. Over TLS (``certfile`` and
``keyfile``) the client picks ``h2`` by ALPN, as browsers do; without TLS a
client must speak HTTP/2 from the first byte ("prior knowledge": ``curl
--http2-prior-knowledge``, or ``httpx.Client(http1=False, http2=True)``),
or upgrade with ``Upgrade: h2c``.
"""

from __future__ import annotations

import asyncio
import contextlib
import pkgutil
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import hypercorn.asyncio
import hypercorn.config
import hypercorn.typing
import uvicorn

from ..shutdown import GracefulShutdown

__all__ = [
    "STOP_SIGNALS",
    "GracefulUvicorn",
    "ServeOptions",
    "bind_socket",
    "run_worker",
]

#: The signals that start a graceful shutdown (SIGINT is Ctrl-C).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_BACKSTOP = 1.0  # seconds past the grace period before the server's own timeout fires


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: everything a worker process needs, in a picklable form.

    The app's own settings do not travel here: they are environment variables
    (``ASGI_STREAM_TICK`` and friends), which worker processes inherit.
    """

    app: str = "asgi_stream.catalogue:app"
    server: str = "uvicorn"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    grace: float = 3.0
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``, ready to be shared with worker processes.

    It does not listen yet: the server calls ``listen()`` when it is ready to
    accept, so until then a client is refused rather than left waiting.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_worker(options: ServeOptions, sock: socket.socket) -> None:
    """Serve ``options.app`` on ``sock`` in this process until SIGTERM or SIGINT."""
    app = GracefulShutdown(pkgutil.resolve_name(options.app), options.grace)
    if options.server == "uvicorn":
        _run_uvicorn(app, options, sock)
    elif options.server == "hypercorn":
        asyncio.run(_serve_hypercorn(app, options, sock))
    else:
        raise ValueError(f"unknown server {options.server!r}: uvicorn or hypercorn")


class GracefulUvicorn(uvicorn.Server):
    """A ``uvicorn.Server`` that ends open streams when it shuts down, and exits 0."""

    def __init__(self, config: uvicorn.Config, graceful: GracefulShutdown) -> None:
        super().__init__(config)
        self.graceful = graceful

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.graceful.shut_down()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own version re-raises the signal after the shutdown; this
        # one only restores the previous handlers.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _run_uvicorn(app: GracefulShutdown, options: ServeOptions, sock: socket.socket) -> None:
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        # Typed int, but only ever a timeout for asyncio.wait_for(): a float works.
        timeout_graceful_shutdown=options.grace + _BACKSTOP,  # type: ignore[arg-type]
        ssl_certfile=options.certfile,
        ssl_keyfile=options.keyfile,
    )
    GracefulUvicorn(config, app).run(sockets=[sock])


async def _serve_hypercorn(
    app: GracefulShutdown, options: ServeOptions, sock: socket.socket
) -> None:
    config = hypercorn.config.Config()
    # The socket's descriptor now belongs to hypercorn, which closes it.
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = "-"  # uvicorn logs each request by default; so do we
    config.graceful_timeout = options.grace + _BACKSTOP
    config.certfile = options.certfile
    config.keyfile = options.keyfile

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        app.shut_down()
        # Return only when the streams have ended. During a shutdown hypercorn
        # closes an HTTP/2 connection as soon as its last stream closes, and
        # its GOAWAY frame can overtake that stream's END_STREAM, which the
        # client then reports as an error.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(app.drained(), options.grace + _BACKSTOP)

    # hypercorn types each scope and message as a TypedDict, our ASGI types as
    # plain mappings (asgi_stream.types); at run time both are the same dicts.
    framework = cast(hypercorn.typing.ASGIFramework, app)
    await hypercorn.asyncio.serve(framework, config, shutdown_trigger=shutdown_trigger, mode="asgi")
