"""A client that never reads, and ``send_timeout``: ``python3 -m benchmarks.frozen_client``.

What happens to a stream whose client stays connected but stops reading? The
server's ``send()`` waits once the socket's buffers are full, and with
``send_timeout=N`` the response gives up after N seconds: it closes the
generator (its ``finally`` runs) and returns without the final message. What
the *server* then does with the socket is not the response's to decide, and
this script measures it, on a real server process on 127.0.0.1:

1. The server (:mod:`benchmarks.server`, one worker) serves :data:`app`:
   ``/stream`` is an endless ``StreamingResponse`` of 16 KiB chunks with
   ``send_timeout`` seconds, from a generator that awaits between chunks and
   records when it last made a chunk and when its ``finally`` ran; ``/state``
   answers those times and the server's asyncio tasks.
2. The frozen client connects with a small receive buffer (``SO_RCVBUF``),
   sends the request and never reads.
3. Every quarter of a second, for ``--hold`` seconds, the script reads
   ``/state`` (on another connection) and asks ``ss`` for both ends of the
   frozen connection: their TCP state, their queues, and whether the server
   process still holds a file descriptor for its end.
4. Then the client either closes without reading (``close``: the kernel sends
   a reset, since unread data is waiting) or reads what is there until the
   server closes (``read``), and the script watches the server's end a second
   longer.

Times are seconds from the *stall*: the moment the generator made its last
chunk, whose ``send()`` then waited for a client that never read. The clock
is ``CLOCK_MONOTONIC``, shared by every process of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from asgi_stream import JSONResponse, StreamingResponse
from asgi_stream.tools import rawhttp
from asgi_stream.tools.process import ServerProcess, serve
from asgi_stream.types import Receive, Scope, Send

from .apps import query, serve_lifespan

ROOT = Path(__file__).resolve().parent.parent
CHUNK = b"x" * (16 * 1024)
CLIENT_RCVBUF = 4096
POLL = 0.25
#: How long the client may wait for the server to close, once it reads.
READ_TIMEOUT = 10.0
SERVERS = ("uvicorn-httptools", "hypercorn")
ENDINGS = ("close", "read")

# -- the app, in the server process -------------------------------------------------------------

#: What the endless generator of the current ``/stream`` did, in monotonic seconds.
STATE: dict[str, Any] = {}


async def endless(awaits: bool) -> AsyncIterator[bytes]:
    """16 KiB chunks for ever, awaiting between them (or never: then they are joined)."""
    STATE.update(started=time.monotonic(), chunks=0, bytes=0, finally_at=None)
    try:
        while True:
            STATE["last_chunk"] = time.monotonic()
            STATE["chunks"] += 1
            STATE["bytes"] += len(CHUNK)
            yield CHUNK
            if awaits:
                await asyncio.sleep(0)
    finally:
        STATE["finally_at"] = time.monotonic()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/stream?timeout=N&awaits=1``: the endless stream; ``/state``: what it and the
    server did."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
    elif scope["path"] == "/stream":
        timeout = float(query(scope, "timeout", "1"))
        generator = endless(query(scope, "awaits", "1") == "1")
        await StreamingResponse(generator, send_timeout=timeout)(scope, receive, send)
    else:
        this = asyncio.current_task()
        tasks = sorted(
            task.get_coro().__qualname__  # type: ignore[union-attr]
            for task in asyncio.all_tasks()
            if task is not this
        )
        await JSONResponse({**STATE, "tasks": tasks})(scope, receive, send)


# -- the measurement, in this process -----------------------------------------------------------


def state(port: int) -> dict[str, Any]:
    reply = asyncio.run(rawhttp.fetch(port, "GET", "/state"))
    result: dict[str, Any] = json.loads(reply.body)
    return result


def socket_state(local: int, peer: int) -> dict[str, Any] | None:
    """What ``ss`` says of the TCP socket from port ``local`` to port ``peer`` (None: gone)."""
    line = subprocess.run(
        ["ss", "-tnpH", "state", "all", f"( sport = :{local} and dport = :{peer} )"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.strip()
    if not line:
        return None
    fields = line.split()
    fd = re.search(r"fd=(\d+)", line)
    return {
        "state": fields[0],
        "recv_q": int(fields[1]),
        "send_q": int(fields[2]),
        "fd": int(fd.group(1)) if fd else None,
    }


def frozen_connection(port: int, timeout: float, awaits: bool) -> socket.socket:
    """A connection that asks for the endless stream and will not read it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)  # before connect()
    sock.settimeout(READ_TIMEOUT)
    sock.connect((rawhttp.HOST, port))
    target = f"/stream?timeout={timeout:g}&awaits={int(awaits)}"
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: frozen\r\n\r\n".encode())
    return sock


def read_to_end(sock: socket.socket) -> dict[str, Any]:
    """Read until the server closes; what arrived, and how the connection ended."""
    received = bytearray()
    try:
        while data := sock.recv(256 * 1024):
            received += data
        how = "FIN (end of stream)"
    except ConnectionResetError:
        how = "reset"
    except TimeoutError:
        how = f"still open after {READ_TIMEOUT:g} s"
    return {
        "bytes": len(received),
        "ended": how,
        "last_chunk_of_body": received.endswith(b"\r\n0\r\n\r\n"),
    }


