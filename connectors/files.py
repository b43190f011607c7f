"""File helpers that more than one connector kind needs (jobs' output files)."""

from __future__ import annotations

import os
from pathlib import Path

from connectors.base import MAX_LOG_READ_BYTES, LogChunk

BLOCK = 64 * 1024
#: the most of a file one tail reads: what a tail costs in time and memory is bounded by it
MAX_TAIL_BYTES = 1024 * 1024
#: a longer line is cut to its last this many characters
MAX_LINE_CHARS = 16 * 1024
CUT = "[…] "


def tail_file(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file, read backwards in blocks; ``""`` when there is no file.

    At most MAX_TAIL_BYTES of the file are read (one enormous line costs no more than that),
    and each line is at most MAX_LINE_CHARS long, cut at its start (marked ``[…]``).
    """
    if lines <= 0:
        return ""
    blocks: list[bytes] = []
    try:
        with open(path, "rb") as handle:
            position = handle.seek(0, os.SEEK_END)
            newlines = read = 0
            while position > 0 and newlines <= lines and read < MAX_TAIL_BYTES:
                step = min(BLOCK, position, MAX_TAIL_BYTES - read)
                position -= step
                handle.seek(position)
                block = handle.read(step)
                blocks.append(block)
                newlines += block.count(b"\n")
                read += len(block)
    except FileNotFoundError:
        return ""
    text = b"".join(reversed(blocks)).decode("utf-8", "replace")
    every = text.splitlines()
    kept = [line if len(line) <= MAX_LINE_CHARS else CUT + line[-MAX_LINE_CHARS:] for line in every[-lines:]]
    if kept and position > 0 and len(every) <= lines and not kept[0].startswith(CUT):
        kept[0] = CUT + kept[0]  # the budget ran out inside the first line kept
    return "\n".join(kept) + ("\n" if kept and text.endswith("\n") else "")


def read_file_range(path: Path, offset: int, max_bytes: int) -> LogChunk:
    """At most ``max_bytes`` of a file from byte ``offset`` (negative: the last ``-offset`` bytes).

    No file yet reads as empty at the offset asked for (or 0 from the end). A file shorter than the
    offset (truncated or replaced) reads from its end; the caller sees the start it is given."""
    max_bytes = max(0, min(max_bytes, MAX_LOG_READ_BYTES))
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size + offset) if offset < 0 else min(offset, size)
            if offset < 0:
                max_bytes = min(max_bytes, -offset)
            handle.seek(start)
            data = handle.read(max_bytes)
    except FileNotFoundError:
        return LogChunk(b"", max(0, offset), max(0, offset))
    return LogChunk(data, start, start + len(data))
