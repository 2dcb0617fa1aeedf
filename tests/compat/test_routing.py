"""What Starlette's routing tests check, for the parts of routing this library
claims: patterns and ``url_path_for``, mounts both ways (a Router inside
FastAPI, a Starlette app inside a Router) with ``url_for`` intact, the
trailing-slash redirect, HEAD and 405, and the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSON
from starlette.routing import Mount as StarletteMount
from starlette.routing import NoMatchFound as StarletteNoMatchFound
from starlette.routing import Route as StarletteRoute
from starlette.testclient import TestClient

from asgi_stream import NoMatchFound, Request, Router
from tests.asgi import body_of, http_scope, request


def site() -> Router:
    router = Router()

    @router.get("/users/{username}")
    async def user(request_: Request) -> dict[str, Any]:
        return {"user": request_.path_params["username"]}

    @router.get("/items/{item_id:int}", name="item")
    async def read_item(request_: Request) -> dict[str, Any]:
        return {"item_id": request_.path_params["item_id"]}

    @router.get("/files/{rest:path}")
    async def files(request_: Request) -> dict[str, Any]:
        return {"rest": request_.path_params["rest"]}

    return router


def get(app: Any, path: str, root_path: str = "", method: str = "GET") -> tuple[int, Any, Any]:
    scope = http_scope(method, path)
    scope["root_path"] = root_path
    messages = asyncio.run(request(app, scope))
    body = body_of(messages)
    with contextlib.suppress(ValueError):  # a Starlette app's plain-text errors stay bytes
        return messages[0]["status"], dict(messages[0]["headers"]), json.loads(body or b"null")
    return messages[0]["status"], dict(messages[0]["headers"]), body


def test_url_path_for_by_name_with_converted_parameters() -> None:
    router = site()
    assert router.url_path_for("user", username="ada") == "/users/ada"
    assert router.url_path_for("item", item_id=5) == "/items/5"
    assert router.url_path_for("files", rest="a/b c") == "/files/a/b%20c"
    assert router.url_path_for("user", username="a b") == "/users/a%20b"


@pytest.mark.parametrize(
    ("name", "params"),
    [("nowhere", {}), ("user", {}), ("user", {"username": "a", "extra": 1}), ("read_item", {})],
)
def test_an_unknown_name_or_other_parameters_is_no_match_found(
    name: str, params: dict[str, Any]
) -> None:
    with pytest.raises(NoMatchFound):
        site().url_path_for(name, **params)


def test_no_match_found_is_starlettes_too_when_starlette_is_loaded() -> None:
    with pytest.raises(StarletteNoMatchFound):
        site().url_path_for("nowhere")


@pytest.mark.parametrize(
    ("name", "params"), [("user", {"username": "a/b"}), ("item", {"item_id": -1})]
)
def test_a_value_the_route_would_not_match_is_a_value_error(
    name: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="not a valid"):
        site().url_path_for(name, **params)


def test_mounts_prefix_their_paths_and_a_name_scopes_them() -> None:
    router = Router()
    router.mount("/v1", site())
    router.mount("/v2", site(), name="v2")
    assert router.url_path_for("item", item_id=1) == "/v1/items/1"
    assert router.url_path_for("v2:item", item_id=1) == "/v2/items/1"
    assert router.url_path_for("v2", path="/static/a.css") == "/v2/static/a.css"


def hello_app() -> Starlette:
    async def hello(request_: StarletteRequest) -> StarletteJSON:
        return StarletteJSON(
            {"url": str(request_.url_for("hello")), "base": str(request_.base_url)}
        )

    return Starlette(routes=[StarletteRoute("/hello", hello, name="hello")])


@pytest.mark.parametrize("root_path", ["", "/api"])
def test_url_for_inside_a_starlette_app_mounted_in_a_router(root_path: str) -> None:
    router = Router()
    router.mount("/legacy", hello_app())
    status, _, body = get(router, f"{root_path}/legacy/hello", root_path)
    assert status == 200
    assert body["url"] == f"http://testserver{root_path}/legacy/hello"


def test_a_router_mounted_in_fastapi_keeps_url_for_working_for_fastapis_routes() -> None:
    app = FastAPI()
    app.mount("/stream", site())

    @app.get("/after")
    async def after(request_: StarletteRequest) -> dict[str, str]:
        return {
            "self": str(request_.url_for("after")),
            "ours": str(request_.url_for("item", item_id=3)),  # found inside the mount
        }

    status, _, body = get(app, "/after")
    assert status == 200
    assert body == {
        "self": "http://testserver/after",
        "ours": "http://testserver/stream/items/3",
    }
    # And our endpoints, mounted, use FastAPI's router for theirs.
    assert get(app, "/stream/items/4")[2] == {"item_id": 4}


def test_a_routers_own_url_for_from_inside_a_mount_in_fastapi() -> None:
    inner = Router()

    @inner.get("/where")
    async def where(request_: Request) -> dict[str, str]:
        return {"where": str(request_.url_for("where")), "docs": str(request_.url_for("docs"))}

    app = FastAPI()

    @app.get("/docs-page", name="docs")
    async def docs() -> dict[str, str]:
        return {}

    app.mount("/inner", inner)
    assert get(app, "/inner/where")[2] == {
        "where": "http://testserver/inner/where",
        "docs": "http://testserver/docs-page",
    }


@pytest.mark.parametrize(
    ("path", "location"),
    [("/users/ada/", "/users/ada"), ("/slashed", "/slashed/")],
)
def test_the_other_trailing_slash_is_a_redirect(path: str, location: str) -> None:
    router = site()
    router.add("/slashed/", lambda request_: {})
    scope = http_scope("GET", path, b"q=1")
    messages = asyncio.run(request(router, scope))
    assert messages[0]["status"] == 307
    assert dict(messages[0]["headers"])[b"location"] == f"{location}?q=1".encode()


def test_no_slash_redirect_where_nothing_would_match_or_a_fallback_serves() -> None:
    router = site()
    assert get(router, "/nothing/")[0] == 404
    router.mount("/", hello_app())
    assert get(router, "/users/ada/")[0] == 404  # the fallback's own 404, as with Starlette's Mount


def test_head_on_a_get_route_and_405_with_allow() -> None:
    router = site()
    status, _, body = get(router, "/users/ada", method="HEAD")
    assert (status, body) == (200, None)
    status, headers, body = get(router, "/users/ada", method="POST")
    assert (status, headers[b"allow"], body) == (
        405,
        b"GET, HEAD",
        {"detail": "Method Not Allowed"},
    )


def test_sync_and_async_lifespan_hooks_run_in_order() -> None:
    calls: list[str] = []

    async def async_up() -> None:
        calls.append("async up")

    router = Router(
        on_startup=[lambda: calls.append("sync up"), async_up],
        on_shutdown=[lambda: calls.append("sync down")],
    )
    with TestClient(router):
        assert calls == ["sync up", "async up"]
    assert calls == ["sync up", "async up", "sync down"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("phase", ["startup", "shutdown"])
def test_a_lifespan_failure_reaches_starlettes_test_client(phase: str) -> None:
    """Starlette re-raises after lifespan.*.failed; so do we, and the client
    raises instead of waiting for ever."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Router) -> Any:
        if phase == "startup":
            raise RuntimeError("startup broke")
        yield
        raise RuntimeError("shutdown broke")

    with pytest.raises(RuntimeError, match=f"{phase} broke"), TestClient(Router(lifespan=lifespan)):
        pass


