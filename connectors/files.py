"""File helpers that more than one connector kind needs (jobs' output files)."""

from __future__ import annotations

import os
from pathlib import Path


def tail_file(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file, read backwards in blocks; ``""`` when there is no file."""
    if lines <= 0:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            position = handle.tell()
            data = b""
            while position > 0 and data.count(b"\n") <= lines:
                step = min(8192, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) + ("\n" if kept and text.endswith("\n") else "")
