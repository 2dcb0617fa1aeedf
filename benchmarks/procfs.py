"""What the kernel knows about the server process: CPU time and resident memory.

CPU time comes from ``/proc/<pid>/task/<tid>/schedstat``, whose first field is
the time the thread has run, in nanoseconds, summed over every thread (uvicorn
and hypercorn run the event loop in the main thread, but a thread pool may
exist). ``/proc/<pid>/stat`` counts in clock ticks of 10 ms, too coarse for a
stream that lasts half a second. Memory is :func:`asgi_stream.tools.process.rss_kib`,
the soak's measure too (``/proc/<pid>/statm``, the same count as ``VmRSS``).
"""

from __future__ import annotations

import os
import resource
import time

from asgi_stream.tools.process import rss_kib

__all__ = ["cpu_seconds", "rss_kib", "wait_until_quiet"]


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by every thread of ``pid``."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended between listing and reading
    return total / 1e9


def wait_until_quiet(pids: list[int], timeout: float = 30.0, busy: float = 0.02) -> None:
    """Wait until none of ``pids`` uses more than ``busy`` of a core (bounded by ``timeout``).

    A server that never yields can still be running abandoned streams after
    their clients left; the next measurement must not pay for that.
    """
    deadline = time.monotonic() + timeout
    before = [cpu_seconds(pid) for pid in pids]
    while time.monotonic() < deadline:
        time.sleep(0.1)
        after = [cpu_seconds(pid) for pid in pids]
        if all(b - a < busy * 0.1 for a, b in zip(before, after, strict=True)):
            return
        before = after


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (not idle, not waiting), all CPUs."""
    with open("/proc/stat") as stat:
        fields = [int(field) for field in stat.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU time of this process and of its children that have ended (servers, clients)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
