"""The catalogue's own access log, which /logs shows to every visitor."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from asgi_stream.catalogue.accesslog import AccessLog
from tests.asgi import http_scope


def test_a_line_per_request_without_the_query_string_or_the_client() -> None:
    async def main() -> str:
        log = AccessLog()
        await log.open()
        assert log.path is not None
        try:
            scope = http_scope("POST", "/chat-stream", b"message=my+password+is+hunter2")
            scope["raw_path"] = b"/chat-stream\r\nforged"

            async def send(message: dict) -> None:
                pass

            await log.watch(scope, send)({"type": "http.response.start", "status": 200})
            return Path(log.path).read_text()  # noqa: ASYNC240 - a test, a tiny file
        finally:
            await log.close()

    text = asyncio.run(main())
    assert re.fullmatch(
        r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "POST /chat-stream\\x0d\\x0aforged HTTP/1.1" 200\n', text
    )
    assert "hunter2" not in text
    assert "127.0.0.1" not in text
