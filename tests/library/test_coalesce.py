"""Coalescing: chunks ready at once share a message; nothing waits.

``coalesce=True`` joins from the first chunk; the default (``None``) joins
once the generator has made 16 chunks without letting the loop run;
``coalesce=False`` never joins.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import EventSourceResponse, StreamingResponse
from asgi_stream.coalesce import BATCH_ITEMS
from tests.asgi import body_of, http_scope, request
from tests.waiting import BOUND, until

BODY = "http.response.body"


def bodies(messages: list[dict[str, Any]]) -> list[bytes]:
    return [m["body"] for m in messages if m["type"] == BODY]


async def numbers(n: int):
    for i in range(n):
        yield b"%d," % i  # never awaits


def test_chunks_ready_at_once_are_joined_up_to_the_batch_limit() -> None:
    n = 3 * BATCH_ITEMS + 5
    messages = asyncio.run(request(StreamingResponse(numbers(n), coalesce=True), http_scope()))
    sent = bodies(messages)
    assert body_of(messages) == b"".join(b"%d," % i for i in range(n))
    assert len(sent) == 4 + 1  # three full batches, the rest, the end
    assert sent[-1] == b""


def test_a_chunk_after_a_wait_is_sent_before_the_wait_ends() -> None:
    async def generate():
        yield b"a"
        yield b"b"  # ready at once: joined with "a"
        await asyncio.sleep(30)  # "ab" must be on the wire while this waits
        yield b"never"

    async def main() -> None:
        comm = ApplicationCommunicator(StreamingResponse(generate(), coalesce=True), http_scope())
        await comm.send_input({"type": "http.request", "body": b""})
        assert (await comm.receive_output(BOUND))["type"] == "http.response.start"
        assert await comm.receive_output(BOUND) == {"type": BODY, "body": b"ab", "more_body": True}
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(BOUND)

    asyncio.run(main())


def test_a_generator_that_awaits_between_chunks_is_unchanged() -> None:
    async def generate():
        for part in (b"x", b"y", b"z"):
            await asyncio.sleep(0.001)
            yield part

    messages = asyncio.run(request(StreamingResponse(generate(), coalesce=True), http_scope()))
    assert bodies(messages) == [b"x", b"y", b"z", b""]


def test_sse_items_are_encoded_then_joined() -> None:
    async def generate():
        yield "one"
        yield {"event": "done", "data": "two"}

    messages = asyncio.run(request(EventSourceResponse(generate(), coalesce=True), http_scope()))
    assert bodies(messages) == [b"data: one\n\nevent: done\ndata: two\n\n", b""]


def test_what_came_before_an_error_is_sent_then_the_error_raised() -> None:
    async def generate():
        yield b"1"
        yield b"2"
        raise ValueError("boom")

    async def main() -> None:
        comm = ApplicationCommunicator(StreamingResponse(generate(), coalesce=True), http_scope())
        await comm.send_input({"type": "http.request", "body": b""})
        assert (await comm.receive_output(BOUND))["type"] == "http.response.start"
        assert await comm.receive_output(BOUND) == {"type": BODY, "body": b"12", "more_body": True}
        with pytest.raises(ValueError, match="boom"):
            await comm.wait(BOUND)

    asyncio.run(main())


def test_disconnect_while_the_generator_waits_runs_its_finally_at_once() -> None:
    suspended, finally_ran = asyncio.Event(), asyncio.Event()

    async def generate():
        try:
            yield b"first"
            yield b"second"
            suspended.set()
            await asyncio.sleep(30)
        finally:
            finally_ran.set()

    async def main() -> None:
        comm = ApplicationCommunicator(StreamingResponse(generate(), coalesce=True), http_scope())
        await comm.send_input({"type": "http.request", "body": b""})
        await comm.receive_output(BOUND)
        assert (await comm.receive_output(BOUND))["body"] == b"firstsecond"
        await asyncio.wait_for(suspended.wait(), BOUND)
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(BOUND)  # the generator waits far longer than this
        assert not comm.future.cancelled() and comm.future.exception() is None
        assert finally_ran.is_set(), "the app returned before the generator's finally ran"

    asyncio.run(main())


@pytest.mark.timeout(20)  # a generator that held the loop would hang this test: fail it then
def test_a_never_awaiting_generator_still_lets_other_callbacks_run() -> None:
    async def spin():
        while True:
            yield b"data: spin\n\n"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        turns = 0
        counting = True

        def count_a_turn() -> None:  # reschedules itself: one count per turn of the loop
            nonlocal turns
            turns += 1
            if counting:
                loop.call_soon(count_a_turn)

        loop.call_soon(count_a_turn)
        comm = ApplicationCommunicator(StreamingResponse(spin(), coalesce=True), http_scope())
        await comm.send_input({"type": "http.request", "body": b""})
        await comm.receive_output(BOUND)
        # A loop the generator held would never get here (nor end the wait).
        await until(lambda: turns > 10)
        counting = False
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(BOUND)
        assert comm.future.done() and not comm.future.cancelled()

    asyncio.run(main())


def test_a_timeout_inside_the_generator_stays_inside_it() -> None:
    """The generator's own asyncio.timeout() must not cancel the response's send()."""

    async def generate():
        yield b"a"
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            yield b"timed-out"

    async def main() -> list[bytes]:
        sent: list[bytes] = []

        async def receive() -> dict[str, Any]:
            await asyncio.sleep(30)
            return {"type": "http.disconnect"}

        async def slow_send(message: dict[str, Any]) -> None:  # a client that reads slowly
            if message["type"] == BODY:
                sent.append(message["body"])
                await asyncio.sleep(0.1)

        response = StreamingResponse(generate(), coalesce=True)
        await asyncio.wait_for(response(http_scope(), receive, slow_send), BOUND)
        return sent

    assert asyncio.run(main()) == [b"a", b"timed-out", b""]


def test_no_task_outlives_a_coalesced_stream() -> None:
    async def main() -> None:
        before = asyncio.all_tasks()
        await request(StreamingResponse(numbers(100), coalesce=True), http_scope())
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == before

    asyncio.run(main())


def test_a_sync_generator_is_iterated_as_before() -> None:
    response = StreamingResponse(iter([b"x", "y"]), coalesce=True)
    messages = asyncio.run(request(response, http_scope()))
    assert body_of(messages) == b"xy"


# -- the default: adaptive -----------------------------------------------------------------------

#: Chunks of ``numbers()`` sent one per message before the default starts joining
#: (the fairness budget: 16 chunks or 64 KiB).
DIRECT_CHUNKS = 16


def test_by_default_a_generator_that_never_awaits_is_joined_after_the_first_16_chunks() -> None:
    n = 1_000
    messages = asyncio.run(request(StreamingResponse(numbers(n)), http_scope()))
    sent = bodies(messages)
    assert body_of(messages) == b"".join(b"%d," % i for i in range(n))
    assert sent[:DIRECT_CHUNKS] == [b"%d," % i for i in range(DIRECT_CHUNKS)]
    assert sent[DIRECT_CHUNKS] == b"".join(b"%d," % i for i in range(16, 16 + BATCH_ITEMS))
    assert len(sent) < n // 10


@pytest.mark.parametrize("coalesce", [None, False])
def test_a_generator_that_awaits_gets_one_message_per_chunk_and_no_task(
    coalesce: bool | None,
) -> None:
    tasks = set()

    async def generate():
        for i in range(100):
            await asyncio.sleep(0)  # the least a generator can await
            tasks.add(asyncio.current_task())
            yield b"%d," % i

    response = StreamingResponse(generate(), coalesce=coalesce)
    messages = asyncio.run(request(response, http_scope()))
    assert bodies(messages) == [b"%d," % i for i in range(100)] + [b""]
    assert len(tasks) == 1, "the generator ran in a producer task: it was never joined"


def test_coalesce_false_sends_one_message_per_chunk_even_without_awaits() -> None:
    messages = asyncio.run(request(StreamingResponse(numbers(100), coalesce=False), http_scope()))
    assert bodies(messages) == [b"%d," % i for i in range(100)] + [b""]


def test_by_default_a_chunk_after_a_wait_is_sent_before_the_wait_ends() -> None:
    async def generate():
        for i in range(50):  # never awaits: joined after the first 16
            yield b"%d," % i
        await asyncio.sleep(30)  # everything before must be on the wire while this waits
        yield b"never"

    async def main() -> None:
        comm = ApplicationCommunicator(StreamingResponse(generate()), http_scope())
        await comm.send_input({"type": "http.request", "body": b""})
        assert (await comm.receive_output(BOUND))["type"] == "http.response.start"
        received = b""
        while received != b"".join(b"%d," % i for i in range(50)):
            received += (await comm.receive_output(BOUND))["body"]
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(BOUND)

    asyncio.run(main())


def test_by_default_no_task_outlives_a_stream_that_switched_to_joining() -> None:
    async def main() -> None:
        before = asyncio.all_tasks()
        await request(StreamingResponse(numbers(500)), http_scope())
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == before

    asyncio.run(main())
