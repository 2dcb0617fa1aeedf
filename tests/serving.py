"""Real servers for end-to-end tests: start a process on 127.0.0.1, wait, stop.

Every wait is bounded, so a server that fails to start fails the test with its
own output instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit code (kill after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


@contextlib.contextmanager
def serve(
    argv: Sequence[str], tmp_path: Path, port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """Run ``python argv... --port PORT`` until the block ends.

    ``argv`` starts after the interpreter, e.g. ``["-m", "uvicorn", "app:app",
    "--host", "127.0.0.1"]``; ``--port`` is appended, unless an argument
    contains ``{port}``, which is then replaced by the port (hypercorn has
    no ``--port``: ``["-m", "hypercorn", "app:app", "--bind", "127.0.0.1:{port}"]``).
    """
    port = port or free_port()
    if any("{port}" in arg for arg in argv):
        argv = [arg.replace("{port}", str(port)) for arg in argv]
    else:
        argv = [*argv, "--port", str(port)]
    log_path = tmp_path / f"server-{port}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    server = ServerProcess(process, port, log_path)
    try:
        try:
            wait_for_port(port, process)
        except Exception as exc:
            server.stop(signal.SIGKILL)
            raise RuntimeError(f"{exc}\n--- server output ---\n{server.output()}") from None
        yield server
    finally:
        server.stop()
        log.close()
