"""FileResponse under real servers: uvicorn, hypercorn (HTTP/1.1 and HTTP/2) and granian.

Ranges and conditional requests with httpx, a cut download resumed by
``curl -C -`` byte for byte, the server's memory while a large file goes out
(its peak resident set, from /proc), and its descriptors after many cut
downloads.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import ServerProcess, serve
from tests.waiting import until

CONTENT = os.urandom(3 * 1024 * 1024 + 17)
SERVERS = {
    "uvicorn": ["-m", "uvicorn", "tests.file_app:app", "--host", "127.0.0.1"],
    "hypercorn": ["-m", "hypercorn", "tests.file_app:app", "--bind", "127.0.0.1:{port}"],
    "granian": [
        "-m",
        "granian",
        "--interface",
        "asgi",
        "tests.file_app:app",
        "--host",
        "127.0.0.1",
    ],
}


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = tmp_path_factory.mktemp("files")
    (found / "data.bin").write_bytes(CONTENT)
    return found


@pytest.fixture(scope="module", params=list(SERVERS))
def server(
    request: pytest.FixtureRequest, directory: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {**os.environ, "ASGI_STREAM_FILES": str(directory)}
    with serve(SERVERS[request.param], tmp_path_factory.mktemp(request.param), env=env) as running:
        yield running
        assert "Traceback" not in running.output()


def clients(server: ServerProcess) -> list[httpx.Client]:
    """HTTP/1.1, and for hypercorn HTTP/2 too (h2c, prior knowledge)."""
    found = [httpx.Client(base_url=server.url, timeout=20)]
    if "hypercorn" in server.process.args[2]:
        found.append(httpx.Client(base_url=server.url, timeout=20, http1=False, http2=True))
    return found


def test_ranges_and_conditional_requests(server: ServerProcess) -> None:
    for client in clients(server):
        with client:
            whole = client.get("/files/data.bin")
            assert whole.status_code == 200 and whole.content == CONTENT
            assert whole.headers["accept-ranges"] == "bytes"
            etag = whole.headers["etag"]
            part = client.get("/files/data.bin", headers={"Range": "bytes=1000-1999"})
            assert (part.status_code, part.content) == (206, CONTENT[1000:2000])
            assert part.headers["content-range"] == f"bytes 1000-1999/{len(CONTENT)}"
            several = client.get("/files/data.bin", headers={"Range": "bytes=0-9,-10"})
            assert several.status_code == 206
            assert several.headers["content-type"].startswith("multipart/byteranges")
            assert CONTENT[:10] in several.content and CONTENT[-10:] in several.content
            same = client.get("/files/data.bin", headers={"If-None-Match": etag})
            assert (same.status_code, same.content) == (304, b"")
            resumed = client.get(
                "/files/data.bin", headers={"Range": "bytes=100-", "If-Range": etag}
            )
            assert (resumed.status_code, resumed.content) == (206, CONTENT[100:])
            changed = client.get(
                "/files/data.bin", headers={"Range": "bytes=100-", "If-Range": '"old"'}
            )
            assert (changed.status_code, changed.content) == (200, CONTENT)
            too_far = client.get("/files/data.bin", headers={"Range": "bytes=99999999-"})
            assert too_far.status_code == 416
            assert too_far.headers["content-range"] == f"bytes */{len(CONTENT)}"
            head = client.head("/files/data.bin")
            assert head.headers["content-length"] == str(len(CONTENT)) and head.content == b""
            missing = client.get("/files/../file_app.py")
            assert missing.status_code == 404


def test_curl_resumes_a_cut_download_byte_exact(server: ServerProcess, tmp_path: Path) -> None:
    target = tmp_path / "download.bin"
    url = f"{server.url}/files/data.bin"
    with httpx.stream("GET", url, timeout=20) as cut, target.open("wb") as file:
        for chunk in cut.iter_raw():
            file.write(chunk)
            if file.tell() > len(CONTENT) // 3:
                break  # the connection is dropped here, mid-body
    assert 0 < target.stat().st_size < len(CONTENT)
    subprocess.run(
        ["curl", "-sS", "--fail", "-C", "-", "-o", str(target), f"{server.url}/files/data.bin"],
        check=True,
        timeout=30,
    )
    assert target.read_bytes() == CONTENT


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def uvicorn_large(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    """uvicorn serving a 200 MB sparse file (made in no time), and its size."""
    size = 200 * 1024 * 1024
    with (tmp_path / "large.bin").open("wb") as file:
        file.truncate(size)
    (tmp_path / "small.bin").write_bytes(CONTENT)
    env = {**os.environ, "ASGI_STREAM_FILES": str(tmp_path)}
    with serve(SERVERS["uvicorn"], tmp_path, env=env) as running:
        yield running, size


def test_a_large_file_keeps_the_servers_memory_flat(
    uvicorn_large: tuple[ServerProcess, int],
) -> None:
    server, size = uvicorn_large
    pid = server.process.pid
    httpx.get(f"{server.url}/files/small.bin", timeout=20)  # warm: imports, first allocations
    before = rss_kib(pid)
    received = 0
    with httpx.stream("GET", f"{server.url}/files/large.bin", timeout=60) as response:
        for chunk in response.iter_raw(1024 * 1024):
            received += len(chunk)
    assert received == size
    # The peak, over the whole download: a few chunks, never the file.
    assert (peak_rss_kib(pid) - before) * 1024 < size // 10


def test_descriptors_come_back_after_many_cut_downloads(
    uvicorn_large: tuple[ServerProcess, int],
) -> None:
    server, _ = uvicorn_large
    pid = server.process.pid
    httpx.get(f"{server.url}/files/small.bin", timeout=20)
    baseline = fds(pid)
    request = b"GET /files/large.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(200):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request)
            assert sock.recv(65536)  # the headers and a first piece, then we leave
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )

    asyncio.run(until(lambda: fds(pid) <= baseline, timeout=30))
    assert httpx.get(f"{server.url}/files/small.bin", timeout=20).content == CONTENT
