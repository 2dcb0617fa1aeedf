"""The catalogue reads query parameters as FastAPI does, and answers FastAPI's 422."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from asgi_stream import JSONResponse, Request, Router
from asgi_stream.catalogue.params import query_bool, query_str
from tests.asgi import body_of, http_scope, request

app = Router()


@app.get("/flag")
async def flag(request: Request) -> JSONResponse:
    return JSONResponse({"flag": query_bool(request, "flag", False)})


@app.get("/required")
async def required(request: Request) -> JSONResponse:
    return JSONResponse({"message": query_str(request, "message")})


def call(path: str, query: bytes = b"") -> tuple[int, Any]:
    messages = asyncio.run(request(app, http_scope("GET", path, query)))
    return messages[0]["status"], json.loads(body_of(messages))


@pytest.mark.parametrize(
    ("query", "expected"),
    [(b"", False), (b"flag=YES", True), (b"flag=on", True), (b"flag=0", False), (b"flag=F", False)],
)
def test_a_bool_reads_as_fastapi_reads_it(query: bytes, expected: bool) -> None:
    assert call("/flag", query) == (200, {"flag": expected})


def test_an_invalid_bool_is_fastapis_422() -> None:
    assert call("/flag", b"flag=maybe") == (
        422,
        {
            "detail": [
                {
                    "type": "bool_parsing",
                    "loc": ["query", "flag"],
                    "msg": "Input should be a valid boolean, unable to interpret input",
                    "input": "maybe",
                }
            ]
        },
    )


def test_a_missing_parameter_is_fastapis_422() -> None:
    status, body = call("/required")
    assert status == 422
    assert body["detail"][0]["type"] == "missing"
    assert body["detail"][0]["loc"] == ["query", "message"]
    assert call("/required", b"message=hi") == (200, {"message": "hi"})
