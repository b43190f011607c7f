"""Programs a center runs to serve a model (started as a replica's command, never imported by the gateway)."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

#: the built-in runner for ONNX models (``python onnx_server.py --port P --model-dir D``)
ONNX_SERVER = Path(__file__).with_name("onnx_server.py")


def readable_by_anyone(path: Path) -> bool:
    """Whether a user with no rights of its own could read ``path`` (its folders all traversable by others)."""
    try:
        target = path.resolve()
        return bool(target.is_file() and target.stat().st_mode & 0o004) and all(f.stat().st_mode & 0o001 for f in target.parents)
    except OSError:
        return False


@functools.cache
def onnx_runner() -> Path:
    """The runner's file, where the job users its replicas run as can read it.

    The package may be installed where only the gateway's user can look (a venv under a 0700
    home): then the runner is copied once per process into a fresh folder of its own under the
    system's temporary folder (0755, owned by the gateway's user, so no job can change it).
    """
    if readable_by_anyone(ONNX_SERVER):
        return ONNX_SERVER
    folder = Path(tempfile.mkdtemp(prefix="aicn-runner-"))
    folder.chmod(0o755)
    copy = folder / ONNX_SERVER.name
    shutil.copyfile(ONNX_SERVER, copy)
    copy.chmod(0o644)
    return copy
