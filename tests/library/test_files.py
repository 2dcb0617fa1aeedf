"""FileResponse on the ASGI wire: validators, conditional requests, ranges, endings.

The first group retells Starlette's own FileResponse tests (its
tests/test_responses.py) in our words; where we differ on purpose
(docs/differences.rst) the test says what we send instead. The rest pin down
the table in asgi_stream/files.py and every way a file's stream ends.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import BackgroundTask, FileResponse, HTTPException, Route, Router
from asgi_stream import files as files_module
from asgi_stream.files import FileChangedError, parse_range
from tests.asgi import body_of, http_scope, request

CONTENT = bytes(range(256)) * 40  # 10,240 bytes, every offset distinguishable


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "data.bin"
    target.write_bytes(CONTENT)
    return target


def get(
    app: Any, method: str = "GET", extensions: dict[str, Any] | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes, list[dict[str, Any]]]:
    """Status, headers (last value per name), body and the messages of one request."""
    raw = [(b"host", b"testserver")]
    raw += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    scope = http_scope(method, headers=raw)
    if extensions is not None:
        scope["extensions"] = extensions
    messages = asyncio.run(exchange(app, scope))
    found = {name.decode(): value.decode() for name, value in messages[0]["headers"]}
    return messages[0]["status"], found, body_of(messages), messages


async def exchange(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Every message the app sends until it returns (a pathsend has no final body)."""
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    await comm.wait(5)
    messages = []
    while not comm.output_queue.empty():
        messages.append(comm.output_queue.get_nowait())
    return messages


def etag_of(path: Path) -> str:
    return get(FileResponse(path))[1]["etag"]


# Starlette's tests, retold.


def test_the_whole_file_with_its_headers_and_background(path: Path) -> None:
    ran = []
    response = FileResponse(
        path, filename="example.png", background=BackgroundTask(ran.append, "done")
    )
    status, headers, body, _ = get(response)
    assert (status, body, ran) == (200, CONTENT, ["done"])
    assert headers["content-type"] == "image/png"
    assert headers["content-length"] == str(len(CONTENT))
    assert headers["content-disposition"] == 'attachment; filename="example.png"'
    assert headers["accept-ranges"] == "bytes"
    stat = path.stat()
    assert headers["last-modified"] == email.utils.formatdate(stat.st_mtime, usegmt=True)
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', headers["etag"])