def sample(server: ServerProcess, sock: socket.socket, stall: float | None) -> dict[str, Any]:
    now = time.monotonic()
    found = state(server.port)
    local = sock.getsockname()[1]
    return {
        "at": now,
        "since_stall": None if stall is None else round(now - stall, 2),
        "generator_running": found.get("finally_at") is None,
        "tasks": found["tasks"],
        "server_end": socket_state(server.port, local),
        "client_end": socket_state(local, server.port),
        "made": found.get("bytes", 0),
    }


def measure(
    server: ServerProcess, send_timeout: float, hold: float, ending: str, awaits: bool
) -> dict[str, Any]:
    """One frozen client from request to the end; see the module's docstring."""
    baseline = state(server.port)["tasks"]
    sock = frozen_connection(server.port, send_timeout, awaits)
    samples = []
    started = time.monotonic()
    stall: float | None = None
    try:
        while time.monotonic() - started < hold:
            time.sleep(POLL)
            found = sample(server, sock, stall)
            if stall is None and found["made"]:
                # The generator's last chunk so far; it is the stall once it stops moving.
                last = state(server.port)["last_chunk"]
                if time.monotonic() - last > POLL:
                    stall = last
                    found["since_stall"] = round(found["at"] - stall, 2)
            samples.append(found)
        local = sock.getsockname()[1]
        if ending == "read":
            seen = read_to_end(sock)
            sock.close()
        else:
            sock.close()
            seen = {"bytes": 0, "ended": "closed by the client without reading"}
        closed_at = time.monotonic()
        after = []
        for _ in range(4):
            time.sleep(POLL)
            after.append(
                {
                    "since_client_closed": round(time.monotonic() - closed_at, 2),
                    "server_end": socket_state(server.port, local),
                }
            )
    finally:
        sock.close()
    final = state(server.port)
    return {
        "ending": ending,
        "stall_at": stall,
        "finally_after_stall": (
            None if final["finally_at"] is None or stall is None else final["finally_at"] - stall
        ),
        "baseline_tasks": baseline,
        "made_bytes": final["bytes"],
        "samples": samples,
        "client_saw": seen,
        "after_client_closed": after,
        "client_closed_since_stall": None if stall is None else closed_at - stall,
    }


def describe(socket_end: dict[str, Any] | None) -> str:
    if socket_end is None:
        return "gone"
    held = "" if socket_end["fd"] is None else f", fd {socket_end['fd']} held"
    return (
        f"{socket_end['state']} recv-q {socket_end['recv_q']} send-q {socket_end['send_q']}{held}"
    )


def print_run(server_name: str, run: dict[str, Any], log: str) -> None:
    print(f"\n== {server_name}, then the client {run['ending']}s ==")
    finally_after = run["finally_after_stall"]
    print(
        "generator's finally ran "
        + ("never" if finally_after is None else f"{finally_after:.2f} s after the stall")
        + f"; it made {run['made_bytes']:,} bytes"
    )
    baseline = run["baseline_tasks"]
    shown = None
    for index, entry in enumerate(run["samples"]):
        extra = [task for task in entry["tasks"] if task not in baseline]
        lines = (
            ("generator running" if entry["generator_running"] else "generator closed")
            + f"; tasks beyond the idle server's: {', '.join(extra) or 'none'}"
            + f"\n      server end: {describe(entry['server_end'])}"
            + f"\n      client end: {describe(entry['client_end'])}"
        )
        if lines != shown or index == len(run["samples"]) - 1:  # each change, and the last
            print(f"  t={entry['since_stall']} s: {lines}")
            shown = lines
    closed = run["client_closed_since_stall"]
    print(f"  client {run['ending']}s at t={closed:.2f} s: {run['client_saw']}")
    for entry in run["after_client_closed"]:
        print(f"    +{entry['since_client_closed']} s: server end {describe(entry['server_end'])}")
    errors = [line for line in log.splitlines() if "ERROR" in line or "Error" in line]
    print(f"  server log, error lines: {errors or 'none'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.frozen_client", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--endings", default=",".join(ENDINGS), help="comma-separated")
    parser.add_argument("--send-timeout", type=float, default=1.0)
    parser.add_argument("--hold", type=float, default=6.0, help="seconds the client stays frozen")
    parser.add_argument(
        "--never-awaits",
        action="store_true",
        help="a generator that never awaits (its chunks are joined and sent by a writer task)",
    )
    parser.add_argument("--json", type=Path, help="also write every sample here")
    args = parser.parse_args(argv)
    from importlib import metadata

    print(
        f"Python {sys.version.split()[0]}, "
        + ", ".join(f"{name} {metadata.version(name)}" for name in ("uvicorn", "hypercorn"))
        + f"; send_timeout={args.send_timeout:g} s, client SO_RCVBUF {CLIENT_RCVBUF} bytes; "
        + ("a generator that never awaits" if args.never_awaits else "a generator that awaits")
    )
    everything = {}
    with tempfile.TemporaryDirectory() as tmp:
        for server_name in args.servers.split(","):
            for ending in args.endings.split(","):
                command = [sys.executable, "-m", "benchmarks.server", server_name]
                log_path = Path(tmp) / f"{server_name}.log"
                with serve(
                    [*command, "benchmarks.frozen_client:app", "--cpus", "0,1"], log_path, cwd=ROOT
                ) as server:
                    run = measure(
                        server, args.send_timeout, args.hold, ending, not args.never_awaits
                    )
                    print_run(server_name, run, server.output())
                    everything[f"{server_name} {ending}"] = run
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2) + "\n")


if __name__ == "__main__":
    main()
