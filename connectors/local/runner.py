"""Supervise one LOCAL job: run its command, enforce its time limit, record its end.

Started by the LOCAL connector as ``python runner.py JOB_DIR`` in a session of its
own, so it outlives a gateway that dies. It reads ``spec.json``, starts the command
(an argv list, never through a shell) in a new process group, appends its stdout and
stderr to ``output.log`` and, when the command ends, writes ``result.json`` atomically.
SIGTERM asks it to cancel: the command's whole process group gets SIGTERM, then SIGKILL
after a grace period. Standard library only: it must start without the gateway's
packages on the path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KILL_GRACE_SECONDS = 3.0


def main(job_dir: Path) -> int:
    spec = json.loads((job_dir / "spec.json").read_text())
    work_dir = Path(spec.get("work_dir") or job_dir / "work")
    work_dir.mkdir(exist_ok=True)
    # with `run_as`, only the command drops to the job's user: this supervisor keeps the job's
    # start, end and exit where the job cannot reach them, and metering rests on those
    identity: dict[str, Any] = {}
    if spec.get("uid") is not None:
        identity = {"user": spec["uid"], "group": spec["gid"], "extra_groups": []}
    cancel_requested = False

    def request_cancel(_signum: int, _frame: object) -> None:
        nonlocal cancel_requested
        cancel_requested = True

    signal.signal(signal.SIGTERM, request_cancel)
    signal.signal(signal.SIGINT, request_cancel)

    with open(job_dir / "output.log", "ab", buffering=0) as output:
        try:
            child = subprocess.Popen(
                spec["command"],
                cwd=work_dir,
                env=spec["environment"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                process_group=0,
                **identity,
            )
        except OSError as error:
            code = "COMMAND_NOT_FOUND" if isinstance(error, FileNotFoundError) else "CANNOT_START"
            refusal = f"{code}: cannot start {spec['command'][0]!r}: {error.strerror or error}"
            _write_result(job_dir, exit_code=127, reason=refusal)
            return 0
        _write_atomically(job_dir / "child.json", {"pid": child.pid, "started_at": _now()})

        deadline = time.monotonic() + float(spec["max_duration_seconds"])
        stop_reason: str | None = None
        while child.poll() is None:
            if cancel_requested:
                stop_reason = "CANCELLED"
            elif time.monotonic() >= deadline:
                stop_reason = "TIME_LIMIT"
            if stop_reason is not None:
                _stop_group(child)
                break
            try:
                child.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        returncode = child.wait()
        _kill_group(child.pid, signal.SIGKILL)  # leftovers of the job's process group

    exit_code = returncode if returncode >= 0 else 128 - returncode
    reason = stop_reason
    if reason is None and returncode < 0:
        reason = f"SIGNAL: the job was killed by signal {-returncode} ({signal.Signals(-returncode).name})"
    _write_result(job_dir, exit_code=exit_code, reason=reason)
    return 0


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    _kill_group(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_group(child.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _write_result(job_dir: Path, *, exit_code: int, reason: str | None) -> None:
    _write_atomically(job_dir / "result.json", {"exit_code": exit_code, "reason": reason, "finished_at": _now()})


def _write_atomically(path: Path, payload: dict[str, object]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload))
    os.replace(temporary, path)


def _now() -> str:
    return datetime.now(UTC).isoformat()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
