"""Copy a dataset to a destination folder, hashing every chunk as it is written.

The copy goes to a hidden ``.partial-<name>`` sibling first; only when the checksum it
computed on the way matches the expected one is it renamed into place (one rename, so a
destination either holds a verified copy or nothing). Any failure removes the partial
copy. Sources: a local path (``file://``, a file or a directory tree), an HTTP(S) URL
(one file; a checksum is required), or an object of the S3-compatible artifact store
(``s3://``, one file, streamed from the store).

Blocking: run it in a worker thread. ``on_bytes`` is told each chunk's size (progress)
and may raise ``TransferStopped`` to abandon the copy (cancelled, or the gateway stops).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx

from resolvers.data.areas import path_of
from resolvers.data.digest import CHUNK_BYTES, Measured, TreeDigest, algorithm_of, regular_files
from resolvers.data.known import KNOWN, version_of
from resolvers.data.objects import ObjectStore, ObjectStoreFailed

HTTP_TIMEOUT_SECONDS = 30.0
#: how much the kernel copies per call (progress, and the stop switch, are checked between calls)
COPY_CHUNK_BYTES = 1024 * 1024


class TransferFailed(Exception):
    """A copy that did not complete; ``code`` says why (the job or transfer fails with it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TransferStopped(TransferFailed):
    def __init__(self, message: str = "the transfer was stopped") -> None:
        super().__init__("TRANSFER_STOPPED", message)


def readable_scheme(uri: str) -> bool:
    return urlparse(uri).scheme in ("file", "http", "https")


def source_size(uri: str) -> int | None:
    """Bytes at a local source (None when it is not local or cannot be read)."""
    path = path_of(uri)
    if path is None or not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for _, file in regular_files(path))


def partial_of(destination: Path) -> Path:
    return destination.parent / f".partial-{destination.name}"


