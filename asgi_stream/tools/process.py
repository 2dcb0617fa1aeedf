"""Start a server in a process of its own, wait until it listens, stop it: :func:`serve`.

Theory of operation
===================

Every tool that measures a real server (``asgi-stream compare``, ``asgi-stream
soak``, the benchmarks) and every end-to-end test does the same four things,
so they all do them here:

1. **A free port.** :func:`free_port` binds a socket to port 0 of 127.0.0.1,
   which makes the kernel choose a port nobody uses, and closes it again. The
   server is then told to listen there. (Another process could take the port
   in between; on a test machine that does not happen in practice, and the
   server would fail loudly if it did.)
2. **Start the command**, its output (stdout and stderr together) going to a
   log file rather than a pipe: a pipe nobody reads fills up, and then the
   server blocks on its next log line. ``PYTHONUNBUFFERED=1`` makes a Python
   server write each line as it happens, so the log can be read while the
   server runs (:meth:`ServerProcess.output`).
3. **Wait until it listens**, by trying to connect every 50 ms. The wait is
   bounded, and it stops early when the process exits: a server that cannot
   start (a bad import string, a port in use) fails at once with
   :class:`ServerDidNotStart`, whose message holds the server's own log.
4. **Stop it** when the ``with`` block ends: a signal (SIGTERM by default,
   which uvicorn and hypercorn take as "shut down gracefully"), then SIGKILL
   when the process has not exited within a bound. Nothing is left running.

While it runs, :func:`rss_kib` and :func:`open_fds` read what a leak would
show from outside the process, in Linux's ``/proc``; :func:`raise_open_files_limit`
lets a process that holds thousands of connections open them.

The command is a whole argument list: ``[sys.executable, "-m", "asgi_stream",
"serve", ...]``, ``[sys.executable, "-m", "uvicorn", ...]`` or
``["redis-server", ...]``. ``--port PORT`` is appended to it, unless an
argument contains ``{port}``, which is then replaced by the port (hypercorn
has no ``--port`` option: ``--bind 127.0.0.1:{port}``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HOST",
    "ServerDidNotStart",
    "ServerProcess",
    "free_port",
    "open_fds",
    "raise_open_files_limit",
    "rss_kib",
    "serve",
    "wait_until_listening",
]

#: Where every server started here listens: this machine only.
HOST = "127.0.0.1"


class ServerDidNotStart(RuntimeError):
    """The server exited, or did not listen in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def raise_open_files_limit() -> None:
    """Let this process hold as many open files (sockets) as the hard limit allows.

    The soft limit is often 1,024, and a server or a client that holds
    thousands of streams needs one descriptor for each. Processes started
    afterwards inherit the raised limit.
    """
    import resource  # Unix only: imported here so that the module imports everywhere

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class ServerProcess:
    """A running server: its process, the port it listens on, the file its output goes to."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    host: str = HOST

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (``127.0.0.1`` by default), without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        """Everything the server has written so far, stdout and stderr interleaved."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit status; SIGKILL after ``timeout`` seconds.

        Stopping a process that has already exited only returns its status.
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid``, in KiB (Linux: ``/proc/PID/statm``)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def open_fds(pid: int) -> int:
    """How many file descriptors (files, sockets, pipes) process ``pid`` has open (Linux)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until_listening(
    port: int, process: subprocess.Popen[bytes], timeout: float, host: str = HOST
) -> None:
    """Return once something accepts connections on ``host:port``.

    Raises :class:`RuntimeError` when ``process`` exits first, and
    :class:`TimeoutError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


@contextlib.contextmanager
def serve(
    command: Sequence[str],
    log_path: Path,
    *,
    port: int | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 15.0,
    host: str = HOST,
) -> Iterator[ServerProcess]:
    """Run ``command`` on ``port`` (a free one by default) until the block ends.

    ``host`` is the address the command was told to listen on (another
    loopback address such as ``127.0.0.2`` plays a second machine); the wait
    connects there.

    The server's output goes to ``log_path``; ``env`` is added to this
    process's environment. Raises :class:`ServerDidNotStart` when the server
    does not listen within ``start_timeout`` seconds. At the end of the block
    it is stopped with :meth:`ServerProcess.stop` (``stop_timeout``), unless
    the block stopped it already.
    """
    port = port or free_port()
    if any("{port}" in arg for arg in command):
        command = [arg.replace("{port}", str(port)) for arg in command]
    else:
        command = [*command, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    server = ServerProcess(process, port, log_path, host)
    try:
        try:
            wait_until_listening(port, process, start_timeout, host)
        except (RuntimeError, TimeoutError) as exc:
            server.stop(signal.SIGKILL)
            raise ServerDidNotStart(f"{exc}\n--- server output ---\n{server.output()}") from None
        yield server
    finally:
        server.stop(timeout=stop_timeout)
