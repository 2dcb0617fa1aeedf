"""Property tests: no value can inject a header into a response, or an event or field into a stream.

``tests/test_sse.py`` proves it for :class:`ServerSentEvent` alone. This
module goes further, in the two places where a value meets the wire:

* **Response headers**, on a real server's wire bytes. uvicorn's httptools
  path writes header values without checking them, so whatever
  :func:`~asgi_stream.headers.encode_response_headers` lets through reaches
  the socket. Hypothesis sends hostile ``(name, value)`` pairs to a test
  endpoint that builds a :class:`Response` with them; the raw response head
  must then hold exactly the pairs given (or the app refused them with a
  400), and the body must be the body.
* **EventSourceResponse items of every kind**: str, :class:`ServerSentEvent`,
  dicts with ``event`` and ``id`` fields, pre-encoded bytes, mixed in one
  stream. The stream is parsed by the independent WHATWG parser of
  ``asgi_stream.testing``: exactly one event per item, with its own type, data
  and id, and no field that an item did not ask for. A dict item whose
  ``event`` or ``id`` holds a line break stops the stream with a
  ``ValueError`` (an error after the headers: the body ends incomplete), and
  nothing of it reaches the wire.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from asgi_stream import EventSourceResponse, ServerSentEvent
from asgi_stream.headers import CONNECTION_SPECIFIC, encode_response_headers
from asgi_stream.testing import parse_event_stream
from tests.asgi import http_scope
from tests.serving import ServerProcess

pytestmark = pytest.mark.server

# Text built from what breaks lines and fields, and from any character at all.
nasty = st.lists(
    st.sampled_from(["\r", "\n", "\r\n", "\0", ":", " ", "\t", "x", "event: a", "id", "é", "\x85"])
    | st.characters(exclude_categories=["Cs"]),  # a lone surrogate is no text at all
    max_size=12,
).map("".join)

# Names the server or the response set themselves, so a test pair may not use them.
OWNED = {"content-length", "content-type", "date", "server", "connection"}


def refused(name: str, value: str) -> bool:
    """Whether ``encode_response_headers`` must refuse the pair (independently computed)."""
    try:
        raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        return True
    token = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    # RFC 9110 §5.5: no control character in a value, but the tab.
    control = any((c < 0x20 and c != 0x09) or c == 0x7F for c in raw_value)
    return not raw_name or any(c not in token for c in raw_name) or control


@given(name=nasty, value=nasty)
def test_encode_response_headers_passes_a_pair_intact_or_refuses_it(name: str, value: str) -> None:
    try:
        encoded = encode_response_headers([(name, value)])
    except ValueError:
        assert refused(name, value)
        return
    assert not refused(name, value)
    if name.lower().encode() in CONNECTION_SPECIFIC:
        assert encoded == []  # dropped, with a warning
    else:
        assert encoded == [(name.lower().encode("latin-1"), value.encode("latin-1"))]


# On a real server's wire.


def raw_response(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while data := sock.recv(65536):
            response += data
    return response


# Pairs that may pass, so that many examples reach the wire, and half the time
# one hostile pair among them.
token = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", fullmatch=True)
latin1_text = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
fair_pair = st.tuples(token, st.text(latin1_text | st.just("\t"), max_size=12))
header_pairs = st.builds(
    lambda fair, hostile: fair + hostile,
    st.lists(fair_pair, min_size=1, max_size=3),
    st.lists(st.tuples(token | nasty, nasty), max_size=1),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pairs=header_pairs)
def test_no_header_value_or_name_can_inject_a_header(
    reliability_server: ServerProcess, pairs: list[tuple[str, str]]
) -> None:
    # The fixture serves on uvicorn with httptools, which writes header values unchecked.
    assume(all(name.lower() not in OWNED for name, _ in pairs))
    target = "/headers?pairs=" + quote(json.dumps(pairs))
    head, _, body = raw_response(reliability_server.port, target).partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    on_wire = []
    for line in lines:
        name, colon, value = line.partition(b":")
        assert colon, line
        on_wire.append((name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")))
    if any(refused(name, value) for name, value in pairs):
        event("refused")
        assert status_line.startswith(b"HTTP/1.1 400 ")
        assert body.endswith(b'{"detail":"refused"}')
        return
    event("sent")
    assert status_line.startswith(b"HTTP/1.1 200 ")
    assert body == b"body"
    expected = [
        (name.lower(), value.strip(" \t"))
        for name, value in pairs
        if name.lower().encode() not in CONNECTION_SPECIFIC
    ]
    ours = [(name, value) for name, value in on_wire if name not in OWNED]
    assert ours == expected


# EventSourceResponse, every kind of item.

fields = st.fixed_dictionaries(
    {"data": nasty},
    optional={"event": nasty, "id": nasty, "retry": st.integers(0, 10**6), "comment": nasty},
)
item = st.one_of(
    nasty,
    fields.map(lambda f: ("dict", f)),
    fields.map(lambda f: ("event", f)),
    fields.map(lambda f: ("bytes", f)),
)


def single_line(f: dict[str, Any]) -> bool:
    return not any(c in f.get("event", "") for c in "\r\n") and not any(
        c in f.get("id", "") for c in "\r\n\0"
    )


def as_item(spec: Any) -> Any:
    """The item a generator yields; the bytes kind is an event encoded in advance."""
    if isinstance(spec, str):
        return spec
    kind, f = spec
    if kind == "dict":
        return dict(f)
    if kind == "event":
        return ServerSentEvent(**f)
    return ServerSentEvent(**f).encode()


def run(items: list[Any]) -> tuple[bytes, BaseException | None]:
    """The body the response sent, and what it raised, if anything."""
    sent: list[bytes] = []
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        elif message["type"] == "http.response.body":
            sent.append(message["body"])

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def generate() -> Any:
        for each in items:
            yield each

    try:
        asyncio.run(EventSourceResponse(generate())(http_scope(), receive, send))
    except ValueError as exc:
        return b"".join(sent), exc
    if statuses == [500]:  # refused as the first item, before the headers: a JSON 500
        return b"", ValueError("answered with a 500")
    return b"".join(sent), None


@settings(max_examples=200)
@given(specs=st.lists(item, max_size=6))
def test_every_kind_of_item_gives_exactly_its_own_event(specs: list[Any]) -> None:
    # An event or id with a line break cannot even be built as a ServerSentEvent,
    # so only a dict item can carry one into the stream.
    specs = [s for s in specs if isinstance(s, str) or s[0] == "dict" or single_line(s[1])]
    body, error = run([as_item(s) for s in specs])
    parsed = parse_event_stream(body.decode("utf-8"))

    first_bad = next(
        (i for i, s in enumerate(specs) if not isinstance(s, str) and not single_line(s[1])),
        len(specs),
    )
    assert (error is None) == (first_bad == len(specs))
    sent = specs[:first_bad]  # the stream stops at the first item it refuses

    expected = []
    last_id = ""
    for s in sent:
        f = {"data": s} if isinstance(s, str) else s[1]
        last_id = f.get("id", last_id)
        data = f["data"].replace("\r\n", "\n").replace("\r", "\n")
        expected.append((f.get("event") or "message", data, last_id))
    assert [(e.type, e.data, e.last_event_id) for e in parsed.events] == expected

    def fields_named(name: str) -> int:
        return sum(1 for s in sent if not isinstance(s, str) and name in s[1])

    names = [name for name, _ in parsed.fields]
    assert set(names) <= {"data", "event", "id", "retry", ""}
    assert names.count("event") == fields_named("event")
    assert names.count("id") == fields_named("id")
    assert names.count("retry") == fields_named("retry")


def test_the_property_test_sees_a_forged_event_when_one_is_sent() -> None:
    # The check above can fail: a raw bytes item may say anything, and it shows.
    body, _ = run([b"data: a\n\nevent: forged\ndata: b\n\n"])
    assert [e.type for e in parse_event_stream(body.decode()).events] == ["message", "forged"]


def test_a_lone_surrogate_stops_the_stream_and_none_of_it_is_sent() -> None:
    body, error = run(["ok", "bad \ud800", "never"])
    assert isinstance(error, UnicodeEncodeError)
    assert [e.data for e in parse_event_stream(body.decode()).events] == ["ok"]