def copy_verified(
    uri: str, destination: Path, checksum: str | None, on_bytes: Callable[[int], None], objects: ObjectStore | None = None
) -> Measured:
    """Copy ``uri`` to ``destination`` and verify it against ``checksum`` (when given) in one pass."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https") and checksum is None:
        raise TransferFailed("CHECKSUM_REQUIRED", "a dataset downloaded over HTTP(S) must have a checksum to verify it against")
    algorithm = algorithm_of(checksum)
    partial = partial_of(destination)
    remove(partial)  # left by an interrupted attempt
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        if scheme == "file":
            measured = _copy_local(uri, partial, algorithm, on_bytes)
        elif scheme in ("http", "https"):
            measured = _download(uri, partial, algorithm, on_bytes)
        elif objects is not None and objects.key_of(uri) is not None:
            measured = _fetch_object(objects, uri, partial, algorithm, on_bytes)
        else:
            raise TransferFailed("UNSUPPORTED_URI", f"the gateway cannot read {scheme}:// URIs (file, http and https it can)")
        if checksum is not None and measured.checksum != checksum:
            raise TransferFailed("CHECKSUM_MISMATCH", f"the copy's checksum is {measured.checksum}, the dataset says {checksum}")
        remove(destination)
        os.replace(partial, destination)
        _readable(destination)
        _remember_copy(destination, algorithm, measured)
        return measured
    except BaseException:
        remove(partial)
        raise


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _copy_local(uri: str, partial: Path, algorithm: str, on_bytes: Callable[[int], None]) -> Measured:
    source = path_of(uri)
    if source is None or not source.exists():
        raise TransferFailed("SOURCE_UNREADABLE", f"{uri} cannot be read from here")
    if source.is_file():
        digest = TreeDigest(algorithm, single_file=True)
        _copy_file(source, partial, "", digest, on_bytes)
        return digest.result()
    digest = TreeDigest(algorithm)
    partial.mkdir(parents=True)
    for relative, file in regular_files(source):
        target = partial / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_file(file, target, relative, digest, on_bytes)
    return digest.result()


def _copy_file(source: Path, target: Path, relative: str, digest: TreeDigest, on_bytes: Callable[[int], None]) -> None:
    """Copy one file and hash it at the same time: the kernel copies (``copy_file_range``, no trip
    through Python) while a second thread reads the same bytes, hot in the page cache, into the
    digest; neither waits for the other, and no pass over the data is left for afterwards.

    A source whose digest the gateway already computed for this very version of it (same inode,
    size, mtime and ctime: ``resolvers.data.known``) is only copied; if it changes during the
    copy, it is copied again with the hashing thread."""
    try:
        before = source.stat()
        known = KNOWN.lookup(before, digest.algorithm)
        if known is not None:
            with source.open("rb", buffering=0) as reader, target.open("wb", buffering=0) as writer:
                _kernel_copy(reader.fileno(), writer.fileno(), before.st_size, on_bytes)
                unchanged = version_of(os.fstat(reader.fileno()), digest.algorithm) == version_of(before, digest.algorithm)
            if unchanged:
                digest.add_known(relative, before.st_size, known)
                return
    except OSError as error:
        raise TransferFailed("COPY_FAILED", f"copying {relative or source.name} failed: {error.strerror or error}") from error
    _copy_and_hash(source, target, relative, digest, on_bytes)


def _copy_and_hash(source: Path, target: Path, relative: str, digest: TreeDigest, on_bytes: Callable[[int], None]) -> None:
    digest.begin_file(relative)
    before = source.stat()
    began = time.time()
    failure: list[BaseException] = []
    hasher = threading.Thread(target=_hash_file, args=(source, before.st_size, digest, failure), name="copier-hash")
    hasher.start()
    try:
        with source.open("rb", buffering=0) as reader, target.open("wb", buffering=0) as writer:
            _kernel_copy(reader.fileno(), writer.fileno(), before.st_size, on_bytes)
    except OSError as error:
        raise TransferFailed("COPY_FAILED", f"copying {relative or source.name} failed: {error.strerror or error}") from error
    finally:
        hasher.join()
    if failure:
        raise TransferFailed("COPY_FAILED", f"reading {relative or source.name} failed: {failure[0]}")
    KNOWN.remember(before, source.stat(), digest.algorithm, digest.end_file(), began)


def _kernel_copy(reader: int, writer: int, size: int, on_bytes: Callable[[int], None]) -> None:
    copied = 0
    while copied < size:
        try:
            count = os.copy_file_range(reader, writer, min(COPY_CHUNK_BYTES, size - copied))
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            count = _plain_copy(reader, writer, min(COPY_CHUNK_BYTES, size - copied))
        if count == 0:
            raise OSError(errno.EIO, "the source ended early")
        copied += count
        on_bytes(count)


def _plain_copy(reader: int, writer: int, count: int) -> int:
    """Where the filesystems cannot copy in the kernel (another device, an old kernel)."""
    chunk = os.read(reader, count)
    view, written = memoryview(chunk), 0
    while written < len(chunk):
        written += os.write(writer, view[written:])
    return len(chunk)


def _hash_file(source: Path, size: int, digest: TreeDigest, failure: list[BaseException]) -> None:
    try:
        with source.open("rb", buffering=0) as reader:
            left = size
            while left > 0 and (chunk := reader.read(min(CHUNK_BYTES, left))):
                digest.update(chunk)
                left -= len(chunk)
    except OSError as error:
        failure.append(error)


def _download(uri: str, partial: Path, algorithm: str, on_bytes: Callable[[int], None]) -> Measured:
    digest = TreeDigest(algorithm, single_file=True)
    digest.begin_file("")
    try:
        with httpx.stream("GET", uri, timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=True) as answer:
            if answer.status_code != 200:
                raise TransferFailed("SOURCE_UNREADABLE", f"GET {uri} answered {answer.status_code}")
            with partial.open("wb") as writer:
                for chunk in answer.iter_bytes(CHUNK_BYTES):
                    writer.write(chunk)
                    digest.update(chunk)
                    on_bytes(len(chunk))
    except httpx.HTTPError as error:
        raise TransferFailed("SOURCE_UNREADABLE", f"downloading {uri} failed: {type(error).__name__}") from error
    digest.end_file()
    return digest.result()


def _fetch_object(objects: ObjectStore, uri: str, partial: Path, algorithm: str, on_bytes: Callable[[int], None]) -> Measured:
    key = objects.key_of(uri)
    assert key is not None
    digest = TreeDigest(algorithm, single_file=True)
    digest.begin_file("")
    try:
        size = objects.size(key)
        if size is None:
            raise TransferFailed("SOURCE_UNREADABLE", f"{uri} is not in the artifact store")
        with partial.open("wb") as writer:
            for chunk in objects.read(key, 0, size - 1):
                writer.write(chunk)
                digest.update(chunk)
                on_bytes(len(chunk))
    except ObjectStoreFailed as failed:
        raise TransferFailed("SOURCE_UNREADABLE", failed.message) from None
    digest.end_file()
    return digest.result()


def _remember_copy(destination: Path, algorithm: str, measured: Measured) -> None:
    """The copy's files carry the digests they were verified with: copying from it later reads them once.
    (Nobody else has written them: the job it is staged for has not started, a replica is not listed yet.)"""
    with contextlib.suppress(OSError):
        for relative, _, digest in measured.file_digests:
            KNOWN.remember_copy(destination / relative if relative else destination, algorithm, digest)


def _readable(path: Path) -> None:
    """A job may run as a user of its own: it reads the copy, never writes it."""
    if path.is_file():
        path.chmod(0o644)
        return
    for directory, _, files in os.walk(path):
        Path(directory).chmod(0o755)
        for name in files:
            (Path(directory) / name).chmod(0o644)
