"""Sending a 200 MB file: ``python3 -m benchmarks.files``, section (i) of the benchmarks.

Theory of operation
===================

One file of 200 MB (random bytes, written once, so the page cache holds it
for every candidate alike) is downloaded whole by ``curl`` from each
candidate in turn: the ASGI callables of :mod:`benchmarks.file_apps` under
uvicorn with httptools (:mod:`benchmarks.server`), and nginx serving the
same file from a configuration of its own (one process, ``sendfile on``).
Every server is pinned to CPU 0, the client to CPU 1, as in the other
sections. The rounds are interleaved and each figure is the median of its
rounds:

* **MB/s**: the bytes curl received over its total time;
* **server CPU ms per MB**: the server's CPU time during the download (every
  thread, from ``/proc``) over the megabytes sent.

Ratios are to ``bare``, the plainest ASGI loop that sends a file. Results go
to ``benchmarks/results/files.json`` and ``files.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from asgi_stream.tools.process import ServerProcess, free_port, serve

from . import procfs
from .run import BENCH_SERVER, PRIMARY, RESULTS, ROOT, log

#: The ASGI candidates: name -> attribute of benchmarks.file_apps.
ASGI_CANDIDATES = {"bare": "bare", "asgi-stream": "asgi_stream", "starlette": "starlette"}
NGINX = "/usr/sbin/nginx"
SIZE = 200 * 1024 * 1024
ROUNDS = 3
SERVER_CPU = "0"
_CURL = ("curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download} %{time_total}")
_CURL = ("curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download} %{time_total}")

_NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
error_log stderr warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def make_file(path: Path, size: int) -> None:
    """``size`` bytes of one random megabyte repeated: written fast, not compressible."""
    block = os.urandom(1024 * 1024)
    with path.open("wb") as file:
        for _ in range(size // len(block)):
            file.write(block)


@contextlib.contextmanager
def nginx(root: Path, tmp: Path) -> Iterator[ServerProcess]:
    """nginx serving ``root``, one process, pinned to the server's CPU."""
    port = free_port()
    (tmp / f"nginx-{port}.conf").write_text(_NGINX_CONF.format(tmp=tmp, port=port, root=root))
    command = ["taskset", "-c", SERVER_CPU, NGINX, "-p", str(tmp), "-c"]
    command.append(str(tmp / "nginx-{port}.conf"))  # serve() puts the port in
    with serve(command, tmp / "nginx.log", port=port, start_timeout=20.0) as server:
        yield server


def download(port: int, name: str) -> tuple[int, float]:
    """Bytes received and seconds taken by curl for the whole file."""
    done = subprocess.run(
        [*_CURL, f"http://127.0.0.1:{port}/{name}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    size, seconds = done.stdout.split()
    return int(size), float(seconds)


def measure(size: int = SIZE, rounds: int = ROUNDS) -> dict[str, Any]:
    """Every candidate, ``rounds`` interleaved rounds; medians and ratios to bare."""
    with (
        tempfile.TemporaryDirectory(prefix="files-bench-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        root = tmp / "root"
        root.mkdir()
        make_file(root / "file.bin", size)
        env = {"BENCH_FILE": str(root / "file.bin")}
        running = {
            name: stack.enter_context(
                serve(
                    [
                        *BENCH_SERVER,
                        PRIMARY,
                        f"benchmarks.file_apps:{attribute}",
                        "--cpus",
                        SERVER_CPU,
                    ],
                    tmp / f"{name}.log",
                    cwd=ROOT,
                    env=env,
                    start_timeout=20.0,
                )
            )
            for name, attribute in ASGI_CANDIDATES.items()
        }
        if shutil.which("taskset") and os.path.exists(NGINX):
            running["nginx"] = stack.enter_context(nginx(root, tmp))
        rates: dict[str, list[float]] = {name: [] for name in running}
        cpu: dict[str, list[float]] = {name: [] for name in running}
        for server in running.values():  # warm up: imports, the page cache
            download(server.port, "file.bin")
        for number in range(rounds):
            log(f"    round {number + 1} of {rounds}")
            for name, server in running.items():
                before = procfs.cpu_seconds(server.process.pid)
                received, seconds = download(server.port, "file.bin")
                used = procfs.cpu_seconds(server.process.pid) - before
                if received != size:
                    raise RuntimeError(f"{name}: {received} bytes arrived, {size} were sent")
                megabytes = size / 1e6
                rates[name].append(megabytes / seconds)
                cpu[name].append(used * 1000 / megabytes)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        name: {
            "mb_per_s": medians[name],
            "ratio_to_bare": medians[name] / medians["bare"],
            "server_cpu_ms_per_mb": statistics.median(cpu[name]),
            "rounds_mb_per_s": rates[name],
        }
        for name in running
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("uvicorn", "httptools", "starlette"):
        found[package] = metadata.version(package)
    if os.path.exists(NGINX):
        found["nginx"] = (
            subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)
            .stderr.strip()
            .removeprefix("nginx version: ")
        )
    return found


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Sending a 200 MB file",
        "",
        f"`{report['command']}`, {report['machine']}; servers on CPU 0, curl on CPU 1;"
        f" medians of {report['rounds']} rounds.",
        "",
        "| candidate | MB/s | ratio to bare | server CPU ms per MB |",
        "|---|---:|---:|---:|",
    ]
    for name, found in report["results"].items():
        lines.append(
            f"| {name} | {found['mb_per_s']:.0f} | {found['ratio_to_bare']:.2f} |"
            f" {found['server_cpu_ms_per_mb']:.2f} |"
        )
    target = report["target"]
    lines += ["", f"Target: asgi-stream at least Starlette's MB/s: **{target}**.", ""]
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    return "\n".join(lines) + "\n"


def run(output: Path, command: str, size: int = SIZE, rounds: int = ROUNDS) -> dict[str, Any]:
    """Measure, then write ``output/files.json`` and ``files.md``; return the report."""
    results = measure(size, rounds)
    ours, theirs = results["asgi-stream"]["mb_per_s"], results["starlette"]["mb_per_s"]
    report = {
        "command": command,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared with other work",
        "size_bytes": size,
        "rounds": rounds,
        "versions": versions(),
        "results": results,
        "target": "pass" if ours >= theirs else "miss",
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "files.json").write_text(json.dumps(report, indent=2) + "\n")
    (output / "files.md").write_text(markdown(report))
    log(f"wrote {output / 'files.md'}")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.files", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for the results")
    parser.add_argument("--megabytes", type=int, default=SIZE // 2**20, help="the file's size, MiB")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    run(args.output, "python3 -m benchmarks.files", args.megabytes * 2**20, args.rounds)


if __name__ == "__main__":
    main()
