"""Digests remembered per file version: a verified file is not hashed again, a changed one always is."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from resolvers.data.copier import TransferFailed, copy_verified
from resolvers.data.digest import measure_path
from resolvers.data.known import KNOWN, KnownDigests

LATER = 10.0  # "hashing began well after the file's last change": what an aged file looks like


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    KNOWN.clear()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_remembered_digest_is_used_instead_of_reading_the_file(tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"a" * 5000)
    pretend = hashlib.sha256(b"something else").hexdigest()
    info = source.stat()
    KNOWN.remember(info, info, "sha256", pretend, time.time() + LATER)
    # the copier trusts the digest it knows for this inode/size/mtime/ctime: proof it did not read the file
    measured = copy_verified(source.as_uri(), tmp_path / "copy.bin", "sha256:" + pretend, lambda _: None)
    assert measured.checksum == "sha256:" + pretend
    assert (tmp_path / "copy.bin").read_bytes() == b"a" * 5000
    assert measure_path(source).checksum == "sha256:" + pretend


def test_a_file_changed_behind_a_restored_mtime_is_hashed_again_and_refused(tmp_path: Path) -> None:
    source = tmp_path / "corpus"
    source.mkdir()
    (source / "a.txt").write_bytes(b"good data\n")
    (source / "b.txt").write_bytes(b"more data\n")
    before = (source / "a.txt").stat()
    KNOWN.remember(before, before, "sha256", hashlib.sha256(b"good data\n").hexdigest(), time.time() + LATER)
    good = measure_path(source).checksum
    # same size, mtime put back: ctime still moves, so the remembered digest no longer applies
    (source / "a.txt").write_bytes(b"evil data\n")
    os.utime(source / "a.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(TransferFailed) as failure:
        copy_verified(source.as_uri(), tmp_path / "staged", good, lambda _: None)
    assert failure.value.code == "CHECKSUM_MISMATCH"
    assert not (tmp_path / "staged").exists() and not (tmp_path / ".partial-staged").exists()


def test_a_file_changed_just_before_it_was_hashed_is_not_remembered(tmp_path: Path) -> None:
    source = tmp_path / "fresh.bin"
    source.write_bytes(b"x" * 100)
    measure_path(source)  # written this instant: a write in the same clock tick could hide behind its key
    assert KNOWN.lookup(source.stat(), "sha256") is None
    info = source.stat()
    KNOWN.remember(info, info, "sha256", "00", time.time() + LATER)
    assert KNOWN.lookup(info, "sha256") == "00"
    assert KNOWN.lookup(info, "sha512") is None  # per algorithm


def test_a_verified_copy_carries_its_digest_and_the_cache_is_bounded(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "w.bin").write_bytes(b"w" * 3000)
    checksum = measure_path(source).checksum
    copy_verified(source.as_uri(), tmp_path / "replica", checksum, lambda _: None)
    assert KNOWN.lookup((tmp_path / "replica" / "w.bin").stat(), "sha256") == hashlib.sha256(b"w" * 3000).hexdigest()

    small = KnownDigests(max_entries=2)
    files = [tmp_path / f"f{index}" for index in range(3)]
    for index, file in enumerate(files):
        file.write_bytes(bytes([index]))
        small.remember(file.stat(), file.stat(), "sha256", str(index), time.time() + LATER)
    assert [small.lookup(file.stat(), "sha256") for file in files] == [None, "1", "2"]