def test_an_endpoint_error_is_a_logged_json_500_and_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A documented difference: Starlette re-raises after its 500."""
    router = Router()

    @router.get("/boom")
    async def boom(request_: Request) -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="asgi_stream"):
        status, _, body = get(router, "/boom")
    assert (status, body) == (500, {"detail": "Internal Server Error"})
    assert "ValueError: boom" in caplog.text


def scope_recorder(seen: list[dict[str, Any]]) -> Any:
    """A plain ASGI app (not a router) that notes the scope it is called with."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append({key: scope.get(key) for key in ("path", "root_path", "path_params")})
        await StarletteJSON({})(scope, receive, send)

    return app


def starlette_mounting(prefix: str, app: Any) -> Starlette:
    return Starlette(routes=[StarletteMount(prefix, app=app)])


def our_mounting(prefix: str, app: Any) -> Router:
    router = Router()
    router.mount(prefix, app)
    return router


@pytest.mark.parametrize("mounting", [starlette_mounting, our_mounting])
def test_a_mount_prefix_with_parameters_passes_them_in_path_params(mounting: Any) -> None:
    seen: list[dict[str, Any]] = []
    app = mounting("/users/{username}/v{version:int}", scope_recorder(seen))
    assert get(app, "/users/ada/v2/posts/7")[0] == 200
    assert seen == [
        {
            "path": "/users/ada/v2/posts/7",
            "root_path": "/users/ada/v2",
            "path_params": {"username": "ada", "version": 2},
        }
    ]


@pytest.mark.parametrize("mounting", [starlette_mounting, our_mounting])
def test_the_bare_mount_prefix_is_a_307_to_it_with_a_slash_for_any_app(mounting: Any) -> None:
    seen: list[dict[str, Any]] = []
    app = mounting("/users", scope_recorder(seen))
    status, headers, _ = get(app, "/users")
    assert status == 307
    assert headers[b"location"].decode().endswith("/users/")  # Starlette's is absolute
    assert seen == []  # the mounted app never saw it
    assert get(app, "/users/")[0] == 200


def test_a_router_in_a_mount_with_parameters_sees_them_and_builds_urls_with_them() -> None:
    inner = Router()

    @inner.get("/posts/{post_id:int}", name="post")
    async def post(request_: Request) -> dict[str, Any]:
        return {
            "params": request_.path_params,
            "url": str(request_.url_for("post", **request_.path_params)),
        }

    outer = Router()
    outer.mount("/users/{username}", inner)
    status, _, reply = get(outer, "/users/ada/posts/3")
    assert status == 200
    assert reply == {
        "params": {"username": "ada", "post_id": 3},
        "url": "http://testserver/users/ada/posts/3",
    }
    with pytest.raises(NoMatchFound):
        outer.url_path_for("post", post_id=3)  # the mount's parameter is missing
