"""Digests the gateway has already computed, remembered per file version so a verified file is not read twice.

A file version is its (device, inode, size, mtime, ctime), all in nanoseconds: any write
changes ctime, and ctime cannot be set back by a user (``touch`` and ``utime`` set it to
now). So when the same key comes back, the bytes are the ones that were hashed, which is
what ``git`` and ``rsync`` rely on too. One refinement from git ("racy git"): a digest is
kept only for a file whose ctime is older than the moment hashing began by more than the
clock's tick, so a write landing in the same tick as the read cannot hide behind an
unchanged key.

The cache lives in the gateway's memory (bounded, least recently used dropped first); a
restarted gateway hashes each file once again.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

#: a file changed less than this long before it was hashed is not remembered (covers coarse clocks)
RACY_SECONDS = 1.0
MAX_ENTRIES = 200_000

Key = tuple[int, int, int, int, int, str]


def version_of(info: os.stat_result, algorithm: str) -> Key:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, algorithm)


class KnownDigests:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Key, str] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def lookup(self, info: os.stat_result, algorithm: str) -> str | None:
        """The hex digest of the file version ``info`` describes, if the gateway computed it."""
        key = version_of(info, algorithm)
        with self._lock:
            digest = self._entries.get(key)
            if digest is not None:
                self._entries.move_to_end(key)
            return digest

    def remember(self, before: os.stat_result, after: os.stat_result, algorithm: str, digest: str, began: float) -> None:
        """Keep ``digest`` for a file read between ``before`` and ``after`` (stats), hashing having begun at
        ``began`` (``time.time()``): only if the file did not change meanwhile nor just before."""
        key = version_of(before, algorithm)
        if key != version_of(after, algorithm) or before.st_ctime_ns / 1e9 > began - RACY_SECONDS:
            return
        with self._lock:
            self._entries[key] = digest
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def remember_copy(self, path: Path, algorithm: str, digest: str) -> None:
        """A copy the gateway wrote and verified: its own version gets the digest it was verified with."""
        info = path.stat()
        self.remember(info, info, algorithm, digest, time.time() + RACY_SECONDS + 1)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: the gateway's one cache (the copier and ``measure`` share it)
KNOWN = KnownDigests()
