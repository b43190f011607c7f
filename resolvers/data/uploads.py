"""Uploads into the gateway's artifact store: a file's bytes become a dataset or a model version.

The bytes go to ``<store>/<account>/<random>/.partial-<name>``, hashed as they arrive; only
when all ``Content-Length`` bytes came and their checksum matches the one the client sent
is the file renamed to ``<name>`` beside it, in the same transaction that records the
dataset or model (a failed commit removes it again). So a record never names a
half-written file, and a refused or broken upload leaves nothing. Its URI is the file's
``file://`` path: staging, replicas and downloads read it like any local dataset.

A folder comes as a tar stream (``Content-Type: application/x-tar``, what a download of a
folder sends): written to the partial file first, then unpacked into ``.partial-<name>/``
(regular files only, no path outside it), each file hashed as it is written; the checksum
is the folder's (the manifest, see ``digest``), so it is the one the sender's model has.

The same name, version and checksum again find the record they made (200, nothing new is
kept); the same name and version with other bytes are ``ALREADY_EXISTS``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tarfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.access.viewer import Viewer
from resolvers.data.areas import file_uri, safe_name
from resolvers.data.copier import remove
from resolvers.data.digest import CHECKSUM_PATTERN, CHUNK_BYTES, Measured, TreeDigest, algorithm_of
from resolvers.data.known import KNOWN
from resolvers.data.quota import storage_refusal
from resolvers.data.service import MAX_TEXT
from store import datasets as dataset_store
from store.db import Database
from store.tables import DatasetRow, ModelRow
from store.types import utcnow

#: bytes gathered before one write (and hash update) in a worker thread
WRITE_BYTES = 1024 * 1024
PARTIAL_PREFIX = ".partial-"
#: the artifact store's folder under the gateway's data dir
ARTIFACTS_FOLDER = "artifacts"


class UploadRefused(Exception):
    """An upload the gateway did not keep: an HTTP status, a code, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Upload:
    kind: str  # "Dataset" or "Model"
    name: str
    version: str | None
    checksum: str | None
    length: int | None
    label: str | None = None  # a dataset's format, a model's framework
    #: the body is a tar stream of a folder, and the checksum the folder's
    folder: bool = False


@dataclass(frozen=True)
class Received:
    row: DatasetRow | ModelRow
    #: False: the same upload made it before, and it is that record
    created: bool = True


class ArtifactStore:
    def __init__(self, db: Database, root: Path, max_bytes: int) -> None:
        self.db = db
        self.root = Path(root).absolute()
        self.max_bytes = max_bytes

    def sweep(self) -> None:
        """Remove what uploads cut short by a stopped gateway left (blocking; at start)."""
        if not self.root.exists():
            return
        for partial in self.root.glob(f"*/*/{PARTIAL_PREFIX}*"):
            remove(partial)

    async def receive(self, viewer: Viewer, upload: Upload, body: AsyncIterator[bytes]) -> Received:
        version = upload.version or "1"
        length = _checked(upload, version, self.max_bytes)
        existing = await self._refusal(viewer, upload, version, length)
        if existing is not None:  # a retry of an upload that was kept: its bytes are read and dropped
            async for _ in body:
                pass
            return Received(existing, created=False)
        folder = self.root / str(viewer.account_id) / uuid.uuid4().hex
        final = folder / safe_name(upload.name)
        partial = folder / f"{PARTIAL_PREFIX}{final.name}"
        try:
            await asyncio.to_thread(folder.mkdir, parents=True)
            assert upload.checksum is not None
            algorithm = algorithm_of(upload.checksum)
            digest = await _write(body, partial, algorithm, length)
            size, known = length, [(partial, digest.partition(":")[2])]
            if upload.folder:
                tree = partial.with_name(partial.name + ".tar")
                await asyncio.to_thread(os.replace, partial, tree)
                measured = await asyncio.to_thread(_unpack, tree, partial, algorithm)
                await asyncio.to_thread(remove, tree)
                digest, size = measured.checksum, measured.size_bytes
                known = [(partial.joinpath(*name.split("/")), hexdigest) for name, _, hexdigest in measured.file_digests]
            if digest != upload.checksum:
                raise UploadRefused(422, "CHECKSUM_MISMATCH", f"the bytes received hash to {digest}, the upload says {upload.checksum}")
            received = await self._record(viewer, upload, version, size, partial, final)
            if not received.created:
                await asyncio.to_thread(remove, folder)
                return received
            for path, hexdigest in known:
                path = final / path.relative_to(partial) if path != partial else final
                await asyncio.to_thread(KNOWN.remember_copy, path, algorithm, hexdigest)
            return received
        except BaseException:
            await asyncio.to_thread(remove, folder)
            raise

    async def _refusal(self, viewer: Viewer, upload: Upload, version: str, length: int) -> DatasetRow | ModelRow | None:
        async with self.db.read() as session:
            return await _still_allowed(session, viewer, upload, version, length)

    async def _record(self, viewer: Viewer, upload: Upload, version: str, size: int, partial: Path, final: Path) -> Received:
        row: DatasetRow | ModelRow
        try:
            async with self.db.transaction() as session:
                # again: another upload may have come first
                existing = await _still_allowed(session, viewer, upload, version, size)
                if existing is not None:
                    return Received(existing, created=False)
                common = dict(owner_id=viewer.account_id, name=upload.name, version=version, uri=file_uri(final))
                common.update(size_bytes=size, checksum=upload.checksum, stored_at=utcnow())
                if upload.kind == "Dataset":
                    row = DatasetRow(format=upload.label, **common)
                else:
                    row = ModelRow(framework=upload.label, **common)
                session.add(row)
                await session.flush()
                await asyncio.to_thread(_publish, partial, final)
        except IntegrityError as error:  # a concurrent twin registered the same name and version first
            async with self.db.read() as session:
                existing = await _find(session, viewer, upload, version)
            if existing is not None and existing.checksum == upload.checksum:
                return Received(existing, created=False)
            raise UploadRefused(409, "ALREADY_EXISTS", f"{upload.kind.lower()} {upload.name} version {version} already exists") from error
        return Received(row)