def test_head_sends_the_headers_and_no_body(path: Path) -> None:
    status, headers, body, messages = get(FileResponse(path), "HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(CONTENT))
    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_media_type_given_and_guessed(path: Path) -> None:
    assert get(FileResponse(path, media_type="image/jpeg"))[1]["content-type"] == "image/jpeg"
    assert get(FileResponse(path))[1]["content-type"] == "application/octet-stream"
    text = path.with_name("notes.txt")
    text.write_text("hi")
    assert get(FileResponse(text))[1]["content-type"] == "text/plain; charset=utf-8"


def test_a_directory_or_a_missing_file_is_a_404_not_a_traceback(path: Path) -> None:
    # Starlette raises RuntimeError (a 500); we answer as a missing route would.
    for target in (path.parent, path.parent / "missing.bin", path / "below"):
        status, headers, body, _ = get(FileResponse(target))
        assert (status, body) == (404, b'{"detail":"Not Found"}')
        assert headers["content-type"] == "application/json"


def test_a_non_ascii_filename_has_an_rfc_5987_filename_star(path: Path) -> None:
    headers = get(FileResponse(path, filename="你好.txt"))[1]
    assert headers["content-disposition"] == (
        "attachment; filename=\"__.txt\"; filename*=UTF-8''%E4%BD%A0%E5%A5%BD.txt"
    )


def test_inline_disposition(path: Path) -> None:
    headers = get(FileResponse(path, filename="hello.txt", content_disposition_type="inline"))[1]
    assert headers["content-disposition"] == 'inline; filename="hello.txt"'


def test_a_given_stat_result_sets_the_headers_at_once(path: Path) -> None:
    response = FileResponse(path, stat_result=path.stat())
    assert response.headers["content-length"] == str(len(CONTENT))
    assert get(response)[2] == CONTENT


def test_one_range(path: Path) -> None:
    status, headers, body, _ = get(FileResponse(path), range="bytes=100-199")
    assert (status, body) == (206, CONTENT[100:200])
    assert headers["content-range"] == f"bytes 100-199/{len(CONTENT)}"
    assert headers["content-length"] == "100"


def test_one_range_on_head(path: Path) -> None:
    status, headers, body, _ = get(FileResponse(path), "HEAD", range="bytes=100-199")
    assert (status, body, headers["content-length"]) == (206, b"", "100")


def test_suffix_open_and_clamped_ranges(path: Path) -> None:
    size = len(CONTENT)
    for spec, expected in [
        ("-500", CONTENT[-500:]),
        ("10000-", CONTENT[10000:]),
        ("10000-999999", CONTENT[10000:]),
        (f"-{size * 3}", CONTENT),
        ("0-0", CONTENT[:1]),
    ]:
        status, _, body, _ = get(FileResponse(path), range=f"bytes={spec}")
        assert (status, body) == (206, expected), spec


def parts_of(headers: dict[str, str], body: bytes) -> list[tuple[str, bytes]]:
    """The (Content-Range, data) of each part of a multipart/byteranges body."""
    boundary = headers["content-type"].split("boundary=")[1].encode()
    assert body.endswith(b"--" + boundary + b"--\r\n")
    found = []
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        content_range = re.search(rb"content-range: (.*)\r\n", head + b"\r\n")
        assert content_range is not None
        found.append((content_range.group(1).decode(), data[:-2]))
    return found


def test_several_ranges_are_multipart_byteranges(path: Path) -> None:
    status, headers, body, _ = get(FileResponse(path), range="bytes=0-9, 500-599,-10")
    assert status == 206
    assert headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert headers["content-length"] == str(len(body))
    size = len(CONTENT)
    assert parts_of(headers, body) == [
        (f"bytes 0-9/{size}", CONTENT[:10]),
        (f"bytes 500-599/{size}", CONTENT[500:600]),
        (f"bytes {size - 10}-{size - 1}/{size}", CONTENT[-10:]),
    ]


def test_overlapping_and_adjacent_ranges_are_merged(path: Path) -> None:
    status, headers, body, _ = get(FileResponse(path), range="bytes=0-50,20-100,101-120")
    assert (status, body, headers["content-range"]) == (206, CONTENT[:121], "bytes 0-120/10240")
    status, headers, body, _ = get(FileResponse(path), range="bytes=300-400,0-10,5-20")
    assert [r for r, _ in parts_of(headers, body)] == ["bytes 0-20/10240", "bytes 300-400/10240"]


def test_a_range_past_the_end_is_416_with_the_size(path: Path) -> None:
    status, headers, body, _ = get(FileResponse(path), range="bytes=20000-")
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(CONTENT)}"
    assert body == b'{"detail":"Range Not Satisfiable"}'


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-99",  # end before start: Starlette answers 400
        "items=0-10",  # not bytes: Starlette answers 400
        "bytes=",  # no range: Starlette answers 400
        "bytes=-",
        "bytes=a-b",
        "bytes 0-10",
        "bytes=0-10;x",
        "bytes=１-２",
    ],
)
def test_a_malformed_range_is_ignored(path: Path, header: str) -> None:
    status, headers, body, _ = get(FileResponse(path), range=header)
    assert (status, body) == (200, CONTENT)
    assert "content-range" not in headers


def test_too_many_ranges_are_ignored(path: Path) -> None:
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 2 * 101, 2))
    assert get(FileResponse(path), range=header)[0] == 200
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 2 * 100, 2))
    assert get(FileResponse(path), range=header)[0] == 206


