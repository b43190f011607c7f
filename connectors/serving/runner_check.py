"""Whether the built-in ONNX runner can start with a given interpreter, as the users its replicas run as."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from connectors.serving import onnx_runner

#: who stands for "a uid of the job's own" in the check: the kernel's overflow uid, with no rights of its own
ANY_JOB_UID = 65534


def runner_refusal(python: Path, identities: Sequence[tuple[int, int]]) -> str | None:
    """Why ``python onnx_server.py`` cannot start as each ``(uid, gid)`` (none: as this process), or None."""
    for uid, gid in identities or [(os.geteuid(), os.getegid())]:
        switch = uid != os.geteuid()
        try:
            done = subprocess.run(
                [str(python), str(onnx_runner()), "--check"],
                capture_output=True,
                text=True,
                timeout=60,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                cwd="/",
                user=uid if switch else None,
                group=gid if switch else None,
                extra_groups=[] if switch else None,
            )
        except OSError as error:
            return f"uid {uid} cannot run it: {error.strerror or error}"
        except subprocess.TimeoutExpired:
            return f"uid {uid}: the check did not end within 60 s"
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"uid {uid}: {lines[-1] if lines else f'exit code {done.returncode}'}"
    return None


def runnable_by_anyone(program: Path) -> bool:
    """Whether a user with no rights of its own could run ``program`` (its folders all traversable by others)."""
    try:
        target = program.resolve()
        return bool(target.is_file() and target.stat().st_mode & 0o001) and all(f.stat().st_mode & 0o001 for f in target.parents)
    except OSError:
        return False


def gateway_python() -> Path:
    return Path(sys.executable)
