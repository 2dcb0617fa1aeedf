"""A throwaway redis-server on 127.0.0.1 for the event log tests.

No persistence (``--save ''``, ``--appendonly no``), a free port, and a bounded
wait for it to listen; stopped when the block ends. scripts/test.sh installs
redis-server where it is missing, so the tests that use it are never skipped.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.serving import ServerProcess, free_port, wait_for_port


@contextlib.contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """Run redis-server until the block ends; yields its ``redis://`` URL."""
    executable = shutil.which("redis-server")
    assert executable, "redis-server is missing: bash scripts/test.sh installs it"
    port = free_port()
    log_path = tmp_path / f"redis-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                executable,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        server = ServerProcess(process, port, log_path)
        try:
            wait_for_port(port, process, timeout=10)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.stop(timeout=5)
