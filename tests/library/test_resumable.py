"""ResumableEventSourceResponse: exact ASGI messages for fresh, resumed and unresumable requests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream.eventlog import MemoryEventLog
from asgi_stream.request import Request
from asgi_stream.resumable import (
    MAX_EVENT_ID_LENGTH,
    ResumableEventSourceResponse,
    last_event_id,
)
from tests.asgi import body_of, headers_of, http_scope, request

FINAL = ("done",)


async def filled_log(maxlen: int = 100, count: int = 3) -> MemoryEventLog:
    log = MemoryEventLog(maxlen)
    for i in range(count):
        await log.append("s", f"event {i}")
    await log.append("s", "Completed", event="done")
    return log


def nth_id(log: MemoryEventLog, n: int) -> str:
    """The ID of the ``n``-th event appended to ``"s"``: the stream's incarnation, ``-``, ``n``."""
    newest = asyncio.run(log.last("s"))
    assert newest is not None
    return f"{newest.id.rsplit('-', 1)[0]}-{n}"


def respond(log: MemoryEventLog, last_event_id: str | None, **kwargs: Any) -> list[dict[str, Any]]:
    response = ResumableEventSourceResponse(log, "s", last_event_id, final_events=FINAL, **kwargs)
    return asyncio.run(request(response, http_scope()))


def test_a_fresh_request_gets_retry_then_every_event_with_its_id_then_the_end() -> None:
    log = asyncio.run(filled_log())
    messages = respond(log, None, retry=1500)
    assert messages[0]["status"] == 200
    assert headers_of(messages)[b"content-type"] == b"text/event-stream; charset=utf-8"
    # The replay comes as one page: one body message for the events held.
    assert [m["body"] for m in messages[1:]] == [
        b"retry: 1500\n\n",
        f"id: {nth_id(log, 1)}\ndata: event 0\n\n".encode()
        + f"id: {nth_id(log, 2)}\ndata: event 1\n\n".encode()
        + f"id: {nth_id(log, 3)}\ndata: event 2\n\n".encode()
        + f"event: done\nid: {nth_id(log, 4)}\ndata: Completed\n\n".encode(),
        b"",
    ]
    assert messages[-1]["more_body"] is False


def test_last_event_id_replays_only_what_came_after_it() -> None:
    log = asyncio.run(filled_log())
    assert (
        body_of(respond(log, nth_id(log, 2)))
        == (
            f"id: {nth_id(log, 3)}\ndata: event 2\n\n"
            f"event: done\nid: {nth_id(log, 4)}\ndata: Completed\n\n"
        ).encode()
    )


def test_a_client_that_has_the_final_event_gets_204_so_eventsource_stops() -> None:
    log = asyncio.run(filled_log())
    messages = respond(log, nth_id(log, 4), retry=10)
    assert messages == [
        {"type": "http.response.start", "status": 204, "headers": []},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]


@pytest.mark.parametrize("unknown", ["nonsense", "99", "0"])
def test_an_unknown_id_is_reported_in_a_reset_event_then_everything_follows(
    unknown: str,
) -> None:
    log = asyncio.run(filled_log())
    body = body_of(respond(log, unknown))
    reset = (
        b'event: reset\nid: \ndata: {"reason": "unknown", "last_event_id": "'
        + unknown.encode()
        + b'"}\n\n'
    )
    assert body == reset + body_of(respond(log, None))


def test_a_trimmed_id_is_reported_then_the_oldest_events_held_follow() -> None:
    log = asyncio.run(filled_log(maxlen=3, count=10))  # holds 9, 10 and the final 11
    body = body_of(respond(log, nth_id(log, 2)))
    assert (
        body
        == (
            "event: reset\nid: \n"
            f'data: {{"reason": "trimmed", "last_event_id": "{nth_id(log, 2)}"}}\n\n'
            f"id: {nth_id(log, 9)}\ndata: event 8\n\nid: {nth_id(log, 10)}\ndata: event 9\n\n"
            f"event: done\nid: {nth_id(log, 11)}\ndata: Completed\n\n"
        ).encode()
    )


@pytest.mark.parametrize("how", ["expired", "restarted"])
def test_an_id_from_an_earlier_run_of_the_stream_is_unknown_not_resumed(how: str) -> None:
    # A finished job's stream expires and a new run starts under its name, or
    # the server restarts: the old run's third ID must not resume the new run
    # after its third event, as if the client had seen them.
    async def earlier_run() -> tuple[str, MemoryEventLog]:
        log = MemoryEventLog()
        third = [await log.append("s", f"old {i}") for i in range(5)][2]
        if how == "expired":
            await log.expire("s", 0)
            for i in range(3):
                await log.append("s", f"event {i}")
            await log.append("s", "Completed", event="done")
        else:
            log = await filled_log()
        return third, log

    old_id, log = asyncio.run(earlier_run())
    reset = f'event: reset\nid: \ndata: {{"reason": "unknown", "last_event_id": "{old_id}"}}\n\n'
    assert body_of(respond(log, old_id)) == reset.encode() + body_of(respond(log, None))


def test_an_overlong_id_is_not_echoed_whole() -> None:
    log = asyncio.run(filled_log())
    body = body_of(respond(log, "9" * 10_000))
    first_event = body.split(b"\n\n")[0]
    assert b'"reason": "unknown"' in first_event
    assert len(first_event) < MAX_EVENT_ID_LENGTH + 100


def test_retry_must_be_a_non_negative_int() -> None:
    with pytest.raises(ValueError, match="retry"):
        ResumableEventSourceResponse(MemoryEventLog(), "s", retry=-1)


def test_live_events_follow_the_replay_and_a_disconnect_stops_the_reader() -> None:
    async def main() -> None:
        log = MemoryEventLog()
        before = await log.append("s", "before")
        response = ResumableEventSourceResponse(log, "s", before, final_events=FINAL)
        comm = ApplicationCommunicator(response, http_scope())
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await comm.receive_output(2))["status"] == 200
        await asyncio.sleep(0.05)
        assert await comm.receive_nothing(0.05)  # caught up: nothing to replay
        live = await log.append("s", "live")
        assert (await comm.receive_output(2))["body"] == f"id: {live}\ndata: live\n\n".encode()
        assert log.subscribers == 1
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(2)
        assert not comm.future.cancelled()
        assert log.subscribers == 0  # the subscription was closed at once

    asyncio.run(main())


@pytest.mark.parametrize(
    ("header", "query", "expected"),
    [
        (None, b"", None),
        (b"7", b"", "7"),
        (None, b"last_event_id=5", "5"),  # a page's new EventSource cannot set the header
        (b"7", b"last_event_id=5", "7"),  # EventSource's own reconnection: the header is newer
        (b"", b"last_event_id=5", "5"),
        (None, b"last_event_id=", None),
    ],
)
def test_the_last_event_id_is_the_header_else_the_query_parameter(
    header: bytes | None, query: bytes, expected: str | None
) -> None:
    headers = [(b"host", b"testserver")]
    if header is not None:
        headers.append((b"last-event-id", header))
    scope = http_scope(query=query, headers=headers)
    assert last_event_id(Request(scope, receive=None)) == expected  # type: ignore[arg-type]
