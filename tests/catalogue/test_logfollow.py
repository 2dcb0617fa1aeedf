"""follow(): a log file followed like ``tail -F``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from asgi_stream.catalogue.logfollow import MAX_LINE, follow
from tests.waiting import BOUND

POLL = 0.005


class Lines:
    """Reads a follower with a deadline, without cancelling it (which would end it)."""

    def __init__(self, path: Path) -> None:
        self.lines = follow(path, POLL)
        self.pending: asyncio.Future[str] | None = None

    async def next(self, timeout: float = BOUND) -> str | None:
        """The next line, or None if none arrives within ``timeout`` (the read goes on)."""
        if self.pending is None:
            self.pending = asyncio.ensure_future(anext(self.lines))
        done, _ = await asyncio.wait((self.pending,), timeout=timeout)
        if not done:
            return None
        pending, self.pending = self.pending, None
        return pending.result()

    async def nothing(self) -> bool:
        return await self.next(0.05) is None

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            await asyncio.wait((self.pending,))
        await self.lines.aclose()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as file:
        file.write(data)


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    async def main() -> None:
        await anext(follow(tmp_path / "missing.log"))

    with pytest.raises(FileNotFoundError):
        asyncio.run(main())


def test_starts_after_the_last_complete_line_and_waits_for_newlines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"old\nolder\nhalf a li")

    async def main() -> None:
        lines = Lines(log)
        assert await lines.nothing()  # the old lines are not sent
        append(log, b"ne\nwhole\r\nand a par")
        assert await lines.next() == "half a line"  # completed: sent whole
        assert await lines.next() == "whole"  # CRLF is a line ending too
        assert await lines.nothing()  # "and a par" waits for its newline
        append(log, b"tial one\n")
        assert await lines.next() == "and a partial one"
        await lines.close()

    asyncio.run(main())


def test_truncation_starts_again_from_the_top(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"a long first line that makes the file big\n")

    async def main() -> None:
        lines = Lines(log)
        assert await lines.nothing()
        log.write_bytes(b"")  # truncate, as copytruncate or "> app.log" do
        await asyncio.sleep(0.03)
        append(log, b"after truncation\n")
        assert await lines.next() == "after truncation"
        await lines.close()

    asyncio.run(main())


def test_replacement_is_followed_after_the_old_file_is_read_to_its_end(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")

    async def main() -> None:
        lines = Lines(log)
        assert await lines.nothing()
        append(log, b"last words of the old file\n")
        log.rename(tmp_path / "app.log.1")  # rotation: moved away ...
        assert await lines.next() == "last words of the old file"
        append(tmp_path / "app.log.1", b"still written to the old file\n")
        assert await lines.next() == "still written to the old file"
        log.write_bytes(b"first line of the new file\n")  # ... and replaced
        assert await lines.next() == "first line of the new file"
        append(log, b"second\n")
        assert await lines.next() == "second"
        await lines.close()

    asyncio.run(main())


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds through /proc")
def test_closing_the_follower_closes_the_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")

    async def main() -> None:
        baseline = len(os.listdir("/proc/self/fd"))
        lines = Lines(log)
        assert await lines.nothing()
        assert len(os.listdir("/proc/self/fd")) == baseline + 1
        await lines.close()
        assert len(os.listdir("/proc/self/fd")) == baseline

    asyncio.run(main())


def test_a_large_append_arrives_whole_in_order(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    expected = [f"line {i} " + "y" * 100 for i in range(3000)]  # several READ_SIZE reads

    async def main() -> list[str]:
        lines = Lines(log)
        assert await lines.nothing()
        append(log, "".join(line + "\n" for line in expected).encode())
        received = [await lines.next() for _ in expected]
        await lines.close()
        return received

    assert asyncio.run(main()) == expected


def test_an_unfinished_line_too_long_to_see_its_start_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"complete\n" + b"P" * (MAX_LINE + 10))  # begun before we can see

    async def main() -> None:
        lines = Lines(log)
        assert await lines.nothing()
        append(log, b"P" * MAX_LINE + b"-END\nnext\n")
        assert await lines.next() == "next"  # never the tail of that line as a line
        await lines.close()

    asyncio.run(main())


def test_a_file_that_is_one_unfinished_line_is_followed_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"half a li")

    async def main() -> None:
        lines = Lines(log)
        assert await lines.nothing()
        append(log, b"ne\n")
        assert await lines.next() == "half a line"
        await lines.close()

    asyncio.run(main())


def test_a_line_longer_than_max_line_comes_in_pieces_without_waiting_for_its_end(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    # One ASCII byte, then two-byte characters: one of them straddles every MAX_LINE boundary.
    long_line = "a" + "é" * (MAX_LINE + 100)

    async def main() -> None:
        lines = Lines(log)
        assert await lines.nothing()
        append(log, long_line.encode())  # no newline: the follower must not hold it all
        pieces = [await lines.next(), await lines.next()]
        assert await lines.nothing()  # what is left (under MAX_LINE) waits for its newline
        append(log, b"\nshort\n")
        pieces.append(await lines.next())
        assert await lines.next() == "short"
        await lines.close()
        assert "".join(pieces) == long_line  # nothing lost, no character broken in two
        assert all(0 < len(piece.encode()) <= MAX_LINE for piece in pieces)

    asyncio.run(main())
