"""Streaming gzip: negotiation, headers, and a body that decodes event by event."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asgi_stream import EventSourceResponse, ServerSentEvent, StreamingResponse
from asgi_stream.compression import (
    accepts_gzip,
    gzip_chunks,
    gzip_response,
    parse_accept_encoding,
)
from tests.asgi import body_of, http_scope, request

EVENTS = [ServerSentEvent(data=f"event {i} " + "x" * 200).encode() for i in range(5)]


async def events() -> AsyncIterator[bytes]:
    for event in EVENTS:
        yield event


def test_parse_accept_encoding_reads_q_values() -> None:
    assert parse_accept_encoding("gzip;q=0.8, BR , *;q=0, deflate; Q=1.000") == {
        "gzip": 0.8,
        "br": 1.0,
        "*": 0.0,
        "deflate": 1.0,
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("GZIP;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("br, *;q=0.1", True),
        (None, False),
        ("", False),
        ("identity", False),
        ("br, deflate", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000, *", False),
        ("*;q=0", False),
        ("*;q=0, gzip", True),
        ("gzip;q=0.5, identity", False),
        ("gzip;q=nan", False),
        ("gzip;q=2", False),
    ],
)
def test_accepts_gzip_honours_q_values_and_the_wildcard(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_each_chunk_decodes_on_arrival_and_the_whole_is_one_gzip_member() -> None:
    async def main() -> list[bytes]:
        return [chunk async for chunk in gzip_chunks(events())]

    chunks = asyncio.run(main())
    assert len(chunks) == len(EVENTS) + 1  # one per event, then the trailer
    decoder = zlib.decompressobj(31)
    for chunk, event in zip(chunks, EVENTS, strict=False):
        assert decoder.decompress(chunk) == event  # nothing held back
    assert decoder.decompress(chunks[-1]) == b""
    assert decoder.eof and decoder.unused_data == b""
    # One member: gzip.decompress and a plain one-shot decode agree.
    assert zlib.decompress(b"".join(chunks), 31) == b"".join(EVENTS)


def test_an_empty_source_is_a_valid_empty_gzip_body() -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    async def main() -> list[bytes]:
        return [chunk async for chunk in gzip_chunks(nothing())]

    assert zlib.decompress(b"".join(asyncio.run(main())), 31) == b""


def test_closing_the_compressor_closes_its_source() -> None:
    closed = []

    async def source() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: x\n\n"
        finally:
            closed.append(True)

    async def main() -> None:
        stream = gzip_chunks(source())
        await anext(stream)
        await stream.aclose()

    asyncio.run(main())
    assert closed == [True]


def test_a_failing_source_gets_no_trailer() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise RuntimeError("boom")

    chunks = []

    async def consume() -> None:
        async for chunk in gzip_chunks(failing()):
            chunks.append(chunk)

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(consume())
    decoder = zlib.decompressobj(31)
    assert decoder.decompress(b"".join(chunks)) == b"data: 1\n\n"
    assert not decoder.eof


def run(response: Any, accept_encoding: bytes | None, method: str = "GET") -> list[dict[str, Any]]:
    headers = [(b"host", b"testserver")]
    if accept_encoding is not None:
        headers.append((b"accept-encoding", accept_encoding))
    return asyncio.run(request(response, http_scope(method, "/", headers=headers)))


def test_gzip_response_compresses_when_accepted() -> None:
    response = gzip_response(StreamingResponse(events(), media_type="text/event-stream"), "gzip")
    messages = run(response, b"gzip")
    assert messages[0]["headers"] == [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"vary", b"Accept-Encoding"),
        (b"content-encoding", b"gzip"),
    ]
    bodies = [m["body"] for m in messages[1:]]
    assert len(bodies) == len(EVENTS) + 2  # the events, the trailer, the end
    assert bodies[-1] == b""
    decoder = zlib.decompressobj(31)
    assert [decoder.decompress(body) for body in bodies[: len(EVENTS)]] == EVENTS


def test_gzip_response_sends_identity_with_vary_when_refused() -> None:
    response = gzip_response(StreamingResponse(events()), "gzip;q=0, br")
    messages = run(response, b"gzip;q=0, br")
    assert messages[0]["headers"] == [(b"vary", b"Accept-Encoding")]
    assert body_of(messages) == b"".join(EVENTS)


def test_gzip_response_encodes_chunks_as_the_response_would() -> None:
    async def mixed() -> AsyncIterator[Any]:
        yield "text with\nnewline"
        yield {"event": "done", "data": "ok"}
        yield ServerSentEvent(comment="hi")

    messages = run(gzip_response(EventSourceResponse(mixed()), "gzip"), b"gzip")
    assert zlib.decompress(body_of(messages), 31) == (
        b"data: text with\ndata: newline\n\nevent: done\ndata: ok\n\n: hi\n\n"
    )
    names = [name for name, _ in messages[0]["headers"]]
    assert names.count(b"vary") == 1 and b"cache-control" in names


def test_gzip_response_compresses_a_sync_iterable_too() -> None:
    messages = run(gzip_response(StreamingResponse(iter(["a", "b"])), "*"), b"*")
    assert zlib.decompress(body_of(messages), 31) == b"ab"


def test_gzip_response_keeps_an_existing_vary_and_leaves_encoded_bodies_alone() -> None:
    varied = gzip_response(StreamingResponse(events(), headers={"Vary": "accept-encoding"}), "gzip")
    assert [name for name, _ in varied.raw_headers].count(b"vary") == 1
    encoded = StreamingResponse(events(), headers={"Content-Encoding": "br"})
    assert gzip_response(encoded, "gzip").raw_headers == [(b"content-encoding", b"br")]


def test_head_sends_the_gzip_headers_and_never_starts_the_generator() -> None:
    started = []

    async def endless() -> AsyncIterator[bytes]:
        started.append(True)
        while True:
            yield b"data: x\n\n"
            await asyncio.sleep(0)

    messages = run(gzip_response(StreamingResponse(endless()), "gzip"), b"gzip", "HEAD")
    assert (b"content-encoding", b"gzip") in messages[0]["headers"]
    assert body_of(messages) == b""
    assert started == []
