"""Following a log file as it grows, like ``tail -F``.

:func:`follow` is an async generator of the *complete* lines appended to a file
after it starts. It polls: every ``poll_interval`` seconds it compares the
file's size with how far it has read, and reads only when there is more. The
cost of an idle follower is one ``fstat`` and one ``stat`` per poll, and the
file descriptor it holds.

Five things make a follower correct rather than merely working:

* **Partial lines wait.** A writer may be caught halfway through a line. Bytes
  after the last newline are kept until their newline arrives, so every line
  is yielded whole, exactly once. For the same reason the follower starts at
  the beginning of the unfinished last line already in the file (or at the
  end, when the file ends with a newline).
* **Lines are bounded** (:data:`MAX_LINE`). Without a bound, a writer that
  never writes a newline would make every follower hold everything it wrote,
  one copy per client. A line longer than ``MAX_LINE`` bytes is yielded in
  pieces of at most ``MAX_LINE`` bytes, cut between two characters, as soon as
  each piece is read. Pieces rather than a cut with a marker, because a log
  viewer should lose nothing (journald splits long lines the same way). When
  the follower starts inside an unfinished line already longer than that, it
  cannot find where the line began, so it skips the rest of that line and
  starts with the next one: it never yields the tail of a line as a line.
* **Truncation** (``> app.log``, ``copytruncate``): the file becomes shorter
  than where we are. We start again from its beginning.
* **Replacement** (log rotation: ``mv app.log app.log.1`` and a new
  ``app.log``): the path now names a different file (another inode). We read
  what is left of the old file, close it, and follow the new one from its
  beginning. While the path names no file at all, we keep reading the old one.
* **Leaving.** Closing the generator (the client left, and the response closed
  it) closes the file at once, in its ``finally``.

Reads happen in the event loop. A read from a regular file is served from the
page cache in microseconds, and each read is bounded (:data:`READ_SIZE`), with
a yield to the event loop between two reads, so even a log that grows by
megabytes cannot hold up other connections.

Lines are decoded as UTF-8 (bad bytes become U+FFFD) and yielded without their
line ending (``\\n`` or ``\\r\\n``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from typing import BinaryIO

__all__ = ["MAX_LINE", "READ_SIZE", "follow"]

#: The most bytes read from the file in one step.
READ_SIZE = 64 * 1024

#: The longest line yielded whole, in bytes; a longer one is yielded in pieces.
MAX_LINE = 64 * 1024


async def follow(
    path: str | os.PathLike[str], poll_interval: float = 0.1
) -> AsyncGenerator[str, None]:
    """Yield each line appended to ``path`` from now on, forever.

    Raises :class:`FileNotFoundError` (on the first ``anext``) when ``path``
    does not exist; a file that disappears *later* is waited for, as
    ``tail -F`` does.
    """
    file, skipping = _open_at_last_line(path)
    pending = b""  # the start of a line whose newline has not arrived yet
    try:
        while True:
            size = os.fstat(file.fileno()).st_size
            position = file.tell()
            if size < position:  # truncated: start again from the top
                file.seek(0)
                pending, skipping = b"", False
                continue
            if size > position:
                pending += file.read(READ_SIZE)
                if skipping:  # the rest of a line that began out of sight: drop it
                    newline = pending.find(b"\n")
                    skipping = newline < 0
                    pending = b"" if skipping else pending[newline + 1 :]
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.removesuffix(b"\r").decode("utf-8", "replace")
                while len(pending) > MAX_LINE:
                    cut = _piece_end(pending)
                    yield pending[:cut].decode("utf-8", "replace")
                    pending = pending[cut:]
                await asyncio.sleep(0)
                continue
            replacement = _replacement(path, file)
            if replacement is not None:  # rotated, and the old file is read to its end
                file.close()
                file = replacement
                pending, skipping = b"", False
                continue
            await asyncio.sleep(poll_interval)
    finally:
        file.close()


def _open_at_last_line(path: str | os.PathLike[str]) -> tuple[BinaryIO, bool]:
    """Open ``path`` at the start of its unfinished last line (or at its end).

    The flag is true when that line is already longer than :data:`MAX_LINE`:
    its start is out of sight, and the file is positioned at its end instead.
    """
    file = open(path, "rb")  # noqa: SIM115 - the generator owns it and closes it
    try:
        end = file.seek(0, os.SEEK_END)
        tail_start = max(0, end - MAX_LINE - 1)  # room for a whole line and its newline
        file.seek(tail_start)
        last_newline = file.read(end - tail_start).rfind(b"\n")
        if last_newline >= 0 or tail_start == 0:
            file.seek(tail_start + last_newline + 1)  # the start of the file when -1
            return file, False
        file.seek(end)
        return file, True
    except BaseException:
        file.close()
        raise


def _piece_end(pending: bytes) -> int:
    """Where to cut a piece of an over-long line: at most MAX_LINE bytes, between characters."""
    cut = MAX_LINE
    # A UTF-8 character is at most four bytes, so at most three continuation
    # bytes (0b10xxxxxx) need to move to the next piece with their first byte.
    while cut > MAX_LINE - 3 and pending[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


def _replacement(path: str | os.PathLike[str], current: BinaryIO) -> BinaryIO | None:
    """The new file at ``path``, opened at its start, if it is no longer ``current``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return None  # moved away and not yet replaced: keep reading the old one
    following = os.fstat(current.fileno())
    if (named.st_dev, named.st_ino) == (following.st_dev, following.st_ino):
        return None
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
