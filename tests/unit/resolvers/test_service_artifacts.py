"""The verified copy of a model's artifact: a folder or a file arrives with the source's checksum,
and a source that is not what the model registered is refused before anything is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolvers.data.digest import measure
from resolvers.services.artifacts import ArtifactMismatch, copy_verified, destination


async def test_a_folder_is_copied_with_its_checksum(tmp_path: Path) -> None:
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "model.onnx").write_bytes(b"onnx" * 1000)
    (source / "sub" / "vocab.txt").write_text("a\nb\n")
    registered = (await measure(source)).checksum
    copied = await copy_verified(source, destination(tmp_path / "center", 7, source), registered)
    assert copied.path == tmp_path / "center" / "models" / "service-7" / "model"
    assert copied.checksum == registered and copied.size_bytes == 4004
    assert (copied.path / "sub" / "vocab.txt").read_text() == "a\nb\n"


async def test_a_source_that_is_not_the_registered_model_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(b"tampered")
    target = tmp_path / "center" / "model.onnx"
    with pytest.raises(ArtifactMismatch):
        await copy_verified(source, target, "sha256:" + "0" * 64)
    assert not target.exists()
