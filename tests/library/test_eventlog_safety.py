"""No poison pill in the event log: refused at ``append``, skipped if another program wrote it.

An event that cannot be sent would stop every reader that resumes from before
it, on every reconnection. Both backends refuse one at ``append``. A Redis
stream can also be written by other programs, so entries are written straight
into Redis with the redis client (a bad ``event``, no ``data``, bytes that are
not UTF-8), and read back over resumable SSE: the reader skips each one with a
warning that names its entry ID, and goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from asgiref.testing import ApplicationCommunicator

from asgi_stream import EventLog, MemoryEventLog, ResumableEventSourceResponse, open_event_log
from asgi_stream.redis_eventlog import RedisEventLog
from asgi_stream.testing import parse_event_stream
from tests.asgi import body_of, http_scope, request
from tests.library.test_resumable_start import late_joiner

pytestmark = pytest.mark.server

MakeLog = Callable[[], EventLog]


@pytest.fixture(params=["memory", "redis"])
def make_log(request: pytest.FixtureRequest) -> MakeLog:
    """A factory for an empty-ish log; call it inside the test's event loop."""
    if request.param == "memory":
        return MemoryEventLog
    url = request.getfixturevalue("redis_url")
    return lambda: open_event_log(url)


def run(make_log: MakeLog, test: Callable[[EventLog], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        log = make_log()
        try:
            return await asyncio.wait_for(test(log), 10)
        finally:
            await log.aclose()

    return asyncio.run(main())


def unique(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "-").replace("]", "")


# Refused at append, by both backends.

BAD_APPENDS = [
    ({"data": "p", "event": "bad\nevent: x"}, ValueError),
    ({"data": "p", "event": "bad\revent"}, ValueError),
    ({"data": "p", "event": "\ud800"}, ValueError),
    ({"data": "lone \udc80 surrogate"}, ValueError),
    ({"data": 5}, TypeError),
    ({"data": b"bytes"}, TypeError),
    ({"data": "p", "event": 5}, TypeError),
]


@pytest.mark.parametrize(("fields", "error"), BAD_APPENDS)
def test_append_refuses_what_could_not_be_sent_and_stores_nothing(
    make_log: MakeLog, request: pytest.FixtureRequest, fields: dict[str, Any], error: type
) -> None:
    name = unique(request)

    async def test(log: EventLog) -> None:
        good = await log.append(name, "before")
        with pytest.raises(error):
            await log.append(name, **fields)
        last = await log.last(name)
        assert last is not None and last.id == good

    run(make_log, test)


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        ("", ValueError),
        ("a\nb", ValueError),
        ("x" * 201, ValueError),
        ("\x1b[2J", ValueError),
        ("\ud800", ValueError),
        (5, TypeError),
    ],
)
def test_append_and_read_refuse_a_bad_stream_name(
    make_log: MakeLog, stream: Any, error: type
) -> None:
    async def test(log: EventLog) -> None:
        with pytest.raises(error, match="stream name"):
            await log.append(stream, "x")
        with pytest.raises(error, match="stream name"):
            await anext(log.read(stream))

    run(make_log, test)


def test_the_poison_pill_of_the_issue_never_reaches_a_reader(
    make_log: MakeLog, request: pytest.FixtureRequest
) -> None:
    name = unique(request)

    async def test(log: EventLog) -> list[str]:
        await log.append(name, "tick 1")
        with pytest.raises(ValueError, match="CR or LF"):
            await log.append(name, "p", event="bad\nevent: x")
        await log.append(name, "done", event="done")
        response = ResumableEventSourceResponse(log, name, final_events=["done"])
        messages = await request_messages(response)
        return [e.data for e in parse_event_stream(body_of(messages).decode()).events]

    assert run(make_log, test) == ["tick 1", "done"]


async def request_messages(app: Any) -> list[dict[str, Any]]:
    return await request(app, http_scope())


# Entries another program wrote into Redis.

MALFORMED: list[dict[bytes, bytes]] = [
    {b"data": b"p", b"event": b"bad\nevent: x"},  # the issue's poison pill, written directly
    {b"payload": b"no data field"},
    {b"data": b"\xff\xfe not utf-8"},
    {b"data": b"ok", b"event": b"\xc3("},  # an event type that is not UTF-8
    {b"data": b"ok", b"event": b"a\rb"},
]


