"""The Router with the rest of the ecosystem: mounted sub-applications (another
Router, Starlette, FastAPI, Starlette's StaticFiles) and Starlette's CORSMiddleware."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSON
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles

from asgi_stream import Request, Router, StreamingResponse
from asgi_stream.testing import stream
from tests.asgi import body_of, headers_of, http_scope, request


def where(request: Request) -> dict[str, Any]:
    return {"url": request.url, "base": request.base_url, "root": request.scope["root_path"]}


def site(tmp_path: Path) -> Router:
    child = Router()
    child.add("/where", where)

    async def starlette_where(request: StarletteRequest) -> StarletteJSON:
        return StarletteJSON({"path": request.url.path, "root": request.scope["root_path"]})

    fastapi = FastAPI()

    @fastapi.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    (tmp_path / "hello.txt").write_text("hello")
    router = Router()
    router.add("/where", where)
    router.mount("/child", child)
    router.mount("/starlette", Starlette(routes=[StarletteRoute("/where", starlette_where)]))
    router.mount("/fastapi", fastapi)
    router.mount("/files", StaticFiles(directory=tmp_path))
    return router


def get(app: Any, path: str, root_path: str = "") -> tuple[int, bytes]:
    scope = http_scope("GET", path)
    scope["root_path"] = root_path
    messages = asyncio.run(request(app, scope))
    return messages[0]["status"], body_of(messages)


@pytest.mark.parametrize(
    ("path", "root_path"),
    [("/child/where", ""), ("/api/child/where", "/api"), ("/child/where", "/api")],
)
def test_a_mounted_router_sees_the_prefix_in_its_root_path(
    tmp_path: Path, path: str, root_path: str
) -> None:
    status, body = get(site(tmp_path), path, root_path)
    assert status == 200
    assert json.loads(body) == {
        "url": f"http://testserver{root_path}/child/where",
        "base": f"http://testserver{root_path}/",  # the top application's, as in Starlette
        "root": f"{root_path}/child",
    }


def test_mounted_starlette_fastapi_and_static_files(tmp_path: Path) -> None:
    app = site(tmp_path)
    assert json.loads(get(app, "/starlette/where")[1]) == {
        "path": "/starlette/where",
        "root": "/starlette",
    }
    assert get(app, "/fastapi/items/7") == (200, b'{"item_id":7}')
    assert get(app, "/fastapi/items/x")[0] == 422
    assert get(app, "/files/hello.txt") == (200, b"hello")
    # StaticFiles raises Starlette's HTTPException, which Starlette's app would answer.
    assert get(app, "/files/missing.txt") == (404, b'{"detail":"Not Found"}')
    assert get(app, "/where")[0] == 200
    assert get(app, "/childish")[0] == 404  # a mount owns whole segments only


@pytest.mark.parametrize("prefix", ["child", "/child/", "/{path}", "//"])
def test_a_bad_mount_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="mount prefix"):
        Router().mount(prefix, Router())


def test_an_app_mounted_at_the_root_serves_what_no_route_serves(tmp_path: Path) -> None:
    # What Starlette and FastAPI users write for a site next to an API. The
    # mount comes first here, and still does not hide the routes after it.
    (tmp_path / "index.html").write_text("<h1>site</h1>")
    (tmp_path / "app.js").write_text("go()")
    router = Router()
    router.mount("/", StaticFiles(directory=tmp_path, html=True))
    router.add("/api/items", lambda request: {"items": []})
    router.mount("/files", StaticFiles(directory=tmp_path))

    assert get(router, "/") == (200, b"<h1>site</h1>")
    assert get(router, "/app.js") == (200, b"go()")
    assert get(router, "/api/items") == (200, b'{"items":[]}')
    assert get(router, "/files/app.js") == (200, b"go()")
    assert get(router, "/missing.js") == (404, b'{"detail":"Not Found"}')  # StaticFiles' 404
    post = asyncio.run(request(router, http_scope("POST", "/api/items")))
    assert (post[0]["status"], headers_of(post)[b"allow"]) == (405, b"GET, HEAD")
    # Behind a proxy's prefix, the mounted app sees it in its root_path.
    assert get(router, "/site/app.js", root_path="/site") == (200, b"go()")
    with pytest.raises(ValueError, match="already mounted at '/'"):
        router.mount("/", Router())


# CORS: Starlette's middleware around the Router.


def cors_app(finally_ran: asyncio.Event | None = None) -> CORSMiddleware:
    router = Router()

    @router.get("/events")
    async def events(request: Request) -> StreamingResponse:
        async def endless() -> AsyncIterator[str]:
            try:
                while True:
                    yield "data: tick\n\n"
                    await asyncio.sleep(0.001)
            finally:
                if finally_ran is not None:
                    finally_ran.set()

        return StreamingResponse(endless(), media_type="text/event-stream")

    return CORSMiddleware(
        router, allow_origins=["https://app.example"], allow_methods=["GET"], allow_headers=["*"]
    )


def test_cors_preflight_is_200_with_the_allow_headers() -> None:
    headers = [
        (b"host", b"testserver"),
        (b"origin", b"https://app.example"),
        (b"access-control-request-method", b"GET"),
        (b"access-control-request-headers", b"last-event-id"),
    ]
    messages = asyncio.run(request(cors_app(), http_scope("OPTIONS", "/events", headers=headers)))
    assert messages[0]["status"] == 200
    sent = headers_of(messages)
    assert sent[b"access-control-allow-origin"] == b"https://app.example"
    assert b"GET" in sent[b"access-control-allow-methods"]


def test_a_stream_through_cors_gets_its_header_and_stops_on_disconnect() -> None:
    async def main() -> dict[bytes, bytes]:
        finally_ran = asyncio.Event()
        headers = [(b"host", b"testserver"), (b"origin", b"https://app.example")]
        app = cors_app(finally_ran)
        async with stream(app, "GET", "/events", headers=headers, close_timeout=2) as response:
            assert await response.read_chunk() == b"data: tick\n\n"
        assert finally_ran.is_set()  # by the time the app returned, which leaving waits for
        return dict(response.headers.raw)

    sent = asyncio.run(main())
    assert sent[b"access-control-allow-origin"] == b"https://app.example"


def test_a_mounted_app_that_fails_before_answering_is_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("secret")

    router = Router()
    router.mount("/broken", broken)
    assert get(router, "/broken/x") == (500, b'{"detail":"Internal Server Error"}')
    assert "mounted app failed: GET /broken/x" in caplog.text


def test_the_bare_prefix_of_a_mount_redirects_keeping_root_path_and_query() -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the mounted app must not see its bare prefix")

    router = Router()
    router.mount("/users", plain)
    scope = http_scope("POST", "/api/users", b"page=2")
    scope["root_path"] = "/api"
    messages = asyncio.run(request(router, scope))
    assert messages[0]["status"] == 307  # the method and body are kept, as for Starlette's
    assert headers_of(messages)[b"location"] == b"/api/users/?page=2"


def test_a_route_at_a_mounts_prefix_serves_it_whichever_came_first() -> None:
    router = Router()
    router.mount("/users", Router())
    router.add("/users", lambda request: {"list": []})
    assert get(router, "/users") == (200, b'{"list":[]}')


def test_a_mount_with_parameters_builds_its_urls_with_them() -> None:
    child = Router()
    child.add("/posts/{post_id:int}", lambda request: {}, name="post")
    router = Router()
    router.mount("/users/{username}", child, name="user")
    assert router.url_path_for("user:post", username="a b", post_id=1) == "/users/a%20b/posts/1"
    assert router.url_path_for("user", username="ada", path="/a.css") == "/users/ada/a.css"
    with pytest.raises(ValueError):
        router.url_path_for("user:post", username="a/b", post_id=1)  # would not match


def test_a_mount_parameter_that_does_not_convert_matches_nothing() -> None:
    router = Router()
    router.mount("/v{version:int}", Router())
    assert get(router, "/v" + "9" * 5000 + "/x")[0] == 404  # int() refuses it: no match, not a 500
