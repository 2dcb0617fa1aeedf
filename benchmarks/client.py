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
"""

from __future__ import annotations

import selectors
import socket
import struct
import time
from collections.abc import Callable

HOST = "127.0.0.1"
MARKER = b"data: "
RECV_SIZE = 256 * 1024
BATCH_BYTES = 64 * 1024
TIMEOUT = 60.0


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode("ascii")


def stream_path(n: int) -> str:
    return f"/stream?n={n}"


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


def first_event_latency(port: int) -> float:
    """Seconds from ``connect()`` on a fresh connection to the first event's arrival."""
    start = time.perf_counter()
    counter = EventCounter()
    with connect(port) as sock:
        sock.sendall(request(stream_path(1)))
        while counter.count == 0:
            data = sock.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("the stream ended before its first event")
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

    def start(self, port: int, path: str, on_data: Callable[[bytes], None] | None = None) -> None:
        sock = connect(port)
        sock.setblocking(False)
        sock.sendall(request(path))
        self.selector.register(sock, selectors.EVENT_READ, on_data)
        self.open += 1

    def poll(self, timeout: float, on_end: Callable[[], None] | None = None) -> None:
        """Read whatever arrived within ``timeout``; close the streams that ended.

        ``on_end`` is called for each counted stream (one without ``on_data``) that ended.
        """
        for key, _ in self.selector.select(timeout):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                continue
            if key.data is not None:
                key.data(data)
            else:
                self.counter.feed(data)
            if not data:
                self.selector.unregister(sock)
                sock.close()
                self.open -= 1
                if on_end is not None and key.data is None:
                    on_end()

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()
        self.open = 0


def aggregate(port: int, streams: int, total: int) -> tuple[float, int]:
    """``streams`` concurrent streams sharing ``total`` events: (seconds, events counted).

    The connections are made first; the clock runs from the first request to
    the end of the last stream.
    """
    per_stream = total // streams
    socks = [connect(port) for _ in range(streams)]
    streamset = StreamSet()
    deadline = time.monotonic() + TIMEOUT
    try:
        start = time.perf_counter()
        for sock in socks:
            sock.sendall(request(stream_path(per_stream)))
            sock.setblocking(False)
            streamset.selector.register(sock, selectors.EVENT_READ)
            streamset.open += 1
        while streamset.open and time.monotonic() < deadline:
            streamset.poll(1.0)
        return time.perf_counter() - start, streamset.counter.count
    finally:
        streamset.close()


def fairness(port: int, streams: int, n: int, duration: float, gap: float = 0.02) -> list[float]:
    """Time to first byte of new connections while ``streams`` streams saturate the server.

    Each saturating stream asks for ``n`` events and is replaced when it ends,
    so the server stays busy. After a warm-up, a probe connection is made every
    ``gap`` seconds (one at a time) for ``duration`` seconds; its time from
    ``connect()`` to its first byte is recorded.
    """
    streamset = StreamSet()
    latencies: list[float] = []
    probe_started = 0.0
    probe_pending = False

    def replace() -> None:
        if time.monotonic() < stop:
            streamset.start(port, stream_path(n))

    def on_probe(data: bytes) -> None:
        nonlocal probe_pending, next_probe
        if probe_pending and data:
            latencies.append(time.perf_counter() - probe_started)
            probe_pending = False
        if not data:
            next_probe = time.monotonic() + gap

    try:
        for _ in range(streams):
            streamset.start(port, stream_path(n))
        next_probe = time.monotonic() + 0.5  # let the streams fill the server first
        stop = next_probe + duration
        deadline = stop + TIMEOUT
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= stop and not probe_pending:
                break
            if not probe_pending and now >= next_probe and now < stop:
                probe_started = time.perf_counter()
                probe_pending = True
                next_probe = float("inf")  # the probe's end schedules the next one
                streamset.start(port, stream_path(1), on_probe)
            streamset.poll(0.005, replace)
    finally:
        streamset.close()
    return latencies