def test_small_chunks_still_make_every_part(path: Path) -> None:
    response = FileResponse(path)
    response.chunk_size = 7
    _, headers, body, messages = get(response, range="bytes=0-99,200-299")
    assert [data for _, data in parts_of(headers, body)] == [CONTENT[:100], CONTENT[200:300]]
    assert len(messages) > 20


def test_pathsend_gets_the_whole_file_and_ranges_do_not(path: Path) -> None:
    pathsend = {"http.response.pathsend": {}}
    _, _, _, messages = get(FileResponse(path), extensions=pathsend)
    assert messages[1] == {"type": "http.response.pathsend", "path": str(path)}
    assert len(messages) == 2
    status, _, body, _ = get(FileResponse(path), extensions=pathsend, range="bytes=0-9")
    assert (status, body) == (206, CONTENT[:10])
    _, _, body, messages = get(FileResponse(path), "HEAD", extensions=pathsend)
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]


def test_zerocopysend_gets_an_open_file_and_closes_it(path: Path) -> None:
    _, _, _, messages = get(FileResponse(path), extensions={"http.response.zerocopysend": {}})
    message = messages[1]
    assert message["type"] == "http.response.zerocopysend"
    assert (message["offset"], message["count"], message["more_body"]) == (0, len(CONTENT), False)
    assert message["file"].name == str(path) and message["file"].closed


# Conditional requests.


def test_if_none_match_gives_304_without_a_body(path: Path) -> None:
    etag = etag_of(path)
    for value in (etag, f'"other", W/{etag}', "*"):
        status, headers, body, _ = get(FileResponse(path, filename="a.bin"), if_none_match=value)
        assert (status, body, headers["etag"]) == (304, b"", etag), value
        assert not {"content-length", "content-type", "content-disposition"} & set(headers)
    assert get(FileResponse(path), if_none_match='"other"')[0] == 200


def test_if_modified_since(path: Path) -> None:
    modified = path.stat().st_mtime
    later = email.utils.formatdate(modified + 60, usegmt=True)
    earlier = email.utils.formatdate(modified - 60, usegmt=True)
    assert get(FileResponse(path), if_modified_since=later)[0] == 304
    assert get(FileResponse(path), if_modified_since=earlier)[0] == 200
    assert get(FileResponse(path), if_modified_since="not a date")[0] == 200
    # If-None-Match wins: a different tag means a changed file, whatever the date says.
    assert get(FileResponse(path), if_modified_since=later, if_none_match='"x"')[0] == 200


def test_if_match_and_if_unmodified_since_give_412(path: Path) -> None:
    etag = etag_of(path)
    assert get(FileResponse(path), if_match=etag)[0] == 200
    assert get(FileResponse(path), if_match=f"W/{etag}")[0] == 412  # strong comparison
    assert get(FileResponse(path), if_match='"other"')[2] == b'{"detail":"Precondition Failed"}'
    earlier = email.utils.formatdate(path.stat().st_mtime - 60, usegmt=True)
    assert get(FileResponse(path), if_unmodified_since=earlier)[0] == 412


def test_if_range_decides_between_206_and_the_whole_file(path: Path) -> None:
    etag = etag_of(path)
    last_modified = get(FileResponse(path))[1]["last-modified"]
    for value, expected in [
        (etag, 206),
        (last_modified, 206),
        ('"other"', 200),
        (f"W/{etag}", 200),
        (email.utils.formatdate(0, usegmt=True), 200),
    ]:
        status, _, body, _ = get(FileResponse(path), range="bytes=5-", if_range=value)
        assert (status, body) == (expected, CONTENT[5:] if expected == 206 else CONTENT), value


def test_another_status_skips_ranges_and_validators(path: Path) -> None:
    status, _, body, _ = get(FileResponse(path, status_code=404), range="bytes=0-1")
    assert (status, body) == (404, CONTENT)


