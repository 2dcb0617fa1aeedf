"""What the comparison's client makes of a response: events, and a gzip body."""

from __future__ import annotations

import gzip

from asgi_stream.tools.measure import BodyDecoder, Measurement, parse_events


def test_events_are_parsed_as_a_browser_reads_them() -> None:
    stream = "data: a\r\ndata:b\r\n\r\n: heartbeat\n\nevent: error\nid: 7\ndata: x\n\n\n\ndata: par"
    assert parse_events(stream) == ["data: a\\nb", ": heartbeat", "event: error / id: 7 / data: x"]


def test_a_gzip_body_is_decoded_as_httpx_decodes_it() -> None:
    decoder = BodyDecoder("gzip")
    members = gzip.compress(b"data: 1\n\n") + gzip.compress(b"data: 2\n\n")
    assert decoder.decode(members[:5]) + decoder.decode(members[5:]) == "data: 1\n\n"


def test_a_header_is_all_its_values() -> None:
    measurement = Measurement(headers=[("vary", "a"), ("x", "1"), ("vary", "b")])
    assert measurement.header("vary") == "a, b"
    assert measurement.header("missing") == "-"
