"""Downloads of a dataset or model the caller owns: one file as it is, a folder as a tar stream.

The tar is built on the fly and always the same bytes for the same folder (sorted names,
fixed owner and times), so its length is known in advance and a byte range of it can be
served by skipping to the parts the range covers: memory stays constant whatever the size.
An object in the S3-compatible artifact store is one file, read with ranged GETs.
"""

from __future__ import annotations

import asyncio
import re
import tarfile
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from resolvers.data.areas import path_of, safe_name
from resolvers.data.digest import CHUNK_BYTES, regular_files
from resolvers.data.objects import ObjectStore
from store import datasets as dataset_store
from store.db import Database

BLOCK = 512
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    pass


@dataclass(frozen=True)
class Part:
    """A piece of the download: literal bytes (tar headers, padding), a whole file, or a whole object."""

    length: int
    data: bytes | None = None
    path: Path | None = None
    #: an object's bytes ``first`` to ``last`` inclusive, streamed from the object store
    fetch: Callable[[int, int], Iterator[bytes]] | None = None


@dataclass(frozen=True)
class Download:
    parts: Sequence[Part]
    filename: str
    media_type: str

    @property
    def length(self) -> int:
        return sum(part.length for part in self.parts)

    def chunks(self, start: int = 0, end: int | None = None) -> Generator[bytes, None, None]:
        """The bytes from ``start`` to ``end`` inclusive (blocking reads; a worker thread iterates it)."""
        last = self.length - 1 if end is None else end
        offset = 0
        for part in self.parts:
            part_end = offset + part.length - 1
            if part_end >= start and offset <= last:
                lo, hi = max(start, offset) - offset, min(last, part_end) - offset
                yield from _slice(part, lo, hi)
            offset += part.length
            if offset > last:
                return


def byte_range(header: str | None, length: int) -> tuple[int, int] | None:
    """(first, last) of a ``Range: bytes=a-b`` header; None without one; RangeNotSatisfiable outside the file."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        raise RangeNotSatisfiable(header)
    first, last = match.groups()
    if first == "":  # the last N bytes
        count = int(last)
        if count == 0 or length == 0:
            raise RangeNotSatisfiable(header)
        return max(0, length - count), length - 1
    begin = int(first)
    finish = min(int(last), length - 1) if last else length - 1
    if begin >= length or finish < begin:
        raise RangeNotSatisfiable(header)
    return begin, finish


def plan(path: Path, name: str) -> Download:
    if path.is_file():
        return Download([Part(path.stat().st_size, path=path)], safe_name(name), "application/octet-stream")
    parts: list[Part] = []
    for relative, file in regular_files(path):
        size = file.stat().st_size
        info = tarfile.TarInfo(relative)
        info.size, info.mode, info.mtime = size, 0o644, 0
        header = info.tobuf(format=tarfile.PAX_FORMAT)
        parts += [Part(len(header), data=header), Part(size, path=file)]
        if size % BLOCK:
            parts.append(Part(BLOCK - size % BLOCK, data=bytes(BLOCK - size % BLOCK)))
    parts.append(Part(2 * BLOCK, data=bytes(2 * BLOCK)))
    return Download(parts, f"{safe_name(name)}.tar", "application/x-tar")


def plan_object(objects: ObjectStore, key: str, size: int, name: str) -> Download:
    return Download([Part(size, fetch=lambda first, last: objects.read(key, first, last))], safe_name(name), "application/octet-stream")


def _slice(part: Part, lo: int, hi: int) -> Iterator[bytes]:
    if part.data is not None:
        yield part.data[lo : hi + 1]
        return
    if part.fetch is not None:
        yield from part.fetch(lo, hi)
        return
    assert part.path is not None
    with part.path.open("rb") as source:
        source.seek(lo)
        left = hi - lo + 1
        while left > 0:
            chunk = source.read(min(CHUNK_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


class Downloads:
    def __init__(self, db: Database, objects: ObjectStore | None = None) -> None:
        self.db = db
        self.objects = objects

    async def locate(self, kind: str, key: int, scope: int | None) -> Download | None:
        """What to send for the caller's dataset or model ``key`` (None: missing, another account's, or no local copy)."""
        async with self.db.read() as session:
            if kind == "Dataset":
                row = (await dataset_store.datasets_by_ids(session, [key], scope)).get(key)
                replicas = (await dataset_store.replicas_by_datasets(session, [key]))[key] if row else []
            else:
                row = (await dataset_store.models_by_ids(session, [key], scope)).get(key)  # type: ignore[assignment]
                replicas = (await dataset_store.replicas_by_models(session, [key]))[key] if row else []  # type: ignore[assignment]
        if row is None:
            return None
        uris = [replica.uri for replica in replicas if replica.state == "VERIFIED"] + [row.uri]
        # an s3:// uri is read only for what was uploaded here: a registered uri may not name another account's object
        return await self.of_uris(uris, row.name, objects=row.stored_at is not None)

    async def of_uris(self, uris: Sequence[str], name: str | None = None, *, objects: bool = True) -> Download | None:
        """The first of ``uris`` the gateway can read, as a download (raises ObjectStoreFailed when the store fails)."""
        for uri in uris:
            path = path_of(uri)
            if path is not None and path.exists():
                return plan(path, name or path.name)
            key = self.objects.key_of(uri) if objects and self.objects is not None else None
            if key is not None and self.objects is not None:
                size = await asyncio.to_thread(self.objects.size, key)
                if size is not None:
                    return plan_object(self.objects, key, size, name or key.rpartition("/")[2])
        return None
