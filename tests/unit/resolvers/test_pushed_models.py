"""A model's files pushed with registerModel: written, verified, refused when wrong."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from resolvers.common.errors import UserErrorData
from resolvers.data.digest import measure
from resolvers.data.pushed import PushedFile, tree_checksum, write_pushed

pytestmark = pytest.mark.asyncio

FILES = [("model.onnx", b"\x08\x07onnx bytes"), ("meta/labels.txt", b"no\nyes\n")]


def pushed(files: list[tuple[str, bytes]]) -> list[PushedFile]:
    return [PushedFile(name, base64.b64encode(data).decode()) for name, data in files]


async def test_the_files_are_written_and_their_folder_has_the_senders_checksum(tmp_path: Path) -> None:
    checksum = tree_checksum(FILES).checksum
    written = await write_pushed(tmp_path, pushed(FILES), checksum)
    assert not isinstance(written, UserErrorData), written
    assert (written.path / "meta" / "labels.txt").read_bytes() == b"no\nyes\n"
    assert (await measure(written.path)).checksum == checksum == written.measured.checksum


async def test_a_wrong_checksum_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    wrong = tree_checksum([("model.onnx", b"other bytes")]).checksum
    refused = await write_pushed(tmp_path, pushed(FILES), wrong)
    assert isinstance(refused, UserErrorData) and refused.code == "CHECKSUM_MISMATCH"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape.onnx", "/etc/passwd", "a/../../b", ""])
async def test_a_path_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    files = [(name, b"x")]
    refused = await write_pushed(tmp_path / "root", pushed(files), tree_checksum([("x", b"x")]).checksum)
    assert isinstance(refused, UserErrorData) and refused.code == "INVALID_ARTIFACT"
    assert not (tmp_path / "escape.onnx").exists() and not (tmp_path / "root").exists()


async def test_bad_base64_and_a_bad_checksum_form_are_refused(tmp_path: Path) -> None:
    bad = await write_pushed(tmp_path, [PushedFile("m.onnx", "not base64!")], tree_checksum(FILES).checksum)
    assert isinstance(bad, UserErrorData) and bad.code == "INVALID_ARTIFACT"
    form = await write_pushed(tmp_path, pushed(FILES), "crc32:1234")
    assert isinstance(form, UserErrorData) and form.code == "INVALID_ARTIFACT"
