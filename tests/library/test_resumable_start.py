"""ResumableEventSourceResponse for late joiners: ``start="beginning"`` (the default) or ``"live"``.

The Redis backend gets the same checks in ``test_eventlog_safety.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import EventLog, MemoryEventLog, ResumableEventSourceResponse
from asgi_stream.testing import parse_event_stream
from tests.asgi import body_of, http_scope


async def late_joiner(
    log: EventLog, stream: str, last_id: str | int | None = None, **kwargs: Any
) -> list[tuple[str, str]]:
    """Join ``stream`` after 500 events, then 2 more are appended (the last final).

    ``last_id`` is the joiner's ``Last-Event-ID``, or, as an int ``n``, the ID
    of the ``n``-th of the 500. Returns the ``(type, data)`` of every event
    the joiner received.
    """
    ids = [await log.append(stream, f"old {i}") for i in range(500)]
    if isinstance(last_id, int):
        last_id = ids[last_id - 1]
    response = ResumableEventSourceResponse(log, stream, last_id, final_events=["done"], **kwargs)
    comm = ApplicationCommunicator(response, http_scope())
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    messages = [await comm.receive_output(5)]
    assert messages[0]["status"] == 200
    await asyncio.sleep(0.05)  # the reader has caught up, and waits
    await log.append(stream, "new")
    await log.append(stream, "Completed", event="done")
    while messages[-1]["type"] != "http.response.body" or messages[-1]["more_body"]:
        messages.append(await comm.receive_output(5))
    await comm.wait(5)
    return [(e.type, e.data) for e in parse_event_stream(body_of(messages).decode()).events]


def test_by_default_a_late_joiner_gets_every_event_held_then_the_live_ones() -> None:
    events = asyncio.run(late_joiner(MemoryEventLog(), "jobs"))
    assert len(events) == 502
    assert events[0] == ("message", "old 0")
    assert events[-2:] == [("message", "new"), ("done", "Completed")]


def test_a_live_late_joiner_gets_only_what_is_appended_after_it_joined() -> None:
    events = asyncio.run(late_joiner(MemoryEventLog(), "ticks", start="live"))
    assert events == [("message", "new"), ("done", "Completed")]


def test_a_live_joiner_of_a_stream_that_does_not_exist_yet_gets_its_first_event() -> None:
    async def main() -> list[tuple[str, str]]:
        log = MemoryEventLog()
        response = ResumableEventSourceResponse(log, "new", final_events=["done"], start="live")
        comm = ApplicationCommunicator(response, http_scope())
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        messages = [await comm.receive_output(5)]
        await asyncio.sleep(0.05)
        await log.append("new", "first")
        await log.append("new", "", event="done")
        while messages[-1]["type"] != "http.response.body" or messages[-1]["more_body"]:
            messages.append(await comm.receive_output(5))
        return [(e.type, e.data) for e in parse_event_stream(body_of(messages).decode()).events]

    assert asyncio.run(main()) == [("message", "first"), ("done", "")]


def test_a_reconnecting_client_resumes_after_its_id_even_when_live() -> None:
    events = asyncio.run(late_joiner(MemoryEventLog(), "ticks", 499, start="live"))
    assert events == [
        ("message", "old 499"),
        ("message", "new"),
        ("done", "Completed"),
    ]


def test_an_unknown_id_is_reset_and_then_live_when_live() -> None:
    events = asyncio.run(late_joiner(MemoryEventLog(), "ticks", "nonsense", start="live"))
    assert [kind for kind, _ in events] == ["reset", "message", "done"]
    assert events[1:] == [("message", "new"), ("done", "Completed")]


@pytest.mark.parametrize("bad", ["now", "", None, "LIVE"])
def test_start_must_be_beginning_or_live(bad: Any) -> None:
    with pytest.raises(ValueError, match="start"):
        ResumableEventSourceResponse(MemoryEventLog(), "s", start=bad)


def test_a_response_answered_with_204_is_single_use_too() -> None:
    async def main() -> None:
        log = MemoryEventLog()
        done = await log.append("job", "", event="done")
        response = ResumableEventSourceResponse(log, "job", done, final_events=["done"])
        comm = ApplicationCommunicator(response, http_scope())
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await comm.receive_output(5))["status"] == 204
        await comm.wait(5)
        with pytest.raises(RuntimeError, match="already been sent"):
            await response(http_scope(), comm.input_queue.get, comm.output_queue.put)

    asyncio.run(main())
