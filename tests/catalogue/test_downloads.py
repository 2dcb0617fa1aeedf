"""The catalogue's download: the listing, the file, a resumed range, no way out."""

from __future__ import annotations

import asyncio
import hashlib
import json

from asgi_stream.catalogue import Settings, create_app
from asgi_stream.catalogue.downloads import SAMPLE_NAME, SAMPLE_SIZE
from tests.asgi import body_of, headers_of, http_scope, request


def test_the_sample_is_listed_sent_and_resumed() -> None:
    app = create_app(Settings(tick=0.001))
    listing = json.loads(body_of(asyncio.run(request(app, http_scope(path="/download")))))
    (sample,) = listing["files"]
    assert (sample["name"], sample["size"]) == (SAMPLE_NAME, SAMPLE_SIZE)

    whole = asyncio.run(request(app, http_scope(path=f"/download/{SAMPLE_NAME}")))
    data = body_of(whole)
    assert hashlib.sha256(data).hexdigest() == sample["sha256"]
    headers = headers_of(whole)
    assert headers[b"content-disposition"] == b'attachment; filename="sample.bin"'

    resume = [(b"range", b"bytes=1000-"), (b"if-range", headers[b"etag"])]
    part = asyncio.run(request(app, http_scope(path=f"/download/{SAMPLE_NAME}", headers=resume)))
    assert part[0]["status"] == 206 and body_of(part) == data[1000:]


def test_no_other_file_can_be_downloaded() -> None:
    app = create_app(Settings(tick=0.001))
    for path in ["/download/..", "/download/missing.bin", "/download/%2e%2e"]:
        messages = asyncio.run(request(app, http_scope(path=path)))
        assert messages[0]["status"] == 404, path
        assert json.loads(body_of(messages)) == {"detail": "Not Found"}
