"""Supervise one LOCAL job: run its command, enforce its time limit, record its end.

Started by the LOCAL connector as ``python runner.py JOB_DIR`` in a session of its
own, so it outlives a gateway that dies. It reads ``spec.json``, starts the command
(an argv list, never through a shell) in a new process group, appends its stdout and
stderr to ``output.log`` and, when the command ends, writes ``result.json`` atomically.
SIGTERM asks it to cancel: the command's whole process group gets SIGTERM, then SIGKILL
after a grace period. A job with a uid of its own (``own_uid``) is ended whole: every
process of that uid is killed, what it left in the shared temporary folders is removed,
and its folders are handed back to the supervisor's user before ``result.json`` says it
ended, so the uid can go to another job. Standard library only: it must start without the
gateway's packages on the path.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KILL_GRACE_SECONDS = 3.0
#: where any user may leave files; a job's leftovers there would go to the next job given its uid
SHARED_FOLDERS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))


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
            release_job_identity(spec)
            _write_result(job_dir, exit_code=127, reason=refusal)
            return 0
        _write_atomically(job_dir / "child.json", {"pid": child.pid, "started_at": _now()})

        deadline = time.monotonic() + float(spec["max_duration_seconds"])
        stop_reason: str | None = None
        exited = _exit_signal(child.pid)
        while child.poll() is None:
            if cancel_requested:
                stop_reason = "CANCELLED"
            elif time.monotonic() >= deadline:
                stop_reason = "TIME_LIMIT"
            if stop_reason is not None:
                _stop_group(child)
                break
            _wait_a_little(child, exited)
        if exited is not None:
            os.close(exited)
        returncode = child.wait()
        _kill_group(child.pid, signal.SIGKILL)  # leftovers of the job's process group

    release_job_identity(spec)
    exit_code = returncode if returncode >= 0 else 128 - returncode
    reason = stop_reason
    if reason is None and returncode < 0:
        reason = f"SIGNAL: the job was killed by signal {-returncode} ({signal.Signals(-returncode).name})"
    _write_result(job_dir, exit_code=exit_code, reason=reason)
    return 0


def release_job_identity(spec: dict[str, Any]) -> None:
    """After a job with a uid of its own: no process left as that uid, nothing of it left in shared
    folders, its folders the supervisor's again (its private folders readable, for the gateway and for
    jobs given its outputs as inputs). A no-op for jobs that share a user or run as the gateway's."""
    if not spec.get("own_uid"):
        return
    uid = int(spec["uid"])
    kill_every_process_of(uid)
    for folder in SHARED_FOLDERS:
        _remove_owned_by(folder, uid)
    owner, group = os.geteuid(), os.getegid()
    if spec.get("work_dir"):
        _chown_tree(Path(spec["work_dir"]), owner, group, publish=False)
    for folder in spec.get("private_folders", []):
        _chown_tree(Path(folder), owner, group, publish=True)


def kill_every_process_of(uid: int) -> None:
    """SIGKILL every process running as ``uid``, wherever its process group or session: ``kill -KILL -1``
    run as ``uid``, which reaches exactly the processes that uid may signal. Started through subprocess
    (which switches user in C before exec), safe in the gateway's threaded process too."""
    kill = shutil.which("kill", path="/usr/bin:/bin") or "/bin/kill"
    for _ in range(10):
        try:
            subprocess.run(
                [kill, "-KILL", "-1"], user=uid, group=uid, extra_groups=[], capture_output=True, timeout=10, check=False, cwd="/"
            )
        except (OSError, subprocess.TimeoutExpired):
            pass
        if not _runs_as(uid):
            return


def _runs_as(uid: int) -> bool:
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        lines = text.splitlines()
        uids = next((line.split()[1:4] for line in lines if line.startswith("Uid:")), [])
        state = next((line.split()[1:2] for line in lines if line.startswith("State:")), [])
        if str(uid) in uids and state != ["Z"]:
            return True
    return False


def _remove_owned_by(folder: Path, uid: int) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def _chown_tree(top: Path, owner: int, group: int, *, publish: bool) -> None:
    """Own everything under ``top`` (never following a link); ``publish``: folders 0755, files readable."""
    try:
        if not top.is_dir() or top.is_symlink():
            return
    except OSError:
        return
    for folder, folders, files in os.walk(top, followlinks=False):
        for name in [*folders, *files]:
            path = os.path.join(folder, name)
            try:
                os.lchown(path, owner, group)
                mode = os.lstat(path).st_mode
                if publish and not os.path.islink(path):
                    os.chmod(path, 0o755 if os.path.isdir(path) else (mode & 0o7777 & ~0o6000) | 0o444)
            except OSError:
                pass
    os.chown(top, owner, group)
    top.chmod(0o755 if publish else 0o700)


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    _kill_group(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_group(child.pid, signal.SIGKILL)


def _exit_signal(pid: int) -> int | None:
    """A pidfd that turns readable the moment the child exits (None where there is none)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait_a_little(child: subprocess.Popen[bytes], exited: int | None) -> None:
    """Up to 50 ms, or less when the child exits: with a pidfd at once, not at Popen.wait's next
    poll (which backs off to 50 ms, a trivial job's whole run); a cancel is looked at every 50 ms."""
    if exited is not None:
        select.select([exited], [], [], 0.05)
        return
    try:
        child.wait(timeout=0.05)
    except subprocess.TimeoutExpired:
        pass


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