def test_the_etag_changes_with_the_file(path: Path) -> None:
    before = etag_of(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert etag_of(path) != before


def test_parse_range_never_builds_more_than_the_file() -> None:
    assert parse_range("bytes=0-" + "9" * 5000, 10, 100) == [(0, 10)]
    assert parse_range("bytes=" + "9" * 5000 + "-", 10, 100) == []
    assert parse_range("bytes=" + ",".join(["0-"] * 100), 10, 100) == [(0, 10)]
    assert parse_range("bytes=0-1", 0, 100) == []  # nothing of an empty file


# Header injection through the name.


def test_a_filename_cannot_inject_a_header(path: Path) -> None:
    response = FileResponse(path, filename='evil\r\nSet-Cookie: x=1; "q".txt')
    (value,) = [v for n, v in response.raw_headers if n == b"content-disposition"]
    assert b"\r" not in value and b"\n" not in value
    assert value.endswith(b"filename*=UTF-8''evil%0D%0ASet-Cookie%3A%20x%3D1%3B%20%22q%22.txt")
    with pytest.raises(ValueError, match="content_disposition_type"):
        FileResponse(path, filename="a", content_disposition_type="attachment\r\nX: 1")


# Directories of files.


def test_from_directory_refuses_every_way_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "in.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    (root / "link-out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "link-in.txt").symlink_to(root / "sub" / "in.txt")

    def endpoint(request: Any) -> FileResponse:
        return FileResponse.from_directory(root, request.path_params["name"])

    app = Router([Route("/files/{name:path}", endpoint, ["GET"])])
    assert FileResponse.from_directory(root, "sub/in.txt").path == str(root / "sub" / "in.txt")
    assert FileResponse.from_directory(root, "link-in.txt").path.endswith("in.txt")
    for name in ["../secret.txt", "sub/../../secret.txt", str(tmp_path / "secret.txt"),
                 "link-out.txt", "sub", "", "missing.txt", "a\x00b"]:  # fmt: skip
        with pytest.raises(HTTPException) as raised:
            FileResponse.from_directory(root, name)
        assert raised.value.status_code == 404, name
    messages = asyncio.run(request(app, http_scope(path="/files/sub/../../secret.txt")))
    assert messages[0]["status"] == 404 and body_of(messages) == b'{"detail":"Not Found"}'


# Every ending closes the file.


