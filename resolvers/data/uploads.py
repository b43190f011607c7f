"""Uploads into the gateway's artifact store: a file's bytes become a dataset or a model version.

The bytes go to a sink (``sinks``), hashed as they arrive: ``<store>/<account>/<random>/.partial-<name>``
in the directory store, an unfinished multipart upload to ``<prefix><account>/<random>/<name>``
in an S3-compatible one. Only when all ``Content-Length`` bytes came and their checksum matches
the one the client sent is it published (renamed to ``<name>``; the multipart upload completed),
in the same transaction that records the dataset or model (a failed commit removes it again).
So a record never names a half-written file or object, and a refused or broken upload leaves
nothing. Its URI is the file's ``file://`` path or the object's ``s3://<bucket>/<key>``: staging,
replicas and downloads read either.

A folder comes as a tar stream (``Content-Type: application/x-tar``, what a download of a
folder sends): written to the partial file first, then unpacked into ``.partial-<name>/``
(regular files only, no path outside it), each file hashed as it is written; the checksum
is the folder's (the manifest, see ``digest``), so it is the one the sender's model has.
A folder always goes to the directory store, S3 or not: a record's ``s3://`` URI names one
object.

The same name, version and checksum again find the record they made (200, nothing new is
kept); the same name and version with other bytes are ``ALREADY_EXISTS``.
"""

from __future__ import annotations

import asyncio
import os
import tarfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.access.viewer import Viewer
from resolvers.data.areas import safe_name
from resolvers.data.copier import remove
from resolvers.data.digest import CHECKSUM_PATTERN, CHUNK_BYTES, Measured, TreeDigest, algorithm_of
from resolvers.data.objects import ObjectStore, ObjectStoreFailed
from resolvers.data.quota import storage_refusal
from resolvers.data.service import MAX_TEXT
from resolvers.data.sinks import PARTIAL_PREFIX, FolderSink, ObjectSink, Sink, sweep_objects
from store import datasets as dataset_store
from store.db import Database
from store.tables import DatasetRow, ModelRow
from store.types import utcnow

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
    """Uploads into a folder under the data dir, or into an S3-compatible store when ``objects`` is given."""

    def __init__(self, db: Database, root: Path, max_bytes: int, objects: ObjectStore | None = None) -> None:
        self.db = db
        self.root = Path(root).absolute()
        self.max_bytes = max_bytes
        self.objects = objects

    def sweep(self) -> None:
        """Remove what uploads cut short by a stopped gateway left (blocking; at start)."""
        if self.objects is not None:
            sweep_objects(self.objects)
        if not self.root.exists():
            return
        for partial in self.root.glob(f"*/*/{PARTIAL_PREFIX}*"):
            remove(partial)

    def _sink(self, viewer: Viewer, upload: Upload) -> Sink:
        if self.objects is not None and not upload.folder:
            return ObjectSink(
                self.objects, f"{self.objects.location.prefix}{viewer.account_id}/{uuid.uuid4().hex}/{safe_name(upload.name)}"
            )
        return FolderSink(self.root / str(viewer.account_id) / uuid.uuid4().hex / safe_name(upload.name))

    async def receive(self, viewer: Viewer, upload: Upload, body: AsyncIterator[bytes]) -> Received:
        version = upload.version or "1"
        length = _checked(upload, version, self.max_bytes)
        existing = await self._refusal(viewer, upload, version, length)
        if existing is not None:  # a retry of an upload that was kept: its bytes are read and dropped
            async for _ in body:
                pass
            return Received(existing, created=False)
        sink = self._sink(viewer, upload)
        assert upload.checksum is not None
        algorithm = algorithm_of(upload.checksum)
        try:
            digest = await sink.write(_pieces(body, length, sink.piece_bytes), algorithm)
            size = length
            if isinstance(sink, FolderSink) and upload.folder:
                measured = await asyncio.to_thread(_unpacked, sink, algorithm)
                digest, size = measured.checksum, measured.size_bytes
            if digest != upload.checksum:
                raise UploadRefused(422, "CHECKSUM_MISMATCH", f"the bytes received hash to {digest}, the upload says {upload.checksum}")
            received = await self._record(viewer, upload, version, size, sink)
        except ObjectStoreFailed as failed:
            await asyncio.to_thread(sink.discard)
            raise UploadRefused(503, failed.code, failed.message) from None
        except BaseException:
            await asyncio.to_thread(sink.discard)
            raise
        if not received.created:
            await asyncio.to_thread(sink.discard)
            return received
        await asyncio.to_thread(sink.published, algorithm, digest.partition(":")[2])
        return received

    async def _refusal(self, viewer: Viewer, upload: Upload, version: str, length: int) -> DatasetRow | ModelRow | None:
        async with self.db.read() as session:
            return await _still_allowed(session, viewer, upload, version, length)

    async def _record(self, viewer: Viewer, upload: Upload, version: str, size: int, sink: Sink) -> Received:
        row: DatasetRow | ModelRow
        try:
            async with self.db.transaction() as session:
                # again: another upload may have come first
                existing = await _still_allowed(session, viewer, upload, version, size)
                if existing is not None:
                    return Received(existing, created=False)
                common = dict(owner_id=viewer.account_id, name=upload.name, version=version, uri=sink.uri)
                common.update(size_bytes=size, checksum=upload.checksum, stored_at=utcnow())
                if upload.kind == "Dataset":
                    row = DatasetRow(format=upload.label, **common)
                else:
                    row = ModelRow(framework=upload.label, **common)
                session.add(row)
                await session.flush()
                await asyncio.to_thread(sink.publish)
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


async def _pieces(body: AsyncIterator[bytes], length: int, size: int) -> AsyncIterator[bytes]:
    """The body in pieces of ``size`` bytes (the last may be shorter, or empty for an empty body);
    exactly ``length`` bytes or a refusal."""
    received, pending = 0, bytearray()
    async for chunk in body:
        received += len(chunk)
        if received > length:
            raise UploadRefused(400, "LENGTH_MISMATCH", f"the body is longer than its Content-Length of {length} bytes")
        pending += chunk
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if received < length:
        raise UploadRefused(400, "LENGTH_MISMATCH", f"the body ended after {received} of its {length} bytes")
    if pending or length == 0:
        yield bytes(pending)


def _unpacked(sink: FolderSink, algorithm: str) -> Measured:
    """The sink's partial file, a tar stream, replaced by the folder it holds; the folder's digest."""
    tree = sink.partial.with_name(sink.partial.name + ".tar")
    os.replace(sink.partial, tree)
    measured = _unpack(tree, sink.partial, algorithm)
    remove(tree)
    sink.known = [(sink.final.joinpath(*name.split("/")), hexdigest) for name, _, hexdigest in measured.file_digests]
    return measured


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
