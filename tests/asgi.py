"""Helpers for driving an ASGI app directly with asgiref's ApplicationCommunicator.

For the exact messages an app sends. A test that reads a whole stream as a client
would uses :mod:`asgi_stream.testing` instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.testing import ApplicationCommunicator

from asgi_stream import testing

SERVER_ASGI = testing.ASGI


def http_scope(
    method: str = "GET",
    path: str = "/",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    """A scope like the one uvicorn builds for an HTTP/1.1 request: asgi_stream.testing's.

    With no extensions: the tests that read the exact messages read bodies, and
    Starlette's FileResponse, say, would answer ``http.response.pathsend`` instead.
    ``path`` is taken as it is, the decoded path (a ``?`` in it is part of it),
    for the tests that send paths no client could.
    """
    scope = dict(testing.http_scope(method, "/", query, headers))
    del scope["extensions"]
    scope["path"] = path
    scope["raw_path"] = path.encode("utf-8", "surrogatepass")
    return scope


async def request(
    app: Any, scope: dict[str, Any], body: bytes = b"", timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Run one request to completion; every message the app sent, in order."""
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": body, "more_body": False})
    messages = []
    while True:
        message = await comm.receive_output(timeout)
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            break
    await comm.wait(timeout)
    return messages


def body_of(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def headers_of(messages: list[dict[str, Any]]) -> dict[bytes, bytes]:
    return dict(messages[0]["headers"])


class Endless:
    """An endless stream whose generator records when its ``finally`` ran."""

    def __init__(self) -> None:
        self.finally_ran = False

    async def generate(self) -> Any:
        try:
            while True:
                yield b"tick\n"
                await asyncio.sleep(0.01)
        finally:
            self.finally_ran = True


async def never_disconnects() -> dict[str, Any]:
    """A ``receive`` whose client stays for as long as a test may take."""
    await asyncio.sleep(60)
    return {"type": "http.disconnect"}
