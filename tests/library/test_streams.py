"""The stream helpers: what they yield, when, and that closing them closes their source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from asgi_stream.streams import batched, timeout_each
from tests.waiting import BOUND

#: A delay no test waits out: the source is stuck until it is cancelled or closed.
STUCK = 60.0


class Source:
    """An async generator of ``items``, sleeping ``delays[i]`` before item ``i``;
    it records how it ended, and when it is stuck (a delay of :data:`STUCK`)."""

    def __init__(self, items: Iterable[Any], delays: Iterable[float] = ()) -> None:
        self.items = list(items)
        self.delays = list(delays) or [0.0] * len(self.items)
        self.ended_by: str | None = None
        self.stuck = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            for item, delay in zip(self.items, self.delays, strict=True):
                if delay >= STUCK:
                    self.stuck.set()
                await asyncio.sleep(delay)
                yield item
            self.ended_by = "exhausted"
        except asyncio.CancelledError:
            self.ended_by = "cancelled"
            raise
        except GeneratorExit:
            self.ended_by = "closed"
            raise


async def collect(iterator: AsyncIterator[Any], timeout: float = 5.0) -> list[Any]:
    async def run() -> list[Any]:
        return [item async for item in iterator]

    return await asyncio.wait_for(run(), timeout)


# timeout_each


def test_timeout_each_passes_items_that_arrive_in_time() -> None:
    source = Source(range(5), [0.001] * 5)
    assert asyncio.run(collect(timeout_each(source, BOUND))) == [0, 1, 2, 3, 4]
    assert source.ended_by == "exhausted"


def test_timeout_each_raises_timeout_error_and_cancels_the_slow_step() -> None:
    source = Source(range(5), [0.0, 0.0, STUCK, 0.0, 0.0])

    received = []

    async def consume() -> None:
        async for item in timeout_each(source, 0.05):
            received.append(item)

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(consume(), 5))
    assert received == [0, 1]
    assert source.ended_by == "cancelled"


def test_timeout_each_does_not_charge_the_consumers_time_to_the_source() -> None:
    async def main() -> list[Any]:
        received = []
        async for item in timeout_each(Source(range(3), [0.0, 0.0, 0.0]), 0.05):
            received.append(item)
            await asyncio.sleep(0.1)  # the consumer is slow, the source is not
        return received

    assert asyncio.run(asyncio.wait_for(main(), 5)) == [0, 1, 2]


# batched


def test_batched_by_count_sends_full_batches_then_the_rest() -> None:
    batches = asyncio.run(collect(batched(Source(range(23)), 10)))
    assert batches == [list(range(10)), list(range(10, 20)), [20, 21, 22]]


def test_batched_by_count_never_sends_an_empty_batch() -> None:
    assert asyncio.run(collect(batched(Source(range(20)), 10))) == [
        list(range(10)),
        list(range(10, 20)),
    ]
    assert asyncio.run(collect(batched(Source([]), 10))) == []


def test_batched_rejects_a_bad_size_where_it_is_called() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        batched(Source([1]), 0)
    with pytest.raises(TypeError, match="must be an int"):
        batched(Source([1]), 2.0)  # type: ignore[arg-type]


# Closing: the helper's source must end at once, however it is suspended.

HELPERS = {
    "timeout_each": lambda source: timeout_each(source, 10.0),
    "batched by count": lambda source: batched(source, 2),
}


@pytest.mark.parametrize("make", HELPERS.values(), ids=HELPERS.keys())
def test_closing_a_helper_while_its_source_waits_ends_the_source(make: Any) -> None:
    source = Source(range(3), [0.0, STUCK, 0.0])

    async def main() -> None:
        helper = make(source)
        consumer = asyncio.ensure_future(collect(helper))
        await asyncio.wait_for(source.stuck.wait(), BOUND)  # waiting for its second item
        consumer.cancel()  # the client left: the response cancels the streaming task
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await helper.aclose()

    asyncio.run(asyncio.wait_for(main(), 5))
    assert source.ended_by == "cancelled"


@pytest.mark.parametrize("make", HELPERS.values(), ids=HELPERS.keys())
def test_aclose_of_a_helper_between_items_closes_the_source(make: Any) -> None:
    source = Source(range(10))

    async def main() -> None:
        helper = make(source)
        await anext(helper)
        await helper.aclose()

    asyncio.run(asyncio.wait_for(main(), 5))
    assert source.ended_by == "closed"


def test_nested_helpers_close_all_the_way_to_the_innermost_source() -> None:
    source = Source(range(100), [0.0] * 3 + [STUCK] * 97)

    async def main() -> None:
        stream = batched(timeout_each(source, 2 * STUCK), 2)
        assert await anext(stream) == [0, 1]
        consumer = asyncio.ensure_future(anext(stream))
        await asyncio.wait_for(source.stuck.wait(), BOUND)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await stream.aclose()

    asyncio.run(asyncio.wait_for(main(), 5))
    assert source.ended_by == "cancelled"
