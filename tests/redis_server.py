"""Throwaway redis-servers on 127.0.0.1 for the tests that need Redis.

:func:`redis_server` runs one with no persistence (``--save ''``,
``--appendonly no``) on a free port, with a bounded wait for it to listen,
stopped when the block ends. scripts/test.sh installs redis-server where it is
missing, so the tests that use it are never skipped. The ``redis_url`` fixture
of ``tests/conftest.py`` runs one per test module.

:func:`faulty_redis` runs one that a test can break: SIGKILL and restart it on
the same port, or SIGSTOP and SIGCONT it. It keeps an append-only file synced
at every write (``--appendfsync always``), so a restart loses nothing Redis
acknowledged, as a production Redis with AOF would; with ``persistent=False``
it has Redis's default of no append-only file (and here no snapshot either),
so a restart comes back empty.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

from asgi_stream.tools.process import ServerProcess, free_port, serve


def _command(tmp_path: Path, *options: str) -> list[str]:
    executable = shutil.which("redis-server")
    assert executable, "redis-server is missing: bash scripts/test.sh installs it"
    return [executable, "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path), *options]


@contextlib.contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """Run redis-server until the block ends; yields its ``redis://`` URL."""
    command = _command(tmp_path, "--appendonly", "no")
    with serve(command, tmp_path / "redis.log", start_timeout=10.0, stop_timeout=5.0) as server:
        yield f"redis://127.0.0.1:{server.port}/0"


class FaultyRedis:
    """A redis-server with an append-only file, that a test kills, restarts, pauses, resumes."""

    def __init__(
        self, tmp_path: Path, stack: contextlib.ExitStack, persistent: bool = True
    ) -> None:
        self.tmp_path = tmp_path
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._stack = stack
        self._starts = 0
        self.server = self._start()

    def _start(self) -> ServerProcess:
        self._starts += 1
        if self.persistent:
            command = _command(self.tmp_path, "--appendonly", "yes", "--appendfsync", "always")
        else:
            command = _command(self.tmp_path, "--appendonly", "no")
        log_path = self.tmp_path / f"redis-{self._starts}.log"
        return self._stack.enter_context(
            serve(command, log_path, port=self.port, start_timeout=10.0, stop_timeout=5.0)
        )

    def kill_and_restart(self) -> None:
        """SIGKILL the server, then start it again on the same port, from its append-only file."""
        self.server.stop(signal.SIGKILL)
        self.server = self._start()

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections, and answers nothing."""
        self.server.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self.server.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def faulty_redis(tmp_path: Path, persistent: bool = True) -> Iterator[FaultyRedis]:
    """Run a :class:`FaultyRedis` until the block ends (resumed first, if paused)."""
    with contextlib.ExitStack() as stack:
        redis = FaultyRedis(tmp_path, stack, persistent)
        try:
            yield redis
        finally:
            redis.resume()  # a stopped process would ignore the SIGTERM that ends it
