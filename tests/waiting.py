"""Waiting in tests: for the event itself, never for a length of time.

A test that sleeps "long enough" and then looks is a race it usually wins:
on a busy machine the thing it waits for takes longer, and the test fails
for no fault of the code. A test that asserts "this took less than 0.1 s"
is the same race the other way round. So a test waits for what it needs to
see (an event, a count reaching a number, a line in a log), with a generous
bound that is there only so that a broken behaviour fails the test instead
of hanging it. How fast something is belongs to the benchmarks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: The bound on any one wait: far longer than anything a test waits for
#: takes, even on a loaded machine, and far shorter than "never".
BOUND = 5.0


async def until(condition: Callable[[], object], timeout: float = BOUND) -> None:
    """Return once ``condition()`` is true; fail the test if it is still false after ``timeout``.

    It looks once per turn of the event loop (and then some), so every other
    task gets to run between two looks.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {condition}")
        await asyncio.sleep(0.001)
