"""Size and checksum of a file or a directory tree, computed once, while reading or copying.

A single file's checksum is the digest of its bytes (what ``sha256sum`` prints). A
directory's is the digest of its manifest: one line ``<relative path>\\t<size>\\t<file
digest>\\n`` per regular file, sorted by path, so that two trees with the same files
and contents have the same checksum wherever they are. Symbolic links and special files
are left out (never followed: a job's output must not reach outside it).

``measure`` reads a path; ``TreeDigest`` is the same computation fed by a copier that
hashes each chunk as it writes it (one pass over the data, not a second one). Both skip
a file whose digest the gateway already computed for that very version of it
(``resolvers.data.known``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resolvers.data.known import KNOWN

ALGORITHMS = ("sha256", "sha512", "md5")
CHECKSUM_PATTERN = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|md5:[0-9a-f]{32})$")
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Measured:
    """What the gateway found at a path: total bytes of its files and their checksum."""

    size_bytes: int
    checksum: str
    files: int = 1
    #: (relative path, size, hex digest) of each file ("" for a single file)
    file_digests: tuple[tuple[str, int, str], ...] = field(default=(), compare=False, repr=False)


def algorithm_of(checksum: str | None) -> str:
    """The hash algorithm a checksum was made with ("sha256" when none is given)."""
    if checksum is None:
        return "sha256"
    name = checksum.partition(":")[0]
    if name not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {name!r}")
    return name


def regular_files(root: Path) -> Iterator[tuple[str, Path]]:
    """``(relative posix path, path)`` of every regular file under ``root``, sorted, links not followed."""
    entries: list[tuple[str, Path]] = []
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        subdirectories.sort()
        for name in files:
            path = Path(directory) / name
            if stat.S_ISREG(path.lstat().st_mode):
                entries.append((path.relative_to(root).as_posix(), path))
    yield from sorted(entries)


@dataclass
class TreeDigest:
    """The checksum of a tree, one file at a time: ``begin_file``, ``update`` chunks, ``end_file``."""

    algorithm: str = "sha256"
    single_file: bool = False
    size_bytes: int = 0
    files: int = 0
    _manifest: Any = None
    _current: Any = None
    _current_path: str = ""
    _current_size: int = 0
    _lines: list[tuple[str, int, str]] = field(default_factory=list)

    def begin_file(self, relative_path: str) -> None:
        self._current = hashlib.new(self.algorithm)
        self._current_path = relative_path
        self._current_size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self._current.update(chunk)
        self._current_size += len(chunk)
        self.size_bytes += len(chunk)

    def end_file(self) -> str:
        """Close the file begun last; its hex digest."""
        digest: str = self._current.hexdigest()
        self._lines.append((self._current_path, self._current_size, digest))
        self.files += 1
        self._current = None
        return digest

    def add_known(self, relative_path: str, size: int, digest: str) -> None:
        """A file whose digest is already known (``resolvers.data.known``): counted without being read."""
        self._lines.append((relative_path, size, digest))
        self.size_bytes += size
        self.files += 1

    def result(self) -> Measured:
        if self.single_file:
            assert len(self._lines) == 1
            return Measured(self.size_bytes, f"{self.algorithm}:{self._lines[0][2]}", 1, tuple(self._lines))
        manifest = hashlib.new(self.algorithm)
        for path, size, digest in sorted(self._lines):
            manifest.update(f"{path}\t{size}\t{digest}\n".encode())
        return Measured(self.size_bytes, f"{self.algorithm}:{manifest.hexdigest()}", self.files, tuple(sorted(self._lines)))


def measure_path(path: Path, algorithm: str = "sha256", on_bytes: Callable[[int], None] | None = None) -> Measured:
    """Size and checksum of a regular file or a directory tree (blocking; see ``measure``)."""
    info = path.lstat()
    if stat.S_ISREG(info.st_mode):
        digest = TreeDigest(algorithm, single_file=True)
        _feed(digest, "", path, on_bytes)
        return digest.result()
    if not stat.S_ISDIR(info.st_mode):
        raise FileNotFoundError(f"{path} is neither a regular file nor a directory")
    digest = TreeDigest(algorithm)
    for relative, file_path in regular_files(path):
        _feed(digest, relative, file_path, on_bytes)
    return digest.result()


async def measure(path: Path, algorithm: str = "sha256") -> Measured:
    """Size and checksum of a file or directory, read in a worker thread."""
    return await asyncio.to_thread(measure_path, Path(path), algorithm)


def _feed(digest: TreeDigest, relative: str, path: Path, on_bytes: Callable[[int], None] | None) -> None:
    with path.open("rb") as source:
        before = os.fstat(source.fileno())
        if (known := KNOWN.lookup(before, digest.algorithm)) is not None:
            digest.add_known(relative, before.st_size, known)
            if on_bytes is not None:
                on_bytes(before.st_size)
            return
        began = time.time()
        digest.begin_file(relative)
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        KNOWN.remember(before, os.fstat(source.fileno()), digest.algorithm, digest.end_file(), began)