class Opened:
    """Records every file the module opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.files: list[Any] = []
        monkeypatch.setattr(files_module, "open", self.open, raising=False)

    def open(self, *args: Any, **kwargs: Any) -> Any:
        file = open(*args, **kwargs)  # noqa: SIM115 (closed by the code under test)
        self.files.append(file)
        return file


def test_head_and_304_open_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Opened(monkeypatch)
    get(FileResponse(path), "HEAD")
    get(FileResponse(path), "HEAD", range="bytes=0-1,5-6")
    get(FileResponse(path), if_none_match="*")
    assert opened.files == []
    get(FileResponse(path))
    assert len(opened.files) == 1 and opened.files[0].closed


def test_a_client_that_leaves_stops_the_read_and_closes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as file:
        file.truncate(64 * 1024 * 1024)
    opened = Opened(monkeypatch)

    async def scenario() -> int:
        comm = ApplicationCommunicator(FileResponse(big), http_scope())
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await comm.receive_output(5))["type"] == "http.response.start"
        assert (await comm.receive_output(5))["more_body"] is True
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(5)
        sent = 1
        while not comm.output_queue.empty():
            message = comm.output_queue.get_nowait()
            assert message.get("more_body") is not False  # never "complete"
            sent += 1
        return sent

    sent = asyncio.run(scenario())
    assert sent < 64 * 1024 * 1024 // FileResponse.chunk_size // 2
    assert len(opened.files) == 1 and opened.files[0].closed


def test_a_file_that_changes_mid_stream_ends_the_body_unfinished(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = Opened(monkeypatch)
    response = FileResponse(path)
    response.chunk_size = 1000

    async def scenario() -> list[dict[str, Any]]:
        comm = ApplicationCommunicator(response, http_scope())
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        messages = [await comm.receive_output(5), await comm.receive_output(5)]
        with path.open("ab") as file:
            file.write(b"more")
        with pytest.raises(FileChangedError):
            await comm.wait(5)
        while not comm.output_queue.empty():
            messages.append(comm.output_queue.get_nowait())
        return messages

    messages = asyncio.run(scenario())
    assert all(m.get("more_body") is not False for m in messages[1:])
    assert len(body_of(messages)) < len(CONTENT)
    assert opened.files[0].closed


def test_a_file_truncated_before_its_first_chunk_is_a_500_never_its_bytes(path: Path) -> None:
    # The headers wait for the first chunk (response.py, "Before the first
    # chunk"), so a file found changed then is still answered as an error.
    response = FileResponse(path, stat_result=path.stat())
    path.write_bytes(CONTENT[:100])
    assert_answered_as_an_error(response)


def test_a_send_that_fails_with_oserror_is_a_disconnect(path: Path) -> None:
    ran = []

    async def gone(message: Any) -> None:
        raise OSError("the client is gone")

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    response = FileResponse(path, background=BackgroundTask(ran.append, "ran"))
    scope = http_scope()
    scope["extensions"] = {"http.response.pathsend": {}}
    asyncio.run(response(scope, receive, gone))
    assert ran == ["ran"]


def test_the_starlette_twin_is_a_starlette_file_response(path: Path) -> None:
    from fastapi import FastAPI
    from starlette import responses
    from starlette.testclient import TestClient

    from asgi_stream.starlette import FileResponse as Twin

    assert issubclass(Twin, FileResponse) and issubclass(Twin, responses.FileResponse)
    api = FastAPI()

    @api.get("/file", response_class=Twin)
    async def endpoint() -> Twin:
        return Twin(path)

    with TestClient(api) as client:
        answer = client.get("/file", headers={"Range": "bytes=10-19"})
    assert (answer.status_code, answer.content) == (206, CONTENT[10:20])


def test_a_file_that_grows_with_its_mtime_put_back_is_still_caught(path: Path) -> None:
    announced = path.stat()
    response = FileResponse(path, stat_result=announced)
    with path.open("ab") as file:
        file.write(b"more")
    os.utime(path, ns=(announced.st_atime_ns, announced.st_mtime_ns))
    assert_answered_as_an_error(response)


def assert_answered_as_an_error(response: FileResponse) -> None:
    """A file found changed before its first chunk: a JSON 500, none of its bytes."""
    messages = asyncio.run(request(response, http_scope()))
    assert messages[0]["status"] == 500
    assert json.loads(body_of(messages)) == {"detail": "Internal Server Error"}


def test_starlettes_gzip_middleware_around_a_file_sent_twice(path: Path) -> None:
    # GZipMiddleware rewrites messages in place: a reused response must send
    # its own headers and end again, not what the first request's middleware made.
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.testclient import TestClient

    text = path.with_name("big.txt")
    text.write_text("line of text\n" * 2000)
    response = FileResponse(text)
    app = GZipMiddleware(response, minimum_size=10)
    client = TestClient(app)  # no lifespan: the app is one response
    for _ in range(2):
        answer = client.get("/", headers={"Accept-Encoding": "gzip"})
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.text == "line of text\n" * 2000
    plain = client.get("/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["content-length"] == str(len("line of text\n" * 2000))


def test_a_file_gone_before_its_first_read_is_answered_as_an_error(path: Path) -> None:
    response = FileResponse(path, stat_result=path.stat())  # no stat() at send time
    path.unlink()
    assert_answered_as_an_error(response)
