"""A throwaway redis-server on 127.0.0.1 for the event log tests.

No persistence (``--save ''``, ``--appendonly no``), a free port, and a bounded
wait for it to listen; stopped when the block ends. scripts/test.sh installs
redis-server where it is missing, so the tests that use it are never skipped.
The ``redis_url`` fixture of ``tests/conftest.py`` runs one per test module.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from asgi_stream.tools.process import serve


@contextlib.contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """Run redis-server until the block ends; yields its ``redis://`` URL."""
    executable = shutil.which("redis-server")
    assert executable, "redis-server is missing: bash scripts/test.sh installs it"
    command = [executable, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(tmp_path)]
    log_path = tmp_path / "redis.log"
    with serve(command, log_path, start_timeout=10.0, stop_timeout=5.0) as server:
        yield f"redis://127.0.0.1:{server.port}/0"
