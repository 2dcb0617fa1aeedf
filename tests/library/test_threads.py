"""Sync generators keep their thread: every ``next()`` and the ``close()`` of one
stream run on one thread of its own, which ends with the stream.

The realistic case is a CSV export from sqlite3 through a sync generator: the
connection is opened in the generator, and sqlite3 refuses to be used from
any other thread than the one that opened it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from asgi_stream import Request, Router, StreamingResponse
from asgi_stream.concurrency import MAX_THREADS
from tests.asgi import body_of, http_scope, request
from tests.library.test_response import Ticker
from tests.waiting import BOUND

ROWS = 200
EXPORTS = 60  # more than the pool's MAX_THREADS


class Export:
    """A sqlite3-backed CSV export, and what each stream saw: threads, and its finally."""

    def __init__(self, database: Path) -> None:
        with sqlite3.connect(database) as db:
            db.execute("CREATE TABLE items (id INTEGER, name TEXT)")
            db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(ROWS)])
        db.close()
        self.database = database
        self.threads: list[set[int]] = []  # per stream: the threads its code ran on
        self.closed = 0
        self.lock = threading.Lock()

    def rows(self, row_delay: float = 0.0) -> Iterator[str]:
        seen: set[int] = set()
        with self.lock:
            self.threads.append(seen)
        db = sqlite3.connect(self.database)  # usable from this thread only
        try:
            yield "id,name\n"
            for item_id, name in db.execute("SELECT id, name FROM items ORDER BY id"):
                seen.add(threading.get_ident())
                time.sleep(row_delay)
                yield f"{item_id},{name}\n"
        finally:
            seen.add(threading.get_ident())
            db.close()  # raises ProgrammingError on another thread
            with self.lock:
                self.closed += 1

    def router(self, row_delay: float = 0.0) -> Router:
        router = Router()

        @router.get("/export.csv")
        async def export(request: Request) -> StreamingResponse:
            return StreamingResponse(self.rows(row_delay), media_type="text/csv")

        return router


EXPECTED = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(ROWS))


def threads_back_to(baseline: int, timeout: float = 2 * BOUND) -> int:
    """The thread count, once it is back to ``baseline`` (or the timeout has passed)."""
    deadline = time.monotonic() + timeout
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def test_sixty_concurrent_sqlite_exports_each_keep_their_thread(tmp_path: Path) -> None:
    export = Export(tmp_path / "items.db")
    baseline = threading.active_count()

    async def main() -> tuple[list[list[dict[str, Any]]], int]:
        ticker = Ticker(0.005)
        router = export.router(row_delay=0.0005)
        results = await asyncio.gather(
            *(request(router, http_scope("GET", "/export.csv"), timeout=20) for _ in range(EXPORTS))
        )
        return results, ticker.stop()

    results, ticks = asyncio.run(main())
    for messages in results:
        assert messages[0]["status"] == 200
        assert body_of(messages).decode() == EXPECTED
    assert len(export.threads) == EXPORTS and export.closed == EXPORTS
    # Every next() and the close of one stream: one thread, and no two streams shared one.
    assert all(len(seen) == 1 for seen in export.threads)
    assert len(set.union(*export.threads)) == EXPORTS
    assert ticks > 0  # the loop ran meanwhile
    assert threads_back_to(baseline) == baseline


def test_sync_streams_are_not_capped_at_the_pool_size() -> None:
    # Every stream waits in its first next() until all of them are in theirs at once:
    # possible only when each has a thread, whatever the size of the pool.
    streams = MAX_THREADS + 10
    barrier = threading.Barrier(streams, timeout=2 * BOUND)

    def together() -> Iterator[bytes]:
        barrier.wait()
        yield b"met"

    async def main() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(
            *(request(StreamingResponse(together()), http_scope()) for _ in range(streams))
        )

    assert [body_of(messages) for messages in asyncio.run(main())] == [b"met"] * streams


def test_a_disconnect_closes_the_generator_on_its_own_thread_and_the_thread_ends(
    tmp_path: Path,
) -> None:
    export = Export(tmp_path / "items.db")
    baseline = threading.active_count()

    async def main() -> None:
        comm = ApplicationCommunicator(
            export.router(row_delay=0.01), http_scope("GET", "/export.csv")
        )
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await comm.receive_output(BOUND))["status"] == 200
        await comm.receive_output(BOUND)  # the first rows are out: the stream is running
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(BOUND)
        # The response returns once the generator is closed, so its finally has run.
        assert export.closed == 1, "the generator's finally did not run (or db.close() failed)"

    asyncio.run(main())
    [seen] = export.threads
    assert len(seen) == 1
    assert threads_back_to(baseline) == baseline


@pytest.mark.parametrize("ending", ["complete", "error", "head"])
def test_no_thread_is_left_however_the_stream_ends(ending: str) -> None:
    def generate() -> Iterator[bytes]:
        yield b"a"
        if ending == "error":
            raise RuntimeError("boom")
        yield b"b"

    baseline = threading.active_count()

    async def main() -> None:
        method = "HEAD" if ending == "head" else "GET"
        comm = ApplicationCommunicator(StreamingResponse(generate()), http_scope(method))
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        await comm.wait(BOUND)

    if ending == "error":
        with pytest.raises(RuntimeError, match="boom"):
            asyncio.run(main())
    else:
        asyncio.run(main())
    assert threads_back_to(baseline) == baseline
