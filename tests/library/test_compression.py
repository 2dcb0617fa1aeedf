"""Streaming gzip: negotiation, headers, and a body that decodes event by event."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import EventSourceResponse, ServerSentEvent, StreamingResponse
from asgi_stream.compression import (
    GzipEncoder,
    accepts_gzip,
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
    encoder = GzipEncoder()
    chunks = [encoder.encode(event) for event in EVENTS] + [encoder.finish()]
    decoder = zlib.decompressobj(31)
    for chunk, event in zip(chunks, EVENTS, strict=False):
        assert decoder.decompress(chunk) == event  # nothing held back
    assert decoder.decompress(chunks[-1]) == b""
    assert decoder.eof and decoder.unused_data == b""
    # One member: gzip.decompress and a plain one-shot decode agree.
    assert zlib.decompress(b"".join(chunks), 31) == b"".join(EVENTS)


def test_an_empty_chunk_costs_nothing() -> None:
    assert GzipEncoder().encode(b"") == b""


def test_an_empty_stream_is_a_valid_empty_gzip_body() -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    response = gzip_response(StreamingResponse(nothing()), "gzip")
    messages = asyncio.run(request(response, http_scope()))
    assert zlib.decompress(body_of(messages), 31) == b""
    assert messages[-1]["more_body"] is False


def test_a_failing_generator_gets_no_trailer() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise RuntimeError("boom")

    async def main() -> list[dict[str, Any]]:
        response = gzip_response(StreamingResponse(failing()), "gzip")
        comm = ApplicationCommunicator(response, http_scope())
        await comm.send_input({"type": "http.request", "body": b""})
        messages = [await comm.receive_output(5), await comm.receive_output(5)]
        with pytest.raises(RuntimeError, match="boom"):
            await comm.wait(5)
        assert comm.output_queue.empty()  # no final message: the client sees an error
        return messages

    messages = asyncio.run(main())
    decoder = zlib.decompressobj(31)
    assert decoder.decompress(body_of(messages)) == b"data: 1\n\n"
    assert not decoder.eof


def test_heartbeats_go_through_the_same_compressor_in_order() -> None:
    """A ping is sent by a timer beside the generator; it must be compressed by the
    response's one compressor, between the events, or the gzip stream breaks."""
    go_on = asyncio.Event()

    async def quiet_then_done() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        await go_on.wait()  # silent: heartbeats are due
        yield b"data: last\n\n"

    async def main() -> bytes:
        response = gzip_response(StreamingResponse(quiet_then_done(), ping=0.01), "gzip")
        comm = ApplicationCommunicator(response, http_scope())
        await comm.send_input({"type": "http.request", "body": b""})
        decoder = zlib.decompressobj(31)
        text = b""
        await comm.receive_output(5)  # the headers
        while text.count(b": heartbeat") < 2:
            text += decoder.decompress((await comm.receive_output(5))["body"])
        go_on.set()
        while not decoder.eof:
            text += decoder.decompress((await comm.receive_output(5))["body"])
        await comm.wait(5)
        return text

    text = asyncio.run(main())
    assert text.startswith(b"data: first\n\n: heartbeat\n\n: heartbeat\n\n")
    assert text.endswith(b"data: last\n\n")


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
    assert len(bodies) == len(EVENTS) + 1  # the events, then the trailer with the end
    assert messages[-1]["more_body"] is False
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
