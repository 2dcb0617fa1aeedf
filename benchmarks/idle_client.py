"""Hold thousands of idle SSE streams open: ``python -m benchmarks.idle_client PORT``.

One process per server, because a process may hold only so many open files
(the hard limit here is 20,000) and the run keeps 10,000 streams open on
several servers at once. It obeys one command per line on stdin and answers
one line of JSON on stdout:

``open N``
    open streams to ``/idle`` until N are open; answer when every one of them
    has its response headers;
``heard``
    read what arrived since and answer how many streams have received a byte
    after their headers (a heartbeat);
``quit``
    close everything and exit.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
import time

from .client import RECV_SIZE, TIMEOUT, connect, request
from .server import raise_open_files_limit

# Connections are made in batches small enough for the server's accept queue.
BATCH = 250


class IdleStreams:
    def __init__(self, port: int) -> None:
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.heard: set[int] = set()

    def open(self, target: int) -> None:
        while len(self.socks) < target:
            waiting: dict[socket.socket, bytes] = {}
            for _ in range(min(BATCH, target - len(self.socks))):
                sock = connect(self.port)
                sock.sendall(request("/idle"))
                sock.setblocking(False)
                self.selector.register(sock, selectors.EVENT_READ)
                self.socks.append(sock)
                waiting[sock] = b""
            deadline = time.monotonic() + TIMEOUT
            while waiting:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(waiting)} streams got no response headers")
                for key, _ in self.selector.select(1.0):
                    sock = key.fileobj  # type: ignore[assignment]
                    if sock not in waiting:
                        if not sock.recv(RECV_SIZE):
                            raise ConnectionError("the server closed an idle stream")
                        self.heard.add(sock.fileno())
                        continue
                    data = waiting[sock] + sock.recv(RECV_SIZE)
                    if not data:
                        raise ConnectionError("the server closed an idle stream")
                    if b"\r\n\r\n" in data:
                        del waiting[sock]
                    else:
                        waiting[sock] = data

    def read_heartbeats(self) -> int:
        for key, _ in self.selector.select(0.5):
            sock = key.fileobj
            if not sock.recv(RECV_SIZE):  # type: ignore[union-attr]
                # An idle stream has no end: the server failed, and this is no measurement.
                raise ConnectionError("the server closed an idle stream")
            self.heard.add(sock.fileno())  # type: ignore[union-attr]
        return len(self.heard)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def main() -> None:
    raise_open_files_limit()
    streams = IdleStreams(int(sys.argv[1]))
    try:
        for line in sys.stdin:
            command, *args = line.split()
            if command == "open":
                streams.open(int(args[0]))
                answer = {"open": len(streams.socks)}
            elif command == "heard":
                answer = {"heard": streams.read_heartbeats()}
            else:
                break
            print(json.dumps(answer), flush=True)
    finally:
        streams.close()
        os._exit(0)  # 10,000 sockets: let the kernel close them, not the garbage collector


if __name__ == "__main__":
    main()
