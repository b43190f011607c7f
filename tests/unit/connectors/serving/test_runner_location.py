"""The built-in runner reaches job users even when the package sits where only the gateway may look."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import connectors.serving as serving


@pytest.fixture
def fresh_runner() -> Iterator[None]:
    serving.onnx_runner.cache_clear()
    yield
    serving.onnx_runner.cache_clear()


def test_a_runner_in_a_private_folder_is_copied_where_anyone_can_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_runner: None
) -> None:
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    hidden = private / "onnx_server.py"
    shutil.copyfile(serving.ONNX_SERVER, hidden)
    monkeypatch.setattr(serving, "ONNX_SERVER", hidden)
    assert not serving.readable_by_anyone(hidden)

    runner = serving.onnx_runner()
    try:
        assert runner != hidden and serving.readable_by_anyone(runner)
        assert runner.read_bytes() == hidden.read_bytes()
        assert (runner.parent.stat().st_mode & 0o777) == 0o755 and (runner.stat().st_mode & 0o777) == 0o644
        assert serving.onnx_runner() == runner  # once per process
    finally:
        shutil.rmtree(runner.parent)


def test_a_runner_anyone_can_read_is_used_where_it_is(monkeypatch: pytest.MonkeyPatch, fresh_runner: None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="aicn-test-runner-"))  # not pytest's tree: that one is 0700
    try:
        folder.chmod(0o755)
        open_file = folder / "onnx_server.py"
        shutil.copyfile(serving.ONNX_SERVER, open_file)
        open_file.chmod(0o644)
        monkeypatch.setattr(serving, "ONNX_SERVER", open_file)
        assert serving.readable_by_anyone(open_file)
        assert serving.onnx_runner() == open_file
    finally:
        shutil.rmtree(folder)
