"""Several worker processes on one listening socket, and their supervisor.

Theory of operation
===================

One Python process runs one event loop on one core. To use more cores, a
server runs the same app in several processes that accept connections from a
single listening socket: the kernel gives each new connection to one of them.
The first process binds the socket and starts the workers (with the
``spawn`` method: each is a fresh interpreter that imports the app itself),
handing each a duplicate of the socket. Then it closes its own copy and
*supervises*: it sleeps until a signal arrives or a worker exits.

* SIGTERM or SIGINT: the supervisor sends SIGTERM to every worker, and each
  one shuts down gracefully by itself (:mod:`asgi_stream.tools.servers`). The
  supervisor waits for them all, up to the grace period plus a margin, kills
  any that is still there, and exits 0 if every worker did. (Ctrl-C in a
  terminal sends SIGINT to the workers too; a second signal changes nothing,
  since each worker's shutdown is already bounded by the grace period.)
* A worker that exits by itself, before any signal, is a failure (a crash, an
  app that cannot be imported). The supervisor stops the others and exits 1,
  so that whatever started it, a process manager or a person, finds out,
  instead of being served by fewer and fewer workers.

uvicorn and hypercorn each have a supervisor of their own, but each is tied
to how its server loads the app; this one serves both.

The supervisor must wake for a signal *or* a worker's exit, whichever comes
first. ``multiprocessing.connection.wait()`` waits on the workers' sentinels;
``signal.set_wakeup_fd()`` makes any signal also write a byte to a socket
that the same ``wait()`` watches.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import wait

from .servers import STOP_SIGNALS, ServeOptions, run_worker

__all__ = ["supervise"]

_MARGIN = 5.0  # seconds past the grace period before a worker is killed


def supervise(options: ServeOptions, sock: socket.socket) -> int:
    """Serve with ``options.workers`` processes on ``sock`` until SIGTERM or SIGINT.

    Closes ``sock`` here once the workers have their copies. Returns the exit
    status for the supervisor: 0 when every worker exited 0.
    """
    received: list[int] = []
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    previous_wakeup = signal.set_wakeup_fd(wake_write.fileno())
    previous = {
        sig: signal.signal(sig, lambda sig, _: received.append(sig)) for sig in STOP_SIGNALS
    }
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=run_worker, args=(options, sock), name=f"asgi-stream worker {number}"
        )
        for number in range(1, options.workers + 1)
    ]
    try:
        for worker in workers:
            worker.start()
        # Once the workers stop listening, no copy may keep the socket open, or
        # new clients would wait in its backlog instead of being refused.
        sock.close()
        while not received and all(worker.is_alive() for worker in workers):
            wait([wake_read, *(worker.sentinel for worker in workers)])
            _drain(wake_read)
        if received:
            return _stop(workers, options.grace + _MARGIN)
        dead = next(worker for worker in workers if not worker.is_alive())
        print(f"asgi-stream: {dead.name} exited with status {dead.exitcode}", file=sys.stderr)
        _stop(workers, options.grace + _MARGIN)
        return 1
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        wake_read.close()
        wake_write.close()


def _drain(sock: socket.socket) -> None:
    """Empty the wake-up socket, so that the next ``wait()`` sleeps again."""
    try:
        while sock.recv(512):
            pass
    except BlockingIOError:
        pass


def _stop(workers: Sequence[multiprocessing.process.BaseProcess], timeout: float) -> int:
    """SIGTERM every worker, wait for all; 0 if each exited 0 in time, else 1."""
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            worker.terminate()  # SIGTERM on POSIX
    deadline = time.monotonic() + timeout
    status = 0
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.exitcode is None:
            print(f"asgi-stream: killing {worker.name}", file=sys.stderr, flush=True)
            worker.kill()
            worker.join()
        if worker.exitcode != 0:
            status = 1
    return status
