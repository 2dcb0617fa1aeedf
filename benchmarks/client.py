"""A raw-socket HTTP/1.1 client that costs the server as little as a client can.

Python HTTP clients parse every chunk and every event; that costs tens of
microseconds per event, more than the server spends making it, so they would
measure themselves. This client sends a fixed request and only counts: every
event the candidates send carries ``data: `` once, so the number of events is
the number of times those six bytes occur in the stream (chunk framing never
contains them). The request says ``Connection: close``, so the end of the body
is the end of the connection and the client never parses chunk sizes.

How the client reads changes what the server pays. An *eager* reader wakes on
every byte, so the server's ``write()`` pays for a wake-up per event. A
*batched* reader sets ``SO_RCVLOWAT`` to 64 KiB: the kernel wakes it only when
that much is waiting, as a busy browser or proxy would read. Both are reported.

Every wait is bounded (``SO_RCVTIMEO`` on blocking sockets, deadlines in the
event loops), so a stuck server fails the run instead of hanging it.

This is deliberately not :mod:`asgi_stream.tools.rawhttp`, the raw client of
the soak and the reliability tests: that one parses the head and the chunk
framing through asyncio streams, to check that a body ended cleanly, and in a
benchmark that parsing would cost more than the server's work it measures.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"
MARKER = b"data: "
RECV_SIZE = 256 * 1024
BATCH_BYTES = 64 * 1024
TIMEOUT = 60.0


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode("ascii")


def stream_path(n: int, awaiting: bool = False, empty: int | None = None) -> str:
    """``/stream`` of ``n`` events, from a generator that awaits before each if ``awaiting``;
    with ``empty=K``, ``n`` chunks that are empty but for one event in every K."""
    if empty is not None:
        return f"/stream?n={n}&empty={empty}"
    return f"/stream?n={n}&wait=1" if awaiting else f"/stream?n={n}"


class EventCounter:
    """Counts ``data: `` in a byte stream that arrives in pieces of any size."""

    __slots__ = ("_tail", "count")

    def __init__(self) -> None:
        self.count = 0
        self._tail = b""

    def feed(self, data: bytes) -> None:
        # The join of the last 5 bytes and the next 5 holds every marker cut in two.
        edge = len(MARKER) - 1
        self.count += data.count(MARKER) + (self._tail + data[:edge]).count(MARKER)
        self._tail = (self._tail + data)[-edge:]


def connect(port: int, batched: bool = False) -> socket.socket:
    """A blocking connection whose reads give up after :data:`TIMEOUT`."""
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
    sock.settimeout(None)  # plain blocking reads: no poll() before every recv()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(TIMEOUT), 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if batched:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, BATCH_BYTES)
    return sock


def read_stream(port: int, n: int, batched: bool) -> tuple[float, int]:
    """One stream of ``n`` events: (seconds from request to the end, events counted)."""
    counter = EventCounter()
    with connect(port, batched) as sock:
        start = time.perf_counter()
        sock.sendall(request(stream_path(n)))
        while data := sock.recv(RECV_SIZE):
            counter.feed(data)
        return time.perf_counter() - start, counter.count


def time_to_first(port: int, event: bool = True) -> float:
    """Seconds from ``connect()`` on a fresh connection to the first event's arrival.

    With ``event=False``, to the first byte of the response (its headers).
    """
    start = time.perf_counter()
    counter = EventCounter()
    with connect(port) as sock:
        sock.sendall(request(stream_path(1)))
        while counter.count == 0:
            data = sock.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("the stream ended before its first event")
            if not event:
                break
            counter.feed(data)
        elapsed = time.perf_counter() - start
        while sock.recv(RECV_SIZE):
            pass
    return elapsed


class StreamSet:
    """Many streams read by one ``epoll`` loop, each counted as it arrives."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.counter = EventCounter()
        self.open = 0

    def start(self, port: int, path: str) -> None:
        self.add(connect(port), path)

    def add(self, sock: socket.socket, path: str) -> None:
        """Send the request for ``path`` on ``sock`` and read its stream from now on."""
        sock.sendall(request(path))
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ)
        self.open += 1

    def poll(self, timeout: float, on_end: Callable[[], None] | None = None) -> None:
        """Read whatever arrived within ``timeout``; close the streams that ended.

        ``on_end`` is called for each stream that ended.
        """
        for key, _ in self.selector.select(timeout):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                continue
            self.counter.feed(data)
            if not data:
                self.selector.unregister(sock)
                sock.close()
                self.open -= 1
                if on_end is not None:
                    on_end()

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()
        self.open = 0


def aggregate(
    port: int, streams: int, per_stream: int, batched: bool, awaiting: bool = False
) -> tuple[float, int]:
    """``streams`` concurrent streams of ``per_stream`` events: (seconds, events counted).

    The connections are made first; the clock runs from the first request to
    the end of the last stream.
    """
    socks = [connect(port, batched) for _ in range(streams)]
    streamset = StreamSet()
    deadline = time.monotonic() + TIMEOUT
    try:
        start = time.perf_counter()
        for sock in socks:
            streamset.add(sock, stream_path(per_stream, awaiting))
        while streamset.open and time.monotonic() < deadline:
            streamset.poll(1.0)
        return time.perf_counter() - start, streamset.counter.count
    finally:
        streamset.close()


def _probe(port: int, start: float, stop: float, least: int, gap: float, results: Any) -> None:
    """In its own process: a new connection every ``gap`` seconds; send back the latencies."""
    time.sleep(max(0.0, start - time.monotonic()))
    latencies: list[float] = []
    while time.monotonic() < stop or len(latencies) < least:
        latencies.append(time_to_first(port, event=False))
        time.sleep(gap)
    results.send(latencies)


def fairness(
    port: int, streams: int, path: str, duration: float, least: int = 2, gap: float = 0.02
) -> list[float]:
    """Time to first byte of new connections while ``streams`` streams saturate the server.

    Each saturating stream asks for ``path`` (:func:`stream_path`) and is
    replaced when it ends, so the server stays busy. After a warm-up of half a second, a probe makes
    one new connection at a time, ``gap`` seconds apart, for ``duration``
    seconds (and at least ``least`` of them), and records the time from its
    ``connect()`` to its first byte. The probe runs in a process of its own,
    blocked in ``recv()``: the kernel wakes it the moment its byte arrives,
    whereas a probe in this busy loop would be read only when the loop came
    round to it.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    start = time.monotonic() + 0.5  # let the streams fill the server first
    # Forked before any stream is open, so the probe holds none of their sockets.
    prober = context.Process(
        target=_probe, args=(port, start, start + duration, least, gap, sender), daemon=True
    )
    prober.start()
    streamset = StreamSet()
    deadline = start + duration + TIMEOUT

    def replace() -> None:
        if prober.is_alive():
            streamset.start(port, path)

    try:
        for _ in range(streams):
            streamset.start(port, path)
        while not receiver.poll():
            if time.monotonic() > deadline or not (prober.is_alive() or receiver.poll()):
                raise TimeoutError("the fairness probe did not finish")
            streamset.poll(0.005, replace)
        return receiver.recv()
    finally:
        streamset.close()
        prober.join(5)
        if prober.is_alive():
            prober.kill()
