"""Looking at processes from tests."""

from __future__ import annotations

from pathlib import Path


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group; zombies wait on a lazy init."""
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
