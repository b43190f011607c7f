"""Follow LOCAL job directories as they are written (Linux inotify, through ctypes).

The supervisor's child writes ``output.log`` directly and the supervisor renames
``child.json`` and ``result.json`` into place; inotify tells of each of these at once, so
the connector learns of a progress line or an end within milliseconds instead of at the
next poll. Where inotify is missing (not Linux, or no watch left) ``DirectoryWatch.start``
returns False and nothing changes: the reconciler's polling still finds everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

IN_MODIFY = 0x00000002
IN_MOVED_TO = 0x00000080
IN_IGNORED = 0x00008000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
#: the files of a job directory worth waking for (the others are the supervisor's own)
OUTPUT = "output.log"
STATE_FILES = frozenset({"child.json", "result.json"})


class DirectoryWatch:
    """Calls ``on_change(external_id, file_name)`` for each watched file event, in the event loop."""

    def __init__(self, on_change: Callable[[str, str], None]) -> None:
        self.on_change = on_change
        self._fd: int | None = None
        self._libc: ctypes.CDLL | None = None
        self._by_wd: dict[int, str] = {}
        self._by_id: dict[str, int] = {}

    def start(self) -> bool:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return False
        if fd < 0:
            return False
        self._libc, self._fd = libc, fd
        asyncio.get_running_loop().add_reader(fd, self._read)
        return True

    def close(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None
        self._by_wd.clear()
        self._by_id.clear()

    def watch(self, external_id: str, directory: Path) -> None:
        if self._fd is None or self._libc is None or external_id in self._by_id:
            return
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(directory), IN_MODIFY | IN_MOVED_TO)
        if wd < 0:  # out of watches: this job is left to polling
            log.debug("cannot watch %s: errno %s", directory, ctypes.get_errno())
            return
        self._by_wd[wd] = external_id
        self._by_id[external_id] = wd

    def unwatch(self, external_id: str) -> None:
        wd = self._by_id.pop(external_id, None)
        if wd is None or self._fd is None or self._libc is None:
            return
        self._by_wd.pop(wd, None)
        self._libc.inotify_rm_watch(self._fd, wd)

    def _read(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0").decode(errors="replace")
            offset += _EVENT.size + length
            if mask & IN_IGNORED:
                external_id = self._by_wd.pop(wd, None)
                if external_id is not None:
                    self._by_id.pop(external_id, None)
                continue
            external_id = self._by_wd.get(wd)
            if external_id is not None and (name == OUTPUT or name in STATE_FILES):
                self.on_change(external_id, name)