def write_directly(redis_url: str, stream: str, fields: dict[bytes, bytes]) -> str:
    client = redis.Redis.from_url(redis_url)
    try:
        entry_id: bytes = client.xadd(RedisEventLog.key(stream), fields)  # type: ignore[assignment]
        return entry_id.decode()
    finally:
        client.close()


@pytest.mark.parametrize("resume", [False, True], ids=["from the start", "resumed"])
def test_a_reader_skips_malformed_redis_entries_with_a_warning_and_goes_on(
    redis_url: str, request: pytest.FixtureRequest, caplog: Any, resume: bool
) -> None:
    name = unique(request)
    caplog.set_level(logging.WARNING, "asgi_stream.redis_streams")

    async def main() -> list[tuple[str, str, str]]:
        log = RedisEventLog(redis_url)
        try:
            first = await log.append(name, "good 1")
            bad_ids = []
            for i, fields in enumerate(MALFORMED):
                bad_ids.append(write_directly(redis_url, name, fields))
                await log.append(name, f"good {i + 2}")
            await log.append(name, "end", event="done")
            response = ResumableEventSourceResponse(
                log, name, first if resume else None, final_events=["done"]
            )
            messages = await request_messages(response)
        finally:
            await log.aclose()
        for bad_id in bad_ids:
            assert f"skipped entry {bad_id} " in caplog.text
        assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
        return [
            (e.type, e.data, e.last_event_id)
            for e in parse_event_stream(body_of(messages).decode()).events
        ]

    events = asyncio.run(main())
    expected = [f"good {i}" for i in range(1 if not resume else 2, len(MALFORMED) + 2)] + ["end"]
    assert [data for _, data, _ in events] == expected
    assert events[-1][0] == "done"
    assert "bad" not in " ".join(kind for kind, _, _ in events)


def test_a_live_reader_skips_a_malformed_entry_as_it_arrives(
    redis_url: str, request: pytest.FixtureRequest, caplog: Any
) -> None:
    name = unique(request)

    async def main() -> list[str]:
        log = RedisEventLog(redis_url, block_ms=100)
        try:
            response = ResumableEventSourceResponse(log, name, final_events=["done"])
            comm = ApplicationCommunicator(response, http_scope())
            await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
            messages = [await comm.receive_output(5)]
            await asyncio.sleep(0.05)  # the reader waits in XREAD BLOCK
            write_directly(redis_url, name, {b"data": b"p", b"event": b"x\ny"})
            await log.append(name, "after it")
            await log.append(name, "", event="done")
            while messages[-1]["type"] != "http.response.body" or messages[-1]["more_body"]:
                messages.append(await comm.receive_output(5))
            await comm.wait(5)
        finally:
            await log.aclose()
        return [e.data for e in parse_event_stream(body_of(messages).decode()).events]

    assert asyncio.run(main()) == ["after it", ""]
    assert "skipped entry" in caplog.text


def test_last_skips_a_malformed_newest_entry(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    name = unique(request)

    async def main() -> Any:
        log = RedisEventLog(redis_url)
        try:
            good = await log.append(name, "finished", event="done")
            for _ in range(20):  # more than one page of XREVRANGE
                write_directly(redis_url, name, {b"junk": b"1"})
            newest = await log.last(name)
            assert newest is not None and newest.id == good
            # So a client that has the final event is still told to stop (204).
            response = ResumableEventSourceResponse(log, name, good, final_events=["done"])
            messages = await request_messages(response)
            assert messages[0]["status"] == 204
            write_directly(redis_url, name + "-empty", {b"junk": b"1"})
            return await log.last(name + "-empty")
        finally:
            await log.aclose()

    assert asyncio.run(main()) is None


# Late joiners on Redis, as in test_resumable_start.py for memory.


def test_a_live_late_joiner_on_redis_gets_only_the_new_events(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    async def main() -> list[tuple[str, str]]:
        log = RedisEventLog(redis_url)
        try:
            return await late_joiner(log, unique(request), start="live")
        finally:
            await log.aclose()

    assert asyncio.run(main()) == [("message", "new"), ("done", "Completed")]


def test_a_late_joiner_on_redis_gets_everything_by_default(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    async def main() -> list[tuple[str, str]]:
        log = RedisEventLog(redis_url)
        try:
            return await late_joiner(log, unique(request))
        finally:
            await log.aclose()

    events = asyncio.run(main())
    assert len(events) == 502 and events[0] == ("message", "old 0")
