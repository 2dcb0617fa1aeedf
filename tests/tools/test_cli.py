"""``asgi-stream serve`` end to end: real uvicorn and hypercorn processes on 127.0.0.1.

The shutdown tests hold streams open (``tests/endless_app.py``, whose
generators print ``finally ran`` as they end), send SIGTERM, and check what a
user would: every client saw its stream end cleanly, every generator's
``finally`` ran, the process exited 0, and nothing was logged as an error.
The servers get a grace period far longer than the tests' bounded waits, so
a shutdown that waited for it (instead of ending the streams at once) fails
those waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from asgi_stream.tools.cli import app_environment, build_parser, main
from tests.serving import ROOT, ServerProcess, free_port, serve

pytestmark = pytest.mark.server

GRACE = 60.0  # --grace: far past every wait below
SHUTDOWN = 15.0  # the bound on a shutdown, from SIGTERM to the process's exit


def command(*options: str, app: str = "tests.endless_app:app") -> list[str]:
    return ["-m", "asgi_stream", "serve", "--app", app, "--grace", str(GRACE), *options]


@dataclass
class Shutdown:
    returncode: int
    streams: list[str]  # per client: the HTTP version of a clean end, or the error
    output: str


def stop_with_open_streams(
    server: ServerProcess, count: int, path: str = "/endless", http2: bool = False
) -> Shutdown:
    """Open ``count`` streams, wait until each has its first chunk, SIGTERM the server."""

    async def hold_streams() -> list[str]:
        started = 0
        all_started = asyncio.Event()
        outcomes: list[str] = []
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(http1=not http2, http2=http2, limits=limits) as client:

            async def one() -> None:
                nonlocal started
                try:
                    async with client.stream("GET", server.url + path, timeout=10) as response:
                        chunks = response.aiter_bytes()
                        await anext(chunks)
                        started += 1
                        if started == count:
                            all_started.set()
                        async for _ in chunks:
                            pass
                    outcomes.append(response.http_version)
                except Exception as exc:
                    outcomes.append(repr(exc))
                    all_started.set()  # fail now rather than at the timeout

            clients = [asyncio.create_task(one()) for _ in range(count)]
            await asyncio.wait_for(all_started.wait(), 10)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(*clients), SHUTDOWN)
        return outcomes

    outcomes = asyncio.run(hold_streams())
    returncode = server.process.wait(SHUTDOWN)
    return Shutdown(returncode, outcomes, server.output())


def assert_graceful(shutdown: Shutdown, streams: int, http_version: str = "HTTP/1.1") -> None:
    assert shutdown.streams == [http_version] * streams, "some stream did not end cleanly"
    assert shutdown.output.count("finally ran") == streams
    assert shutdown.returncode == 0, shutdown.output
    assert "ERROR" not in shutdown.output and "Traceback" not in shutdown.output


@pytest.mark.parametrize(
    ("options", "http_version"),
    [
        (["--server", "uvicorn"], "HTTP/1.1"),
        (["--server", "hypercorn"], "HTTP/1.1"),
        (["--http2"], "HTTP/2"),  # hypercorn, 50 streams on one connection
    ],
    ids=["uvicorn", "hypercorn", "hypercorn-http2"],
)
def test_sigterm_ends_fifty_open_streams_cleanly(
    tmp_path: Path, options: list[str], http_version: str
) -> None:
    with serve(command(*options), tmp_path) as server:
        shutdown = stop_with_open_streams(server, 50, http2=http_version == "HTTP/2")
    assert_graceful(shutdown, 50, http_version)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_http2_over_tls_is_chosen_by_alpn(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*self_signed, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    tls = ["--certfile", str(cert), "--keyfile", str(key)]
    with serve(command("--http2", *tls), tmp_path) as server:
        url = server.url.replace("http://", "https://")
        with httpx.Client(http2=True, verify=False, timeout=5) as client:  # self-signed
            response = client.get(url + "/pid")
        shutdown_status = server.stop()
    assert response.http_version == "HTTP/2"  # the client offered h2 and http/1.1 by ALPN
    assert response.json()["pid"] == server.process.pid
    assert shutdown_status == 0


def worker_pids(server: ServerProcess, count: int) -> set[int]:
    """The pids that answer ``/pid``, asked until ``count`` have (bounded)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 10
    while len(seen) < count and time.monotonic() < deadline:
        # A new connection each time, so that the kernel may pick any worker.
        seen.add(httpx.get(server.url + "/pid", timeout=5).json()["pid"])
    return seen


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn"])
def test_two_workers_serve_and_stop_together(tmp_path: Path, server_name: str) -> None:
    with serve(command("--server", server_name, "--workers", "2"), tmp_path) as server:
        children = psutil.Process(server.process.pid).children()
        # multiprocessing also starts a "resource tracker" process; the workers are the others.
        workers = {child.pid for child in children if "spawn_main" in " ".join(child.cmdline())}
        assert len(workers) == 2
        assert worker_pids(server, 2) == workers
        shutdown = stop_with_open_streams(server, 20)
    assert_graceful(shutdown, 20)
    _, still_running = psutil.wait_procs(children, timeout=2)
    assert not still_running


def test_a_worker_that_dies_stops_the_server_with_status_1() -> None:
    argv = command("--workers", "2", "--port", str(free_port()), app="tests.no_such_module:app")
    finished = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert finished.returncode == 1
    assert "ModuleNotFoundError" in finished.stderr  # the worker's own report
    assert "exited with status 1" in finished.stderr


def test_the_catalogue_gets_its_settings_in_every_worker(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    log_file.write_text("")
    options = ["--workers", "2", "--tick", "0.005", "--log-file", str(log_file)]
    with serve(command(*options, app="asgi_stream.catalogue:app"), tmp_path) as server:
        for _ in range(4):
            assert httpx.get(server.url + "/settings", timeout=5).json()["tick"] == 0.005

        with growing(log_file):  # /logs sends nothing until the file grows
            shutdown = stop_with_open_streams(server, 10, path="/logs")
    assert shutdown.streams == ["HTTP/1.1"] * 10
    assert shutdown.returncode == 0, shutdown.output
    assert "ERROR" not in shutdown.output and "Traceback" not in shutdown.output


@contextlib.contextmanager
def growing(log_file: Path) -> Iterator[None]:
    """Append a line to ``log_file`` every 10 ms, in a thread, until the block ends."""
    stop = threading.Event()

    def write() -> None:
        with log_file.open("a") as log:
            while not stop.wait(0.01):
                log.write("a line\n")
                log.flush()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def test_app_settings_become_environment_variables() -> None:
    parser = build_parser()
    given = parser.parse_args(["serve", "--tick", "0.25", "--log-file", "x.log", "--debug"])
    assert app_environment(given) == {
        "ASGI_STREAM_TICK": "0.25",
        "ASGI_STREAM_LOG_FILE": "x.log",
        "ASGI_STREAM_DEBUG": "1",
    }
    assert app_environment(parser.parse_args(["serve"])) == {}


@pytest.mark.parametrize(
    "options",
    [
        ["--http2", "--server", "uvicorn"],
        ["--grace", "0"],
        ["--workers", "0"],
        ["--tick", "-1"],
        ["--tick", "inf"],
        ["--grace", "nan"],
        ["--port", "70000"],
        ["--certfile", "cert.pem"],
        ["--server", "daphne"],
    ],
)
def test_bad_options_are_refused(options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *options])
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    assert f"cannot bind http://127.0.0.1:{port}" in capsys.readouterr().err
