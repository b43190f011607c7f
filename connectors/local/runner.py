"""Supervise one LOCAL job: run its command, enforce its time limit, record its end.

Started by the LOCAL connector as ``python runner.py JOB_DIR`` in a session of its
own, so it outlives a gateway that dies; or in advance as ``python runner.py --spare``, a spare
that waits on its stdin (a pipe from the gateway) for the one job directory it will supervise, and
exits at EOF (the gateway went away, or gave it up) without running anything. It reads its spec (``spec.marshal``), starts the command
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

import marshal
import os
import select
import signal
import subprocess
import sys
import time

# Every job waits for this process to start: its imports are on that path. json (with re and enum),
# pathlib, shutil, datetime and typing took about as long as the interpreter itself, so the hot path
# reads the spec with marshal (built in), writes its two small JSON files itself, and the rest is
# imported where a job with a uid of its own needs it. mypy reads this block; Python never runs it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

KILL_GRACE_SECONDS = 3.0
#: where any user may leave files; a job's leftovers there would go to the next job given its uid
SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")
#: the spec as the connector wrote it for this process (``spec.json``, for everyone else, says the same)
SPEC = "spec.marshal"
#: the argument that makes this process a spare supervisor, waiting for its job directory on stdin
SPARE = "--spare"


def read_spec(job_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(job_dir, SPEC), "rb") as source:
            spec: dict[str, Any] = marshal.load(source)
        return spec
    except FileNotFoundError:  # queued by a gateway from before spec.marshal
        import json

        with open(os.path.join(job_dir, "spec.json"), encoding="utf-8") as source:
            loaded: dict[str, Any] = json.load(source)
        return loaded


def main(job_dir: str) -> int:
    spec = read_spec(job_dir)
    work_dir = spec.get("work_dir") or os.path.join(job_dir, "work")
    os.makedirs(work_dir, exist_ok=True)
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

    with open(os.path.join(job_dir, "output.log"), "ab", buffering=0) as output:
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
        _write_atomically(job_dir, "child.json", {"pid": child.pid, "started_at": _now()})

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
    from pathlib import Path

    owner, group = os.geteuid(), os.getegid()
    if spec.get("work_dir"):
        _chown_tree(Path(spec["work_dir"]), owner, group, publish=False)
    for folder in spec.get("private_folders", []):
        _chown_tree(Path(folder), owner, group, publish=True)


def kill_every_process_of(uid: int) -> None:
    """SIGKILL every process running as ``uid``, wherever its process group or session: ``kill -KILL -1``
    run as ``uid``, which reaches exactly the processes that uid may signal. Started through subprocess
    (which switches user in C before exec), safe in the gateway's threaded process too."""
    import shutil

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
    from pathlib import Path

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


def _remove_owned_by(folder: str, uid: int) -> None:
    import shutil

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


def _write_result(job_dir: str, *, exit_code: int, reason: str | None) -> None:
    _write_atomically(job_dir, "result.json", {"exit_code": exit_code, "reason": reason, "finished_at": _now()})


def _write_atomically(job_dir: str, name: str, payload: dict[str, int | str | None]) -> None:
    temporary = os.path.join(job_dir, name.rsplit(".", 1)[0] + ".tmp")
    with open(temporary, "w", encoding="utf-8") as target:
        target.write(to_json(payload))
    os.replace(temporary, os.path.join(job_dir, name))


def to_json(payload: dict[str, int | str | None]) -> str:
    """The JSON of a flat object of ints, strings and nulls (all this process writes)."""
    items = (f"{_json_string(key)}: {_json_value(value)}" for key, value in payload.items())
    return "{" + ", ".join(items) + "}"


def _json_value(value: int | str | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _json_string(value)


def _json_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(f"\\u{ord(char):04x}" if ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF else char for char in escaped) + '"'


def _now() -> str:
    """Now in UTC as ``datetime.isoformat`` writes it, microseconds always (without importing datetime)."""
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanoseconds // 1000:06d}+00:00"


def serve_as_spare() -> int:
    """Wait for a job directory (one line on stdin), then supervise that job and exit: one job, once.
    What a job with a uid of its own needs on its way out is imported now, while nothing waits."""
    import pathlib  # noqa: F401
    import shutil  # noqa: F401

    job_dir = _wait_for_job()
    if job_dir is None:
        return 0
    log = os.open(os.path.join(job_dir, "runner.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)  # this process's own messages go where a supervisor started for the job would write them
    os.dup2(log, 2)
    os.close(log)
    return main(job_dir)


def _wait_for_job() -> str | None:
    """The job directory the gateway sends, None at EOF before a whole line (it went away). Stdin is
    closed after it: nothing more is read, whatever the gateway writes."""
    received = b""
    while b"\n" not in received:
        chunk = os.read(0, 4096)
        if not chunk:
            return None
        received += chunk
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return os.fsdecode(received.split(b"\n", 1)[0])


if __name__ == "__main__":
    sys.exit(serve_as_spare() if sys.argv[1] == SPARE else main(sys.argv[1]))
