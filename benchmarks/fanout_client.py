"""Subscribers for the fan-out measurement: ``python -m benchmarks.fanout_client PORT``.

One process per server, like :mod:`benchmarks.idle_client` (one process may
hold only so many open files). It obeys one command per line on stdin and
answers one line of JSON on stdout:

``open N``
    open subscriptions (``/subscribe``) until N are open; answer when every
    one of them has its response headers;
``measure SECONDS RATE [QUIET]``
    ask the server to publish ``RATE`` events a second for ``SECONDS``
    seconds (``/publish``), then wait until no event has arrived for
    ``QUIET`` seconds (:data:`QUIET` by default; a heartbeat comment is not
    an event); answer how
    many events were published, how many arrived in all, and the
    producer-to-client latency of each event that reached a *probe*;
``listen SECONDS RATE [QUIET]``
    as ``measure``, but another process publishes (to both servers, through
    Redis): read for ``SECONDS``, then until quiet; ``published`` is 0;
``quit``
    close everything and exit.

Reading 10,000 sockets as events arrive would make this process the
bottleneck, so only :data:`PROBES` subscribers, spread evenly over the
subscription order (a broadcast visits subscribers in order, so the first
ones would see the shortest delays), are read at once and timed. The others
are left to fill their socket buffers (a few hundred bytes a second each)
and are read only when the broadcast is over, to count what was delivered.
Each event's data is the producer's ``time.monotonic()``; this process runs
on the same machine, whose monotonic clock is shared by every process.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
import time

from .client import MARKER, RECV_SIZE, TIMEOUT, EventCounter, connect, request
from .server import raise_open_files_limit

# Connections are made in batches small enough for the server's accept queue.
BATCH = 250
PROBES = 100
#: The broadcast is over when no subscriber has received anything for this long.
QUIET = 0.5


class Probe:
    """A subscriber read as events arrive: each event's delay, from its timestamp."""

    __slots__ = ("buffer", "latencies")

    def __init__(self, latencies: list[float]) -> None:
        self.buffer = b""
        self.latencies = latencies

    def feed(self, data: bytes, now: float) -> None:
        buffer = self.buffer + data
        while True:
            start = buffer.find(MARKER)
            if start < 0:
                buffer = buffer[-(len(MARKER) - 1) :]
                break
            end = buffer.find(b"\n", start)
            if end < 0:
                buffer = buffer[start:]
                break
            self.latencies.append(now - float(buffer[start + len(MARKER) : end]))
            buffer = buffer[end:]
        self.buffer = buffer


class Subscribers:
    def __init__(self, port: int) -> None:
        self.port = port
        self.socks: list[socket.socket] = []
        self.counters: dict[socket.socket, EventCounter] = {}

    def open(self, target: int) -> None:
        with selectors.DefaultSelector() as selector:
            while len(self.socks) < target:
                waiting: dict[socket.socket, bytes] = {}
                for _ in range(min(BATCH, target - len(self.socks))):
                    sock = connect(self.port)
                    sock.sendall(request("/subscribe"))
                    sock.setblocking(False)
                    selector.register(sock, selectors.EVENT_READ)
                    self.socks.append(sock)
                    self.counters[sock] = EventCounter()
                    waiting[sock] = b""
                deadline = time.monotonic() + TIMEOUT
                while waiting:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{len(waiting)} subscribers got no response headers")
                    for key, _ in selector.select(1.0):
                        sock = key.fileobj  # type: ignore[assignment]
                        data = waiting[sock] + sock.recv(RECV_SIZE)
                        if not data:
                            raise ConnectionError("the server closed a subscription")
                        if b"\r\n\r\n" in data:
                            del waiting[sock]
                            selector.unregister(sock)
                        else:
                            waiting[sock] = data

    def measure(
        self, seconds: float, rate: float, publish: bool = True, quiet: float = QUIET
    ) -> dict[str, object]:
        """Publish (unless ``publish`` is false: another process does) and count what arrives.

        Counting ends once nothing has arrived for ``quiet`` seconds.
        """
        step = max(1, len(self.socks) // PROBES)
        latencies: list[float] = []
        probes = {sock: Probe(latencies) for sock in self.socks[::step]}
        delivered_before = sum(counter.count for counter in self.counters.values())
        publisher = connect(self.port)
        if publish:
            publisher.sendall(request(f"/publish?seconds={seconds}&rate={rate}"))
        publisher.setblocking(False)
        answer = b""
        with selectors.DefaultSelector() as selector:
            for sock in probes:
                selector.register(sock, selectors.EVENT_READ)
            selector.register(publisher, selectors.EVENT_READ)
            deadline = time.monotonic() + seconds + TIMEOUT
            published = None
            while published is None:
                if not publish and time.monotonic() > deadline - TIMEOUT:
                    published = 0  # the publishing process reports the count
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("the publisher did not answer")
                for key, _ in selector.select(0.1 if not publish else 1.0):
                    now = time.monotonic()
                    sock = key.fileobj  # type: ignore[assignment]
                    data = sock.recv(RECV_SIZE)
                    if sock is publisher:
                        answer += data
                        if not data:
                            published = int(answer.partition(b"\r\n\r\n")[2] or b"0")
                        continue
                    self.counters[sock].feed(data)
                    probes[sock].feed(data, now)
            selector.unregister(publisher)
            publisher.close()
            # Now everyone: read until no event has arrived for a while.
            for sock in self.socks:
                if sock not in probes:
                    selector.register(sock, selectors.EVENT_READ)
            deadline = time.monotonic() + TIMEOUT
            last_event = time.monotonic()
            while time.monotonic() - last_event < quiet:
                if time.monotonic() > deadline:
                    raise TimeoutError("the subscribers never went quiet")
                for key, _ in selector.select(quiet / 5):
                    now = time.monotonic()
                    sock = key.fileobj  # type: ignore[assignment]
                    data = sock.recv(RECV_SIZE)
                    counter = self.counters[sock]
                    before = counter.count
                    counter.feed(data)
                    if counter.count != before:
                        last_event = now
                    if sock in probes:
                        probes[sock].feed(data, now)
        delivered = sum(counter.count for counter in self.counters.values()) - delivered_before
        return {"published": published, "delivered": delivered, "latencies": latencies}

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def main() -> None:
    raise_open_files_limit()
    subscribers = Subscribers(int(sys.argv[1]))
    try:
        for line in sys.stdin:
            command, *args = line.split()
            answer: dict[str, object]
            if command == "open":
                subscribers.open(int(args[0]))
                answer = {"open": len(subscribers.socks)}
            elif command in ("measure", "listen"):
                seconds, rate, *quiet = map(float, args)
                publish = command == "measure"
                answer = subscribers.measure(seconds, rate, publish, *quiet)
            else:
                break
            print(json.dumps(answer), flush=True)
    finally:
        subscribers.close()
        os._exit(0)  # 10,000 sockets: let the kernel close them, not the garbage collector


if __name__ == "__main__":
    main()
