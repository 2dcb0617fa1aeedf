"""A generator that reads the upload while its response streams, on real servers.

The response's disconnect watcher waits on ``receive()`` all along. Were it to
take the body's pieces, the echo would lose them, or (hypercorn) lose the last
one and wait for it for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.serving import ServerProcess

pytestmark = pytest.mark.server

PIECES = [b"one-", b"two-", b"three-", b"four"]


@pytest.mark.parametrize(
    "reliability_server", ["uvicorn", "hypercorn"], indirect=True, scope="module"
)
def test_the_upload_comes_back_whole_while_it_is_sent(reliability_server: ServerProcess) -> None:
    async def upload() -> AsyncIterator[bytes]:
        for piece in PIECES:
            yield piece
            await asyncio.sleep(0.05)  # the response is streaming meanwhile

    async def main() -> tuple[int, bytes]:
        async with httpx.AsyncClient(timeout=5) as client:
            reply = await client.post(f"{reliability_server.url}/echo", content=upload())
            return reply.status_code, reply.content

    assert asyncio.run(main()) == (200, b"".join(PIECES).upper())
