"""Slow, frozen and failing: clients that stop reading, and generators that raise mid-stream.

A *frozen* client keeps its connection open and reads nothing. Here it is a
raw socket with a small receive buffer that stops after the response headers
(over HTTP/2, an httpx stream that is never read). Against
``/flood`` (100 MiB in 64 KiB chunks, as fast as the server takes them):

* without a send timeout, the server's flow control stops the generator after
  a few MiB, so memory stays bounded; the body is then read whole;
* with ``send_timeout``, the stream ends about that long after the buffers
  fill: its ``finally`` runs, and the client sees the connection end early.

Hypercorn's HTTP/2 has one gap that no response can close: when the
*stream's* flow-control window is closed while the connection still reads
(a client that multiplexes, and stalls one stream), ``send()`` returns at
once and hypercorn buffers everything. The last test pins that down, so that
the statement of it in ``docs/reliability.rst`` stays true.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import httpx
import pytest

from asgi_stream import BackgroundTask, StreamingResponse
from asgi_stream.tools.rawhttp import fetch, read_body, read_head, request_bytes
from tests.asgi import http_scope
from tests.reliability import errors_logged, poll_until, serve_test_app, stats

pytestmark = [pytest.mark.server, pytest.mark.slow]

MIB = 1024 * 1024
FLOOD = 100  # MiB
BOUND = 32 * MIB  # what a frozen client may cost the server, at most

SERVERS = [
    pytest.param("uvicorn", False, id="uvicorn-http1"),
    pytest.param("hypercorn", False, id="hypercorn-http1"),
    pytest.param("hypercorn", True, id="hypercorn-http2"),
]


# The send timeout, message by message (ASGI, no server).


async def run_with_stuck_send(response: StreamingResponse, sends_before_stuck: int) -> list[Any]:
    """Run ``response`` against a ``send`` that never returns after the first few messages."""
    sent: list[Any] = []
    stuck = asyncio.Event()

    async def send(message: Any) -> None:
        if len(sent) == sends_before_stuck:
            stuck.set()
            await asyncio.Event().wait()  # a client that never reads again
        sent.append(message)

    async def receive() -> Any:
        await asyncio.Event().wait()  # the client never leaves either

    await asyncio.wait_for(response(http_scope(), receive, send), 5)
    assert stuck.is_set()
    return sent


def test_send_timeout_ends_a_frozen_stream_and_runs_its_cleanup() -> None:
    events: list[str] = []

    async def generate() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"chunk"
        finally:
            events.append("finally")

    response = StreamingResponse(
        generate(), background=BackgroundTask(events.append, "background"), send_timeout=0.1
    )
    began = time.monotonic()
    sent = asyncio.run(run_with_stuck_send(response, 3))  # bounded: "never" fails it
    took = time.monotonic() - began
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 2
    # No final message: the server closes the connection short; the client sees an incomplete body.
    assert all(m["more_body"] for m in sent[1:])
    assert events == ["finally", "background"]
    assert took >= 0.1  # not before the timeout


def test_send_timeout_is_per_send_so_a_slow_client_is_not_cut() -> None:
    sent: list[Any] = []

    async def slow_send(message: Any) -> None:
        await asyncio.sleep(0.02)  # each send waits, but well within the timeout
        sent.append(message)

    async def receive() -> Any:
        await asyncio.Event().wait()

    response = StreamingResponse([b"a"] * 40, send_timeout=0.5)  # 0.8 s in all
    asyncio.run(asyncio.wait_for(response(http_scope(), receive, slow_send), 10))
    assert len(sent) == 42 and sent[-1]["more_body"] is False


@pytest.mark.parametrize(
    ("send_timeout", "caller"), [(None, "send_body"), (1.0, "send_or_time_out")]
)
def test_the_servers_send_is_wrapped_only_when_send_timeout_is_set(
    send_timeout: float | None, caller: str
) -> None:
    # The per-chunk path pays nothing for the option when it is unset: the body
    # body task awaits the server's send itself, with no wrapper in between.
    callers = set()

    async def send(message: Any) -> None:
        if message.get("more_body"):
            callers.add(inspect.currentframe().f_back.f_code.co_name)  # type: ignore[union-attr]

    async def receive() -> Any:
        await asyncio.Event().wait()

    response = StreamingResponse([b"a", b"b"], send_timeout=send_timeout)
    asyncio.run(response(http_scope(), receive, send))
    assert callers == {caller}


# Frozen clients on real servers.


class FrozenClient:
    """A client that sends its request, reads the response headers, and then nothing."""

    def __init__(self, server_url: str, port: int, http2: bool) -> None:
        self.url, self.port, self.http2 = server_url, port, http2

    async def __aenter__(self) -> FrozenClient:
        return self

    async def open(self, target: str) -> None:
        if self.http2:
            self.client = httpx.AsyncClient(http1=False, http2=True, timeout=20)
            self.response = await self.client.send(
                self.client.build_request("GET", self.url + target), stream=True
            )
            assert self.response.status_code == 200
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock)
        self.writer.write(request_bytes("GET", target))
        self.status, self.headers = await read_head(self.reader)
        assert self.status == 200

    async def read_all(self) -> tuple[int, bool]:
        """Thaw: read the rest of the body. (bytes read, whether it ended cleanly)."""
        if self.http2:
            size = 0
            try:
                async for chunk in self.response.aiter_raw():
                    size += len(chunk)
            except httpx.HTTPError:
                return size, False
            return size, True
        body, complete = await read_body(self.reader, self.headers)
        return len(body), complete

    async def __aexit__(self, *exc_info: object) -> None:
        if self.http2:
            await self.response.aclose()
            await self.client.aclose()
        else:
            self.writer.close()


async def stalled_production(port: int) -> dict[str, int]:
    """Stats once the floods have produced nothing new for 0.4 s (bounded)."""
    previous = -1

    async def probe() -> dict[str, int]:
        nonlocal previous
        await asyncio.sleep(0.4)
        now = await stats(port)
        stalled = now["produced"] == previous
        previous = now["produced"]
        return {**now, "stalled": stalled}

    return await poll_until(probe, lambda now: now["stalled"], timeout=20)


@pytest.mark.parametrize(("server_name", "http2"), SERVERS)
def test_a_frozen_client_costs_bounded_memory_and_send_timeout_closes_it(
    tmp_path: Path, server_name: str, http2: bool
) -> None:
    async def main(server: Any) -> None:
        baseline = await stats(server.port)
        async with FrozenClient(server.url, server.port, http2) as client:
            await client.open(f"/flood?mb={FLOOD}")
            frozen = await stalled_production(server.port)
            assert frozen["stalled"], "the generator never stopped for the frozen client"
            assert frozen["produced"] < BOUND, frozen
            assert frozen["rss_kib"] - baseline["rss_kib"] < BOUND // 1024, (baseline, frozen)
            size, complete = await client.read_all()
            assert (size, complete) == (FLOOD * MIB, True)

        async with FrozenClient(server.url, server.port, http2) as client:
            await client.open(f"/flood?mb={FLOOD}&send_timeout=0.5")
            await poll_until(
                lambda: asyncio.sleep(0.1, server.output()),
                lambda output: output.count("flood finally ran") == 2,
            )
            size, complete = await client.read_all()
            assert not complete and size < BOUND
        # The server goes on answering.
        reply = await fetch(server.port, "GET", "/stream")
        assert reply.status == 200 and reply.complete

    with serve_test_app(tmp_path, server_name) as server:
        asyncio.run(main(server))
        output = server.output()
    assert f"flood finally ran, produced {FLOOD * MIB}" in output
    assert output.count("flood finally ran") == 2
    # uvicorn reports the response left unfinished for the timed-out stream, at
    # error level; that line is the only one allowed.
    assert all("without completing response" in line for line in errors_logged(output))


def stalled_h2_stream(port: int, path: str, stop: threading.Event) -> int:
    """An HTTP/2 client that reads its socket but never opens the stream's window.

    This is what a multiplexing client does when the consumer of one stream
    stalls while the connection lives on. Returns the body bytes received.
    """
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    received = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(0.1)
        connection.initiate_connection()
        stream_id = connection.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", path), (":scheme", "http")]
        connection.send_headers(stream_id, [*headers, (":authority", "127.0.0.1")], True)
        sock.sendall(connection.data_to_send())
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            for event in connection.receive_data(data):
                received += len(getattr(event, "data", b"") or b"")
            sock.sendall(connection.data_to_send())  # settings and pings; no WINDOW_UPDATE
    return received


def test_hypercorn_http2_buffers_without_bound_when_a_stream_window_is_closed(
    tmp_path: Path,
) -> None:
    """The server's fault, pinned: send() never waits, so neither flow control
    nor send_timeout can hold the generator; only the end of the stream frees it."""
    mb = 32
    stop = threading.Event()

    async def main(server: Any) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        baseline = await stats(server.port)
        client = asyncio.create_task(
            asyncio.to_thread(
                stalled_h2_stream, server.port, f"/flood?mb={mb}&send_timeout=0.5", stop
            )
        )
        try:
            buffered = await poll_until(
                lambda: stats(server.port), lambda now: now["produced"] == mb * MIB
            )
        finally:
            stop.set()
            received = await client
        assert received <= 65535  # the default window: all the client ever allowed
        return baseline, buffered, {"received": received}

    with serve_test_app(tmp_path, "hypercorn") as server:
        baseline, buffered, _ = asyncio.run(main(server))
        output = server.output()
    assert buffered["produced"] == mb * MIB, "hypercorn applied backpressure: update the docs"
    assert buffered["rss_kib"] - baseline["rss_kib"] > (mb // 2) * 1024
    assert f"flood finally ran, produced {mb * MIB}" in output  # the timeout never fired


# Errors after the headers.


@pytest.mark.parametrize(
    ("server_name", "http2", "error"),
    [
        pytest.param("uvicorn", False, httpx.RemoteProtocolError, id="uvicorn-http1"),
        pytest.param("hypercorn", False, httpx.RemoteProtocolError, id="hypercorn-http1"),
        # hypercorn neither ends nor resets an HTTP/2 stream whose app raised:
        # the client waits for more until its read timeout (the server's fault).
        pytest.param("hypercorn", True, httpx.ReadTimeout, id="hypercorn-http2"),
    ],
)
def test_an_error_mid_stream_gives_an_incomplete_body_and_the_next_request_works(
    tmp_path: Path, server_name: str, http2: bool, error: type[Exception]
) -> None:
    with serve_test_app(tmp_path, server_name) as server:
        with httpx.Client(http1=not http2, http2=http2, timeout=1) as client:
            chunks: list[bytes] = []
            with client.stream("GET", server.url + "/explode") as response:
                assert response.status_code == 200
                with pytest.raises(error):
                    chunks.extend(response.iter_raw())  # keeps what came before the error
            received = b"".join(chunks)
            assert received == b"chunk 0\nchunk 1\nchunk 2\n"
        with httpx.Client(http1=not http2, http2=http2, timeout=5) as client:
            response = client.get(server.url + "/stream")
        assert response.status_code == 200 and response.text.count("data: ") == 5
        output = server.output()
    # The server logs the generator's error (a bug is worth an error line)...
    assert "the generator failed after the headers" in output
    # ...and sends the client none of it.
    assert b"RuntimeError" not in received
