"""The LOCAL supervisor's own file writing and reading: JSON that ``json`` reads back exactly,
timestamps ``datetime`` parses, the spec from ``spec.marshal`` or, for a job queued by an older
gateway, ``spec.json``; and its start imports none of the modules it leaves out to start sooner."""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.local import runner


@pytest.mark.parametrize(
    "payload",
    [
        {"pid": 4242, "started_at": "2026-12-03T06:30:08.875522+00:00"},
        {"exit_code": 0, "reason": None, "finished_at": "x"},
        {"exit_code": 127, "reason": "CANNOT_START: cannot start 'a\"b\\c': \n\t\x01\x1f \x7f é 日本 \ud800", "finished_at": ""},
    ],
)
def test_what_it_writes_reads_back_as_the_same_json(payload: dict[str, int | str | None]) -> None:
    assert json.loads(runner.to_json(payload)) == payload


def test_its_timestamps_are_utc_isoformat() -> None:
    stamp = datetime.fromisoformat(runner._now())
    assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=5)


def test_it_reads_the_marshal_spec_and_falls_back_to_the_json_one(tmp_path: Path) -> None:
    spec = {"command": ["true"], "environment": {"A": "1"}, "max_duration_seconds": 60.0, "uid": None}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert runner.read_spec(str(tmp_path)) == spec  # written by a gateway from before spec.marshal
    (tmp_path / runner.SPEC).write_bytes(marshal.dumps({**spec, "command": ["false"]}))
    assert runner.read_spec(str(tmp_path))["command"] == ["false"]


def test_its_start_leaves_out_the_slow_imports() -> None:
    folder = str(Path(runner.__file__).parent)
    code = f"import sys; sys.path.insert(0, {folder!r}); import runner; print(' '.join(sys.modules))"
    loaded = set(subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "runner" in loaded
    assert not loaded & {"json", "pathlib", "shutil", "datetime", "typing"}
