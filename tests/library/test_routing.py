"""Router and Request: routes, errors as FastAPI's JSON, lifespan, websockets, input limits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import HTTPException, JSONResponse, Request, Router, StreamingResponse
from tests.asgi import body_of, headers_of, http_scope, request


def make_router() -> Router:
    router = Router(max_body_size=16)

    @router.get("/items/{item_id}/parts/{part}")
    async def item(request: Request) -> JSONResponse:
        return JSONResponse(request.path_params)

    @router.route("/echo", methods=["POST", "PUT"])
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"body": (await request.body()).decode(), "json": await request.json()})

    @router.get("/query")
    async def query(request: Request) -> JSONResponse:
        params = request.query_params
        return JSONResponse(
            {
                "tag": params.getlist("tag"),
                "last": params.get("tag"),
                "flag": params.get("flag"),
                "agent": request.headers.get("User-Agent"),
                "client": list(request.client or ()),
            }
        )

    @router.get("/teapot")
    async def teapot(request: Request) -> JSONResponse:
        raise HTTPException(418, "short and stout")

    @router.get("/broken")
    async def broken(request: Request) -> JSONResponse:
        raise RuntimeError("secret internals")

    @router.get("/endless")
    async def endless(request: Request) -> StreamingResponse:
        async def forever():
            while True:
                yield b"x"
                await asyncio.sleep(0)

        return StreamingResponse(forever())

    return router


def call(
    method: str, path: str, query: bytes = b"", body: bytes = b"", headers: Any = None
) -> tuple[int, dict[bytes, bytes], Any]:
    messages = asyncio.run(request(make_router(), http_scope(method, path, query, headers), body))
    raw = body_of(messages)
    return messages[0]["status"], headers_of(messages), json.loads(raw) if raw else None


def test_path_parameters() -> None:
    assert call("GET", "/items/42/parts/wheel") == (
        200,
        {b"content-length": b"31", b"content-type": b"application/json"},
        {"item_id": "42", "part": "wheel"},
    )


def test_unknown_path_is_404_with_fastapis_body() -> None:
    status, _, body = call("GET", "/nowhere")
    assert (status, body) == (404, {"detail": "Not Found"})


def test_a_parameter_matches_one_segment_only() -> None:
    assert call("GET", "/items/a/b/parts/c")[0] == 404


@pytest.mark.parametrize("method", ["DELETE", "BREW"])
def test_wrong_method_is_405_with_allow(method: str) -> None:
    status, headers, body = call(method, "/echo")
    assert (status, body) == (405, {"detail": "Method Not Allowed"})
    assert headers[b"allow"] == b"POST, PUT"


def test_get_routes_answer_head_without_running_the_stream() -> None:
    status, _, body = call("HEAD", "/endless")
    assert (status, body) == (200, None)
    assert call("POST", "/endless")[1][b"allow"] == b"GET, HEAD"


def test_http_exception_becomes_json() -> None:
    assert call("GET", "/teapot")[::2] == (418, {"detail": "short and stout"})


def test_an_endpoint_error_is_a_500_without_a_traceback_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="asgi_stream"):
        status, _, body = call("GET", "/broken")
    assert (status, body) == (500, {"detail": "Internal Server Error"})
    assert "secret internals" not in json.dumps(body)
    assert "secret internals" in caplog.text


class StarletteStyleError(Exception):
    """What a mounted framework raises: a ``status_code`` and a ``detail``."""

    def __init__(self, detail: Any) -> None:
        self.status_code = 404
        self.detail = detail


@pytest.mark.parametrize("detail", [{"when": object()}, float("nan")], ids=["object", "nan"])
@pytest.mark.parametrize("where", ["endpoint", "mount/"])
def test_an_error_whose_detail_is_not_json_is_a_logged_json_500(
    caplog: pytest.LogCaptureFixture, detail: Any, where: str
) -> None:
    # Not the server's plain-text 500: the client gets JSON whatever went wrong.
    router = Router()

    @router.get("/endpoint")
    async def endpoint(request: Request) -> None:
        raise HTTPException(409, detail)

    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        raise StarletteStyleError(detail)

    router.mount("/mount", mounted)
    with caplog.at_level(logging.ERROR, logger="asgi_stream"):
        messages = asyncio.run(request(router, http_scope("GET", f"/{where}")))
    assert messages[0]["status"] == 500
    assert json.loads(body_of(messages)) == {"detail": "Internal Server Error"}
    assert "could not be sent as JSON" in caplog.text


def test_query_parameters_keep_repeated_keys_and_headers_are_case_insensitive() -> None:
    _, _, body = call(
        "GET", "/query", b"tag=a&tag=b%20c&flag=YES", headers=[(b"User-Agent", b"pytest/1")]
    )
    assert body == {
        "tag": ["a", "b c"],
        "last": "b c",
        "flag": "YES",
        "agent": "pytest/1",
        "client": ["127.0.0.1", 50000],
    }


@pytest.mark.parametrize(
    ("query", "status"),
    [
        (b"tag=%ff%fe", 400),
        (b"tag=\xff", 400),  # raw bytes that are not UTF-8 (HTTP/2 lets them through)
        (b"tag=" + b"a" * 9000, 414),
        (b"tag=%zz", 200),
    ],
)
def test_hostile_query_strings_get_a_4xx_json(query: bytes, status: int) -> None:
    got, headers, body = call("GET", "/query", query)
    assert got == status
    assert headers[b"content-type"] == b"application/json"
    assert "detail" in body or status == 200


def test_raw_utf8_in_a_query_string_is_decoded() -> None:
    assert call("GET", "/query", "tag=é".encode())[2]["tag"] == ["é"]


def test_body_and_json() -> None:
    assert call("POST", "/echo", body=b'{"a": 1}')[::2] == (
        200,
        {"body": '{"a": 1}', "json": {"a": 1}},
    )


def test_a_body_over_the_limit_is_413() -> None:
    assert call("POST", "/echo", body=b"x" * 17)[::2] == (413, {"detail": "Request body too large"})


def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    status, _, _ = call("PUT", "/echo", headers=[(b"content-length", b"1000000")])
    assert status == 413


def test_a_client_that_leaves_while_sending_its_body_gets_no_answer_and_no_error_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        comm = ApplicationCommunicator(make_router(), http_scope("POST", "/echo"))
        await comm.send_input({"type": "http.request", "body": b"{", "more_body": True})
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(1)
        assert comm.future.exception() is None
        assert comm.output_queue.empty()

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert caplog.records == []


def test_json_nested_too_deep_is_400_not_500() -> None:
    router = Router()

    @router.post("/json")
    async def parse(request: Request) -> JSONResponse:
        return JSONResponse({"type": type(await request.json()).__name__})

    messages = asyncio.run(request(router, http_scope("POST", "/json"), b"[" * 200_000))
    assert messages[0]["status"] == 400


def test_a_body_that_is_not_json_is_400() -> None:
    assert call("POST", "/echo", body=b"{nope")[::2] == (
        400,
        {"detail": "Request body is not valid JSON"},
    )


def lifespan(router: Router) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        comm = ApplicationCommunicator(router, {"type": "lifespan", "asgi": {"version": "3.0"}})
        await comm.send_input({"type": "lifespan.startup"})
        replies = [await comm.receive_output(1)]
        if replies[0]["type"] == "lifespan.startup.complete":
            await comm.send_input({"type": "lifespan.shutdown"})
            replies.append(await comm.receive_output(1))
        await comm.wait(1)
        return replies

    return asyncio.run(main())


def test_lifespan_runs_the_hooks() -> None:
    calls = []

    async def up() -> None:
        calls.append("up")

    async def down() -> None:
        calls.append("down")

    replies = lifespan(Router(on_startup=[up], on_shutdown=[down]))
    assert replies == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]
    assert calls == ["up", "down"]


def failed_startup(router: Router) -> tuple[dict[str, Any], BaseException | None]:
    """The reply to lifespan.startup, and what the app then raised."""

    async def main() -> tuple[dict[str, Any], BaseException | None]:
        comm = ApplicationCommunicator(router, {"type": "lifespan", "asgi": {"version": "3.0"}})
        await comm.send_input({"type": "lifespan.startup"})
        reply = await comm.receive_output(1)
        with contextlib.suppress(Exception):
            await comm.wait(1)
        assert comm.future.done()
        return reply, comm.future.exception()

    return asyncio.run(main())


def test_a_failing_startup_hook_is_startup_failed_then_raised() -> None:
    """As Starlette does: the server logs the message (the traceback), and a
    server or test client waiting for the app to return sees the error."""

    async def up() -> None:
        raise RuntimeError("no database")

    reply, error = failed_startup(Router(on_startup=[up]))
    assert reply["type"] == "lifespan.startup.failed"
    assert "RuntimeError: no database" in reply["message"]
    assert isinstance(error, RuntimeError)


def test_websockets_are_refused_cleanly() -> None:
    async def main() -> dict[str, Any]:
        comm = ApplicationCommunicator(Router(), {"type": "websocket", "path": "/"})
        await comm.send_input({"type": "websocket.connect"})
        reply = await comm.receive_output(1)
        await comm.wait(1)
        assert comm.future.exception() is None
        return reply

    assert asyncio.run(main()) == {"type": "websocket.close", "code": 1008}


# Patterns: Starlette's converters, and a ValueError for what could never match.


@pytest.mark.parametrize(
    "path",
    [
        "items/{id}",  # no leading slash
        "/b/{x}-{x}",  # a name twice
        "/{1bad}",  # not an identifier
        "/{}",
        "/items/{id:integer}",  # unknown converter
        "/items/{id:}",
        "/items/{id",  # unbalanced
        "/items/id}",
        "/items/{{id}}",
    ],
)
def test_a_pattern_the_router_cannot_serve_is_refused_when_added(path: str) -> None:
    router = Router()
    with pytest.raises(ValueError, match="route path"):
        router.add(path, lambda request: {})
    assert router.routes == []


def converter_router() -> Router:
    router = Router()

    @router.get("/items/{item_id:int}")
    async def item(request: Request) -> JSONResponse:
        value = request.path_params["item_id"]
        return JSONResponse({"value": value, "type": type(value).__name__})

    @router.get("/prices/{amount:float}")
    async def price(request: Request) -> JSONResponse:
        value = request.path_params["amount"]
        return JSONResponse({"value": value, "type": type(value).__name__})

    @router.get("/users/{user:uuid}")
    async def user(request: Request) -> JSONResponse:
        value = request.path_params["user"]
        return JSONResponse({"value": str(value), "type": type(value).__name__})

    @router.get("/files/{rest:path}")
    async def files(request: Request) -> JSONResponse:
        return JSONResponse({"value": request.path_params["rest"], "type": "str"})

    @router.get("/tags/{tag:str}")
    async def tag(request: Request) -> JSONResponse:
        return JSONResponse({"value": request.path_params["tag"], "type": "str"})

    return router


@pytest.mark.parametrize(
    ("path", "value", "kind"),
    [
        ("/items/5", 5, "int"),
        ("/prices/2.5", 2.5, "float"),
        ("/prices/3", 3.0, "float"),
        (
            "/users/12345678-1234-5678-1234-567812345678",
            "12345678-1234-5678-1234-567812345678",
            "UUID",
        ),
        ("/files/a/b/c.txt", "a/b/c.txt", "str"),
        ("/tags/x", "x", "str"),
    ],
)
def test_converters_turn_the_segment_into_a_value(path: str, value: Any, kind: str) -> None:
    messages = asyncio.run(request(converter_router(), http_scope("GET", path)))
    assert messages[0]["status"] == 200
    assert json.loads(body_of(messages)) == {"value": value, "type": kind}


@pytest.mark.parametrize(
    "path",
    [
        "/items/x",
        "/items/{item_id:int}",  # the pattern is not literal text
        "/items/-1",
        "/items/" + "9" * 5000,  # beyond int()'s digit limit: no such item, not a 500
        "/prices/1e5",
        "/users/nope",
        "/tags/a/b",
    ],
)
def test_a_value_its_converter_refuses_is_404(path: str) -> None:
    messages = asyncio.run(request(converter_router(), http_scope("GET", path)))
    assert messages[0]["status"] == 404


# Behind a proxy: route on the path without the root path.


def rooted_scope(path: str, root_path: str) -> dict[str, Any]:
    scope = http_scope("GET", path)
    scope["root_path"] = root_path
    return scope


@pytest.mark.parametrize(
    "path",
    [
        "/api/items/42/parts/wheel",  # uvicorn: the root path in front of the path
        "/items/42/parts/wheel",  # hypercorn: the path as the client sent it
    ],
)
def test_routing_ignores_the_root_path(path: str) -> None:
    messages = asyncio.run(request(make_router(), rooted_scope(path, "/api")))
    assert messages[0]["status"] == 200
    assert json.loads(body_of(messages)) == {"item_id": "42", "part": "wheel"}


def test_only_a_whole_segment_of_root_path_is_taken_off() -> None:
    router = Router()
    router.add("/apiary", lambda request: {"bees": True})
    messages = asyncio.run(request(router, rooted_scope("/apiary", "/api")))
    assert (messages[0]["status"], json.loads(body_of(messages))) == (200, {"bees": True})


def test_the_bare_root_path_redirects_to_its_slash() -> None:
    messages = asyncio.run(request(make_router(), rooted_scope("/api", "/api")))
    assert messages[0]["status"] == 307
    assert headers_of(messages)[b"location"] == b"/api/"


# Endpoints as FastAPI users write them.


def natural_router() -> Router:
    router = Router()

    @router.get("/sync")
    def sync(request: Request) -> dict[str, Any]:
        return {"thread": threading.current_thread().name, "q": request.query_params.get("q")}

    @router.get("/list")
    async def as_list(request: Request) -> list[int]:
        return [1, 2]

    @router.get("/number")
    async def number(request: Request) -> int:
        return 5

    @router.get("/forgot")
    def forgot(request: Request) -> None:
        pass

    @router.get("/unserialisable")
    async def unserialisable(request: Request) -> dict[str, Any]:
        return {"x": object()}

    return router


def test_a_sync_endpoint_runs_in_the_thread_pool_and_its_dict_is_json() -> None:
    messages = asyncio.run(request(natural_router(), http_scope("GET", "/sync", b"q=1")))
    assert messages[0]["status"] == 200
    assert headers_of(messages)[b"content-type"] == b"application/json"
    body = json.loads(body_of(messages))
    assert body["thread"].startswith("asgi-stream")
    assert body["q"] == "1"


def test_a_returned_list_is_json() -> None:
    messages = asyncio.run(request(natural_router(), http_scope("GET", "/list")))
    assert (messages[0]["status"], body_of(messages)) == (200, b"[1,2]")


@pytest.mark.parametrize(("path", "kind"), [("/number", "int"), ("/forgot", "NoneType")])
def test_any_other_return_is_a_json_500_and_one_log_line_naming_endpoint_and_type(
    path: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="asgi_stream"):
        messages = asyncio.run(request(natural_router(), http_scope("GET", path)))
    assert messages[0]["status"] == 500
    assert json.loads(body_of(messages)) == {"detail": "Internal Server Error"}
    [record] = caplog.records
    name = path.strip("/")
    assert f"natural_router.<locals>.{name} returned {kind}" in record.getMessage()
    assert record.exc_info is None


def test_a_dict_that_is_not_json_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="asgi_stream"):
        messages = asyncio.run(request(natural_router(), http_scope("GET", "/unserialisable")))
    assert messages[0]["status"] == 500
    assert "not JSON serializable" in caplog.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_put_delete_and_patch_decorators(method: str) -> None:
    router = Router()
    decorator = getattr(router, method.lower())

    @decorator("/thing")
    async def thing(request: Request) -> dict[str, str]:
        return {"method": request.method}

    messages = asyncio.run(request(router, http_scope(method, "/thing")))
    assert json.loads(body_of(messages)) == {"method": method}
    assert asyncio.run(request(router, http_scope("GET", "/thing")))[0]["status"] == 405


# Lifespan: Starlette's context manager, next to the hooks.


def test_lifespan_context_manager_runs_inside_the_hooks_and_its_state_reaches_requests() -> None:
    calls = []

    async def up() -> None:
        calls.append("hook up")

    async def down() -> None:
        calls.append("hook down")

    @contextlib.asynccontextmanager
    async def lifespan(app: Router) -> Any:
        calls.append("enter")
        yield {"db": "connected"}
        calls.append("exit")

    router = Router(on_startup=[up], on_shutdown=[down], lifespan=lifespan)

    async def main() -> list[dict[str, Any]]:
        state: dict[str, Any] = {}
        comm = ApplicationCommunicator(
            router, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
        )
        await comm.send_input({"type": "lifespan.startup"})
        replies = [await comm.receive_output(1)]
        assert state == {"db": "connected"}
        assert calls == ["hook up", "enter"]
        await comm.send_input({"type": "lifespan.shutdown"})
        replies.append(await comm.receive_output(1))
        await comm.wait(1)
        return replies

    assert asyncio.run(main()) == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]
    assert calls == ["hook up", "enter", "exit", "hook down"]


def test_a_lifespan_that_fails_to_start_is_startup_failed() -> None:
    @contextlib.asynccontextmanager
    async def no_database(app: Router) -> Any:
        raise RuntimeError("no database")
        yield

    reply, error = failed_startup(Router(lifespan=no_database))
    assert reply["type"] == "lifespan.startup.failed"
    assert "RuntimeError: no database" in reply["message"]  # the traceback, for the server's log
    assert isinstance(error, RuntimeError)


def test_partials_and_objects_with_an_async_call_are_awaited_not_threaded() -> None:
    async def greet(greeting: str, request: Request) -> dict[str, str]:
        return {"thread": threading.current_thread().name, "greeting": greeting}

    class Endpoint:
        async def __call__(self, request: Request) -> dict[str, str]:
            return {"thread": threading.current_thread().name, "greeting": "hey"}

    router = Router()
    router.add("/partial", functools.partial(greet, "hi"))
    router.add("/object", Endpoint())
    for path, greeting in [("/partial", "hi"), ("/object", "hey")]:
        body = json.loads(body_of(asyncio.run(request(router, http_scope("GET", path)))))
        assert body == {"thread": "MainThread", "greeting": greeting}
