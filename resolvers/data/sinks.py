"""Where an upload's bytes go while they arrive, hashed on the way, and how they become visible.

* ``FolderSink``: ``<folder>/.partial-<name>``, renamed to ``<name>`` when published.
* ``ObjectSink``: a multipart upload to the object's final key. Parts are invisible until the
  upload is completed, which is what publishing does (inside the transaction that records the
  upload); a refused or broken upload is aborted, and one cut short by a killed gateway is
  aborted by the sweep at the next start. A completed object whose record then fails to
  commit is deleted again.

Both are told to ``discard`` on any failure, and never raise from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from resolvers.data.areas import file_uri
from resolvers.data.copier import remove
from resolvers.data.known import KNOWN
from resolvers.data.objects import ObjectStore, ObjectStoreFailed

log = logging.getLogger(__name__)

#: bytes gathered before one write (and hash update) in a worker thread
WRITE_BYTES = 1024 * 1024
PARTIAL_PREFIX = ".partial-"


class Sink(Protocol):
    uri: str
    piece_bytes: int

    async def write(self, pieces: AsyncIterator[bytes], algorithm: str) -> str:
        """Take every piece; the digest of them all (``<algorithm>:<hex>``)."""
        ...

    def publish(self) -> None:
        """Make the bytes visible at ``uri`` (blocking)."""

    def discard(self) -> None:
        """Remove whatever was written (blocking; never raises)."""

    def published(self, algorithm: str, digest: str) -> None:
        """Told once the record is committed (blocking)."""


class FolderSink:
    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = final.parent / f"{PARTIAL_PREFIX}{final.name}"
        self.uri = file_uri(final)
        self.piece_bytes = WRITE_BYTES
        #: a folder's files with their digests, once a tar stream was unpacked into ``partial``
        self.known: list[tuple[Path, str]] = []

    async def write(self, pieces: AsyncIterator[bytes], algorithm: str) -> str:
        await asyncio.to_thread(self.final.parent.mkdir, parents=True)
        hasher = hashlib.new(algorithm)
        with self.partial.open("wb") as writer:

            def flush(data: bytes) -> None:
                writer.write(data)
                hasher.update(data)

            async for piece in pieces:
                await asyncio.to_thread(flush, piece)
            await asyncio.to_thread(os.fsync, writer.fileno())
        return f"{algorithm}:{hasher.hexdigest()}"

    def publish(self) -> None:
        # a job staging it may run as a user of its own: it reads it, never writes it
        if self.partial.is_dir():
            for directory, _, files in os.walk(self.partial):
                Path(directory).chmod(0o755)
                for name in files:
                    (Path(directory) / name).chmod(0o644)
        else:
            self.partial.chmod(0o644)
        os.replace(self.partial, self.final)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            remove(self.final.parent)

    def published(self, algorithm: str, digest: str) -> None:
        for path, hexdigest in self.known or [(self.final, digest)]:
            KNOWN.remember_copy(path, algorithm, hexdigest)


class ObjectSink:
    def __init__(self, objects: ObjectStore, key: str) -> None:
        self.objects = objects
        self.key = key
        self.uri = objects.uri(key)
        self.piece_bytes = objects.part_bytes
        self.upload_id: str | None = None
        self.etags: list[str] = []
        self.completed = False

    async def write(self, pieces: AsyncIterator[bytes], algorithm: str) -> str:
        """Each piece is a part; the next piece is received while the previous one is sent (two in memory)."""
        hasher = hashlib.new(algorithm)
        upload_id = await asyncio.to_thread(self.objects.begin, self.key)
        self.upload_id = upload_id

        def send(number: int, piece: bytes) -> str:
            hasher.update(piece)
            return self.objects.put_part(self.key, upload_id, number, piece)

        sending: asyncio.Future[str] | None = None
        try:
            async for piece in pieces:
                if sending is not None:
                    self.etags.append(await sending)
                sending = asyncio.ensure_future(asyncio.to_thread(send, len(self.etags) + 1, piece))
            if sending is not None:
                self.etags.append(await sending)
        except BaseException:
            if sending is not None:  # a part still on its way would outlive an abort sent now
                await asyncio.wait({sending})
            raise
        return f"{algorithm}:{hasher.hexdigest()}"

    def publish(self) -> None:
        assert self.upload_id is not None
        self.objects.complete(self.key, self.upload_id, self.etags)
        self.completed = True

    def discard(self) -> None:
        try:
            if self.completed:
                self.objects.delete(self.key)
            elif self.upload_id is not None:
                self.objects.abort(self.key, self.upload_id)
        except ObjectStoreFailed as failed:
            log.warning("could not remove the unfinished upload %s: %s (the next start aborts it)", self.key, failed.message)

    def published(self, algorithm: str, digest: str) -> None:
        return None


def sweep_objects(objects: ObjectStore) -> None:
    """Make the bucket if needed; abort the multipart uploads a stopped gateway left (blocking; at start)."""
    try:
        objects.ensure_bucket()
        for pending in objects.pending_uploads():
            objects.abort(pending.key, pending.upload_id)
    except ObjectStoreFailed as failed:
        log.error("the artifact store %r cannot be reached: %s", objects, failed.message)
