"""Real servers for end-to-end tests: :func:`serve` a Python module on 127.0.0.1.

The work is done by :mod:`asgi_stream.tools.process`, which the tools and the
benchmarks use too; this module only adds what every test wants: the command
runs under this interpreter, from the repository's root (so ``tests.*`` and
``examples.*`` import strings work), and logs into the test's ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from asgi_stream.tools import process
from asgi_stream.tools.process import ServerProcess, free_port

__all__ = ["ROOT", "ServerProcess", "free_port", "serve"]

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serve(
    argv: Sequence[str],
    tmp_path: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    host: str = process.HOST,
) -> Iterator[ServerProcess]:
    """Run ``python argv... --port PORT`` until the block ends.

    ``argv`` starts after the interpreter, e.g. ``["-m", "uvicorn", "app:app",
    "--host", "127.0.0.1"]``; ``--port`` is appended, unless an argument
    contains ``{port}``, which is then replaced by the port (hypercorn has
    no ``--port``: ``["-m", "hypercorn", "app:app", "--bind", "127.0.0.1:{port}"]``).
    """
    port = port or free_port()
    log_path = tmp_path / f"server-{port}.log"
    command = [sys.executable, *argv]
    with process.serve(
        command, log_path, port=port, cwd=ROOT, env=env, start_timeout=20.0, host=host
    ) as server:
        yield server
