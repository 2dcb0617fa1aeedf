"""How fast a test reads a stream: ``python3 -m benchmarks.testing_clients``.

Section (h) of ``python3 -m benchmarks``, and runnable alone. One app,
:mod:`benchmarks.apps`'s ``asgi_stream_sse`` (an ``EventSourceResponse`` of
``n`` events from a generator that awaits before each), read to its end by
each way a test can read it:

``ApplicationCommunicator``
    asgiref's, driven by hand: ``receive_output()`` once per message.
``testing.stream``
    :func:`asgi_stream.testing.stream`, ``read_chunk()`` once per piece.
``transport, AsyncClient`` and ``transport, Client``
    :class:`asgi_stream.testing_httpx.StreamingTransport` under httpx's async
    and sync clients, ``iter_raw()``: the sync client's app runs on a thread.
``uvicorn + httpx``
    A real uvicorn (httptools) process on CPU 0 and httpx's ``AsyncClient``
    here, on CPU 1, over loopback TCP.

Events per second are the events counted in the body (``data: ``) over the
wall-clock time from the request to the body's end. Rounds are interleaved
and each figure is the median of its rounds, with its ratio to
``ApplicationCommunicator``. The results are written to
``benchmarks/results/testing.json`` and ``testing.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from asgiref.testing import ApplicationCommunicator

from asgi_stream.testing import http_scope, stream
from asgi_stream.testing_httpx import StreamingTransport
from asgi_stream.tools.process import ServerProcess

from . import procfs
from .apps import asgi_stream_sse
from .client import EventCounter, stream_path

RESULTS = Path(__file__).resolve().parent / "results"
CLIENT_CPU = 1
TIMEOUT = 60.0

Reader = Callable[[str], Awaitable[int]]


async def communicator(path: str) -> int:
    comm = ApplicationCommunicator(asgi_stream_sse, http_scope("GET", path))
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    counter = EventCounter()
    while True:
        message = await comm.receive_output(TIMEOUT)
        if message["type"] == "http.response.body":
            counter.feed(message.get("body", b""))
            if not message.get("more_body", False):
                break
    await comm.wait(TIMEOUT)
    return counter.count


async def core(path: str) -> int:
    counter = EventCounter()
    async with stream(asgi_stream_sse, "GET", path, read_timeout=TIMEOUT) as response:
        while chunk := await response.read_chunk():
            counter.feed(chunk)
    return counter.count


async def async_client(client: httpx.AsyncClient, url: str) -> int:
    counter = EventCounter()
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_raw():
            counter.feed(chunk)
    return counter.count


def sync_client(client: httpx.Client, url: str) -> int:
    counter = EventCounter()
    with client.stream("GET", url) as response:
        for chunk in response.iter_raw():
            counter.feed(chunk)
    return counter.count


async def measure(events: int, rounds: int, port: int) -> dict[str, Any]:
    path = stream_path(events, awaiting=True)
    timeout = httpx.Timeout(TIMEOUT)
    transport = StreamingTransport(asgi_stream_sse)
    in_process = httpx.AsyncClient(transport=transport, timeout=timeout)
    threaded = httpx.Client(transport=StreamingTransport(asgi_stream_sse), timeout=timeout)
    real = httpx.AsyncClient(timeout=timeout)
    readers: dict[str, Reader] = {
        "ApplicationCommunicator": communicator,
        "testing.stream": core,
        "transport, AsyncClient": lambda p: async_client(in_process, f"http://test{p}"),
        "transport, Client": lambda p: asyncio.to_thread(sync_client, threaded, f"http://test{p}"),
        "uvicorn + httpx": lambda p: async_client(real, f"http://127.0.0.1:{port}{p}"),
    }
    rates: dict[str, list[float]] = {name: [] for name in readers}
    async with in_process, real:
        with threaded:
            for read in readers.values():  # warm up
                await read(stream_path(1000, awaiting=True))
            for _ in range(rounds):
                for name, read in readers.items():
                    started = time.perf_counter()
                    counted = await read(path)
                    elapsed = time.perf_counter() - started
                    if counted != events:
                        raise RuntimeError(f"{name}: {counted} events of {events}")
                    rates[name].append(events / elapsed)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians["ApplicationCommunicator"]
    return {
        name: {"events_per_second": value, "ratio_to_communicator": value / base}
        for name, value in medians.items()
    }


def run(events: int, rounds: int, output: Path, command: str) -> dict[str, Any]:
    """Measure, write ``testing.json`` and ``testing.md`` under ``output``; the results."""
    from .run import PRIMARY, servers  # run.py imports this module only when (h) runs

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CPU})
    started = time.time()
    with (
        tempfile.TemporaryDirectory() as tmp,
        servers(PRIMARY, ["asgi-stream SSE"], Path(tmp)) as up,
    ):
        server = up["asgi-stream SSE"]
        before = procfs.machine_busy_seconds(), procfs.own_seconds(), server_seconds(server)
        measuring = time.time()
        found = asyncio.run(measure(events, rounds, server.port))
        after = procfs.machine_busy_seconds(), procfs.own_seconds(), server_seconds(server)
        # Cores kept busy by other processes than this one and its server, on average.
        busy, own, served = (end - start for end, start in zip(after, before, strict=True))
        other_load = (busy - own - served) / (time.time() - measuring)
    results = {
        "command": command,
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "other_load": round(max(other_load, 0.0), 2),
        "events": events,
        "rounds": rounds,
        "readers": found,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "testing.json").write_text(json.dumps(results, indent=2) + "\n")
    (output / "testing.md").write_text(markdown(results))
    return results


def server_seconds(server: ServerProcess) -> float:
    return procfs.cpu_seconds(server.process.pid)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# How fast a test reads a stream",
        "",
        f"`{results['command']}`, {results['started_utc']} UTC: one SSE stream of "
        f"{results['events']:,} events, median of {results['rounds']} rounds; other processes "
        f"kept {results['other_load']} of the cores busy.",
        "",
        "| reader | events/s | ratio to ApplicationCommunicator |",
        "|---|---:|---:|",
    ]
    for name, entry in results["readers"].items():
        rate, ratio = entry["events_per_second"], entry["ratio_to_communicator"]
        lines.append(f"| {name} | {rate:,.0f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.testing_clients", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    command = "python3 -m benchmarks.testing_clients"
    results = run(args.events, args.rounds, args.output, command)
    print(markdown(results))


if __name__ == "__main__":
    main()
