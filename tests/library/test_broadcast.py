"""Broadcast: every subscriber gets every event, encoded once; slow ones are cut off; none leak."""

from __future__ import annotations

import asyncio
import gc

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import Broadcast, EventSourceResponse, ServerSentEvent, Subscription
from asgi_stream.testing import stream
from tests.asgi import http_scope

BODY = "http.response.body"


class CountingEvent(ServerSentEvent):
    __slots__ = ("encoded",)

    def encode(self) -> bytes:
        self.encoded = getattr(self, "encoded", 0) + 1
        return super().encode()


def test_every_subscriber_gets_every_event_encoded_once() -> None:
    async def main() -> None:
        news = Broadcast()
        subscriptions = [news.subscribe() for _ in range(3)]
        event = CountingEvent("hello", event="greeting")
        assert news.publish(event) == 3
        news.publish("two\nlines")
        news.publish(b": raw\n\n")
        expected = b"event: greeting\ndata: hello\n\ndata: two\ndata: lines\n\n: raw\n\n"
        for subscription in subscriptions:
            assert await anext(subscription) == expected
        assert event.encoded == 1
        assert news.published == 3

    asyncio.run(main())


def test_an_idle_subscriber_gets_each_event_alone_and_at_once() -> None:
    async def main() -> None:
        news = Broadcast()
        subscription = news.subscribe()
        waiting = asyncio.ensure_future(anext(subscription))
        await asyncio.sleep(0)
        assert not waiting.done()
        news.publish("one")
        assert await asyncio.wait_for(waiting, 1) == b"data: one\n\n"

    asyncio.run(main())


def test_a_subscriber_too_far_behind_is_disconnected_and_counted() -> None:
    async def main() -> None:
        news = Broadcast(max_pending=3)
        slow, fast = news.subscribe(), news.subscribe()
        for i in range(3):
            news.publish(str(i))
            await anext(fast)
        news.publish("3")  # slow has 3 waiting: this one is its fourth
        assert news.disconnected == 1
        assert news.subscribers == 1
        with pytest.raises(StopAsyncIteration):
            await anext(slow)  # ended: its backlog is dropped, not sent late
        assert await anext(fast) == b"data: 3\n\n"  # the others go on

    asyncio.run(main())


def test_closing_the_broadcast_ends_every_stream_after_what_it_holds() -> None:
    async def main() -> None:
        news = Broadcast()
        subscription = news.subscribe()
        waiting = news.subscribe()
        pending = asyncio.ensure_future(anext(waiting))
        await asyncio.sleep(0)
        news.publish("last")
        news.close()
        assert await anext(subscription) == b"data: last\n\n"
        with pytest.raises(StopAsyncIteration):
            await anext(subscription)
        assert await pending == b"data: last\n\n"
        assert news.subscribers == 0

    asyncio.run(main())


def test_an_event_source_response_streams_a_subscription_and_leaves_on_disconnect() -> None:
    async def main() -> None:
        news = Broadcast()
        async with stream(EventSourceResponse(news.subscribe()), read_timeout=1) as response:
            assert response.status == 200
            while not news.subscribers:
                await asyncio.sleep(0)
            news.publish(ServerSentEvent("hi", id="1"))
            assert await response.read_chunk() == b"id: 1\ndata: hi\n\n"
        assert news.subscribers == 0

    asyncio.run(main())


def test_subscribers_that_come_and_go_leave_nothing_behind() -> None:
    def alive() -> int:
        gc.collect()
        return sum(isinstance(thing, Subscription) for thing in gc.get_objects())

    async def main() -> None:
        news = Broadcast(max_pending=2)
        before = asyncio.all_tasks()
        for round_ in range(50):
            comms = []
            for _ in range(20):
                response = EventSourceResponse(news.subscribe())
                comm = ApplicationCommunicator(response, http_scope())
                await comm.send_input({"type": "http.request", "body": b""})
                comms.append(comm)
            for comm in comms:
                await comm.receive_output(1)  # the headers
            news.publish(str(round_))
            for comm in comms[::2]:  # half of them leave politely...
                await comm.receive_output(1)
                await comm.send_input({"type": "http.disconnect"})
                await comm.wait(1)
            for _ in range(3):  # ...the others fall behind: 3 events at once, max_pending is 2
                news.publish("more")
            for comm in comms[1::2]:
                await comm.wait(1)
            del comms, comm, response
            assert news.subscribers == 0
        assert news.disconnected == 50 * 10
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == before
        assert alive() == 0

    assert alive() == 0
    asyncio.run(main())


def test_max_pending_must_be_a_positive_int() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_pending"):
            Broadcast(max_pending=bad)  # type: ignore[arg-type]
