"""The command line: ``asgi-stream serve`` (or ``python -m asgi_stream serve``).

``serve`` runs the catalogue (or any ASGI app named with ``--app``) under
uvicorn or hypercorn, in one process or several, and shuts it down
gracefully on SIGTERM or Ctrl-C: open streams end at once and cleanly, their
generators' ``finally`` blocks run, and the process exits 0. ``--trace``
shows every ASGI message (:mod:`asgi_stream.tracer`). ``compare`` is
:mod:`asgi_stream.tools.compare`.

The options come in two kinds, and they travel differently:

* how to serve (server, address, workers, grace period, TLS) becomes a
  :class:`~asgi_stream.tools.servers.ServeOptions`, handed to each worker;
* the app's own settings (tick, log file, debug, event log) become environment variables
  (:data:`APP_SETTINGS`), which the app reads when it is built
  (:meth:`asgi_stream.catalogue.Settings.from_env`) in whichever process
  serves it. That is also how ``uvicorn asgi_stream.catalogue:app`` is
  configured, so both ways of starting the catalogue behave the same.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import compare, soak
from .traced import TRACED_APP, trace_environment

__all__ = ["APP_SETTINGS", "app_environment", "build_parser", "main"]

#: The app's settings: (option, environment variable, how to write its value).
APP_SETTINGS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("tick", "ASGI_STREAM_TICK", repr),
    ("log_file", "ASGI_STREAM_LOG_FILE", str),
    ("debug", "ASGI_STREAM_DEBUG", lambda on: "1" if on else "0"),
    ("event_log", "ASGI_STREAM_EVENT_LOG", str),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command  # set by each subparser
    return command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asgi-stream", description="HTTP streaming and Server-Sent Events on raw ASGI."
    )
    commands = parser.add_subparsers(title="commands", required=True)

    serve = commands.add_parser(
        "serve",
        help="serve the generator catalogue (or another app) under uvicorn or hypercorn",
        description="Serve an ASGI app under uvicorn or hypercorn. On SIGTERM or Ctrl-C, open "
        "streams end at once and cleanly, and the process exits 0.",
    )
    serve.set_defaults(command=_serve, parser=serve)
    serve.add_argument(
        "--app",
        default="asgi_stream.catalogue:app",
        metavar="MODULE:NAME",
        help="the ASGI app to serve (default: %(default)s)",
    )
    serve.add_argument(
        "--server", choices=("uvicorn", "hypercorn"), help="the server (default: uvicorn)"
    )
    serve.add_argument(
        "--http2",
        action="store_true",
        help="serve HTTP/2 as well as HTTP/1.1 (uses hypercorn: h2c by prior knowledge, "
        "or h2 by ALPN with --certfile/--keyfile)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to bind (default: %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=_positive(int),
        default=1,
        help="worker processes sharing the port (default: %(default)s)",
    )
    serve.add_argument(
        "--grace",
        type=_positive(float),
        default=3.0,
        metavar="SECONDS",
        help="at shutdown, how long a request may take to finish before it is cancelled; "
        "streams are ended at once (default: %(default)s)",
    )
    serve.add_argument("--certfile", help="TLS certificate (PEM), with --keyfile")
    serve.add_argument("--keyfile", help="TLS private key (PEM), with --certfile")
    serve.add_argument(
        "--trace",
        action="store_true",
        help="print every ASGI message between the server and the app (see asgi_stream/tracer.py)",
    )
    serve.add_argument(
        "--trace-json", metavar="PATH", help="append every ASGI message to PATH as JSON lines"
    )

    settings = serve.add_argument_group("catalogue settings (passed to the app as ASGI_STREAM_*)")
    settings.add_argument(
        "--tick",
        type=_positive(float),
        metavar="FACTOR",
        help="scales every delay; 1.0 is the tutorial's pace (default: 1.0)",
    )
    settings.add_argument("--log-file", metavar="PATH", help="the file /logs follows")
    settings.add_argument(
        "--event-log",
        metavar="URL",
        help="where the /jobs events live: 'memory' (one process only), redis://HOST:PORT/DB "
        "or redis+cluster://HOST:PORT,HOST:PORT, shared by every worker and host "
        "(default: memory)",
    )
    settings.add_argument(
        "--debug",
        action="store_true",
        default=None,
        help="let /stream-robust send a traceback to the client (never in production)",
    )

    comparison = commands.add_parser(
        "compare",
        help="compare the catalogue with the tutorial's FastAPI code, on the wire",
        description="Serve the catalogue and the tutorial's FastAPI code (examples/, in a clone "
        "of the repository) under uvicorn, make the same requests to both, and show every "
        "difference; exit 1 when a difference is not one of the expected ones.",
    )
    comparison.set_defaults(command=compare.main)
    compare.add_arguments(comparison)
    soak.add_command(commands)
    return parser


def app_environment(args: argparse.Namespace) -> dict[str, str]:
    """The environment variables for the app settings given on the command line.

    A setting left out is not written, so one already in the environment holds.
    """
    return {
        variable: write(getattr(args, option))
        for option, variable, write in APP_SETTINGS
        if getattr(args, option) is not None
    }


def _serve(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    # The servers are an optional extra, so they are imported only when needed.
    try:
        from .servers import ServeOptions, bind_socket, run_worker
        from .workers import supervise
    except ModuleNotFoundError as exc:
        parser.exit(1, f"asgi-stream serve needs {exc.name}: pip install 'asgi-stream[serve]'\n")

    server = args.server or ("hypercorn" if args.http2 else "uvicorn")
    if args.http2 and server != "hypercorn":
        parser.error("HTTP/2 is served by hypercorn (uvicorn's is experimental): drop --server")
    if (args.certfile is None) != (args.keyfile is None):
        parser.error("--certfile and --keyfile go together")
    app = args.app
    if args.trace or args.trace_json:
        # Each worker process builds the traced app from the environment (asgi_stream/traced.py).
        os.environ.update(trace_environment(app, text=args.trace, json_lines=args.trace_json))
        app = TRACED_APP
    options = ServeOptions(
        app=app,
        server=server,
        host=args.host,
        port=args.port,
        workers=args.workers,
        grace=args.grace,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    os.environ.update(app_environment(args))

    try:
        sock = bind_socket(options.host, options.port)
    except OSError as exc:
        print(f"asgi-stream: cannot bind {options.url}: {exc.strerror}", file=sys.stderr)
        return 1
    print(
        f"asgi-stream: serving {options.app} with {options.server} on {options.url} "
        f"({options.workers} process{'es' if options.workers > 1 else ''}); "
        "Ctrl-C or SIGTERM stops it gracefully",
        file=sys.stderr,
        flush=True,
    )
    if options.workers == 1:
        run_worker(options, sock)
        return 0
    return supervise(options, sock)


def _port(text: str) -> int:
    """An argparse type: a TCP port number (0 lets the system choose one)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text}")
    return port


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text, which must be finite and greater than zero."""

    def convert(text: str) -> Any:
        value = kind(text)
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a finite number greater than 0: {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its error message
    return convert