def _checked(upload: Upload, version: str, max_bytes: int) -> int:
    if not upload.name.strip() or len(upload.name) > MAX_TEXT:
        raise UploadRefused(400, "INVALID_NAME", "the name must be 1 to 200 characters")
    if not (0 < len(version.strip()) <= 100):
        raise UploadRefused(400, "INVALID_VERSION", "the version must be 1 to 100 characters")
    if upload.checksum is None:
        raise UploadRefused(
            400, "CHECKSUM_REQUIRED", 'an upload needs an X-Checksum header, e.g. "sha256:<64 hex digits>" (what sha256sum prints)'
        )
    if not CHECKSUM_PATTERN.match(upload.checksum):
        raise UploadRefused(400, "INVALID_CHECKSUM", 'X-Checksum must look like "sha256:<64 hex digits>"')
    if upload.length is None:
        raise UploadRefused(411, "LENGTH_REQUIRED", "an upload needs a Content-Length header")
    if upload.length > max_bytes:
        raise UploadRefused(413, "UPLOAD_TOO_LARGE", f"an upload may be at most {max_bytes} bytes; this one is {upload.length}")
    return upload.length


async def _find(session: AsyncSession, viewer: Viewer, upload: Upload, version: str) -> DatasetRow | ModelRow | None:
    if upload.kind == "Dataset":
        return await dataset_store.find_dataset(session, viewer.account_id, upload.name, version)
    return await dataset_store.find_model(session, viewer.account_id, upload.name, version)


async def _still_allowed(session: AsyncSession, viewer: Viewer, upload: Upload, version: str, length: int) -> DatasetRow | ModelRow | None:
    """None when the upload may be kept; the record it made before when it is a retry of one; else a refusal."""
    existing = await _find(session, viewer, upload, version)
    if existing is not None:
        if existing.checksum == upload.checksum:
            return existing
        raise UploadRefused(409, "ALREADY_EXISTS", f"{upload.kind.lower()} {upload.name} version {version} already exists")
    refusal = await storage_refusal(session, viewer.account_id, length)
    if refusal is not None:
        raise UploadRefused(507, refusal.code, refusal.message)
    return None


async def _write(body: AsyncIterator[bytes], partial: Path, algorithm: str, length: int) -> str:
    """Write the body to ``partial`` and hash it on the way; exactly ``length`` bytes or a refusal."""
    hasher = hashlib.new(algorithm)
    received, pending = 0, bytearray()
    with partial.open("wb") as writer:

        def flush(data: bytes) -> None:
            writer.write(data)
            hasher.update(data)

        async for chunk in body:
            received += len(chunk)
            if received > length:
                raise UploadRefused(400, "LENGTH_MISMATCH", f"the body is longer than its Content-Length of {length} bytes")
            pending += chunk
            if len(pending) >= WRITE_BYTES:
                await asyncio.to_thread(flush, bytes(pending))
                pending.clear()
        await asyncio.to_thread(flush, bytes(pending))
        await asyncio.to_thread(os.fsync, writer.fileno())
    if received < length:
        raise UploadRefused(400, "LENGTH_MISMATCH", f"the body ended after {received} of its {length} bytes")
    return f"{algorithm}:{hasher.hexdigest()}"


def _unpack(tree: Path, target: Path, algorithm: str) -> Measured:
    """The tar ``tree`` unpacked into ``target`` (regular files and folders only), each file hashed as it is written."""
    digest = TreeDigest(algorithm)
    target.mkdir()
    names: set[str] = set()
    try:
        with tarfile.open(tree, "r:") as archive:
            for member in archive:
                relative = _inside(member.name)
                if member.isdir():  # made as its files need it (an empty one is no part of the checksum)
                    continue
                if not member.isreg() or relative is None or "/".join(relative) in names:
                    raise UploadRefused(422, "INVALID_ARCHIVE", f"{member.name!r} is not a regular file inside the folder, or comes twice")
                names.add("/".join(relative))
                path = target.joinpath(*relative)
                path.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                digest.begin_file("/".join(relative))
                with path.open("wb") as writer:
                    while chunk := source.read(CHUNK_BYTES):
                        writer.write(chunk)
                        digest.update(chunk)
                    os.fsync(writer.fileno())
                digest.end_file()
    except tarfile.TarError as error:
        raise UploadRefused(422, "INVALID_ARCHIVE", f"the body is not a tar stream: {error}") from error
    if not names:
        raise UploadRefused(422, "INVALID_ARCHIVE", "the tar stream holds no file")
    return digest.result()


def _inside(name: str) -> list[str] | None:
    """The parts of a member's path inside the folder; None for one that would leave it."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or name.startswith("/") or ".." in parts or "\x00" in name:
        return None
    return parts


def _publish(partial: Path, final: Path) -> None:
    # a job staging it may run as a user of its own: it reads it, never writes it
    if partial.is_dir():
        for directory, _, files in os.walk(partial):
            Path(directory).chmod(0o755)
            for name in files:
                (Path(directory) / name).chmod(0o644)
    else:
        partial.chmod(0o644)
    os.replace(partial, final)
