"""Serve one candidate on one server, pinned to CPU 0: ``python -m benchmarks.server SERVER APP``.

``SERVER`` is one of :data:`SERVERS`; ``APP`` is an attribute of
:mod:`benchmarks.apps`, or ``module:attribute`` (``benchmarks.frozen_client:app``);
``--port`` is given last (as
:func:`asgi_stream.tools.process.serve` does); ``--cpus 0,1`` lets the server
use both cores (the idle-stream measurement does, to open 50,000 connections
faster).

The server runs in this very process, one worker, so its CPU time and
memory can be read from ``/proc/<pid>``. Pinning happens before the server
starts any thread, so every thread inherits it, and the open-file limit is
raised to the hard limit for the idle-stream measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pkgutil

from asgi_stream.tools.process import raise_open_files_limit

SERVERS = ("uvicorn-httptools", "uvicorn-h11", "hypercorn")
SERVER_CPU = 0
BACKLOG = 4096


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("server", choices=SERVERS)
    parser.add_argument("app")
    parser.add_argument("--cpus", default=str(SERVER_CPU), help="comma-separated CPU numbers")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
    raise_open_files_limit()

    if ":" in args.app:  # "module:attribute", such as benchmarks.frozen_client:app
        app = pkgutil.resolve_name(args.app)
    else:
        from . import apps

        app = getattr(apps, args.app)
    if args.server == "hypercorn":
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{args.port}"]
        config.backlog = BACKLOG
        config.accesslog = None
        config.errorlog = "-"
        config.loglevel = "WARNING"
        asyncio.run(serve(app, config))
    else:
        import uvicorn

        uvicorn.run(
            app,
            host="127.0.0.1",
            port=args.port,
            http=args.server.removeprefix("uvicorn-"),
            loop="uvloop",
            log_level="warning",
            access_log=False,
            backlog=BACKLOG,
        )


if __name__ == "__main__":
    main()
