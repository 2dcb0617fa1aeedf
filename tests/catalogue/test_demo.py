"""How the demo page is served, message by message (the browser tests drive the page itself)."""

from __future__ import annotations

import asyncio
from importlib import resources

import pytest

from asgi_stream import Router
from asgi_stream.catalogue import demo
from tests.asgi import body_of, headers_of, http_scope, request

STATIC = resources.files("asgi_stream.catalogue") / "static"


@pytest.fixture
def app() -> Router:
    router = Router()
    demo.install(router)
    return router


@pytest.mark.parametrize(
    ("path", "file", "content_type"),
    [
        ("/", "index.html", b"text/html; charset=utf-8"),
        ("/static/demo.js", "demo.js", b"text/javascript; charset=utf-8"),
        ("/static/demo.css", "demo.css", b"text/css; charset=utf-8"),
    ],
)
def test_serves_the_page_and_its_files(
    app: Router, path: str, file: str, content_type: bytes
) -> None:
    messages = asyncio.run(request(app, http_scope(path=path)))
    headers = headers_of(messages)
    assert messages[0]["status"] == 200
    assert body_of(messages) == (STATIC / file).read_bytes()
    assert headers[b"content-type"] == content_type
    # The browser itself refuses anything from another host, and inline scripts.
    assert headers[b"content-security-policy"] == b"default-src 'self'"
    assert headers[b"x-content-type-options"] == b"nosniff"


@pytest.mark.parametrize("name", ["..", ".", "missing.js", "index.html.bak", "__init__.py"])
def test_only_the_static_files_are_served(app: Router, name: str) -> None:
    messages = asyncio.run(request(app, http_scope(path=f"/static/{name}")))
    assert messages[0]["status"] == 404
    assert body_of(messages) == b'{"detail":"Not Found"}'


def test_head_sends_the_headers_only(app: Router) -> None:
    messages = asyncio.run(request(app, http_scope("HEAD", "/")))
    size = len((STATIC / "index.html").read_bytes())
    assert headers_of(messages)[b"content-length"] == str(size).encode()
    assert body_of(messages) == b""


def test_the_page_loads_nothing_from_another_host() -> None:
    page = (STATIC / "index.html").read_text()
    assert "//" not in page  # no http://, https:// or protocol-relative URL
    assert "<script>" not in page  # inline scripts would be refused by the CSP
