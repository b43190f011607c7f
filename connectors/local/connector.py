"""The LOCAL center: real processes on the gateway's own host.

Each job gets a directory ``<root>/jobs/<external id>/`` holding its spec, its working
directory, its combined output and, once it ends, ``result.json``. A small supervisor
(``runner.py``) runs the command in a process group of its own and records the
exit, so a job survives a gateway restart and is re-attached afterwards. Jobs beyond
the declared capacity wait in a FIFO queue that is rebuilt from disk on start.

Several gateway replicas on one host share a LOCAL center (the same root): its capacity is the
host's, not each replica's. A job holds its devices while its marker in ``<root>/running/`` names
a live supervisor and the job has no result yet; a replica starts a job only under the root's
``admission.lock`` (an exclusive flock), after counting every replica's markers, so together they
never start more than the declared devices, and each reports the same capacity.

A job's supervisor is usually a spare: the connector keeps one started in advance (an interpreter
takes about as long to start as a trivial job takes to run) and hands it the next job's directory
through its stdin. ``runner.pid`` names the supervisor by its pid and its start time, so that a
job is re-attached after a restart to that very process, never to another that got its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import marshal
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base import (
    CenterDescription,
    CenterJobState,
    Connector,
    DeviceCapacity,
    JobSpec,
    JobStatus,
    LogChunk,
    StatusQuery,
    Submission,
)
from connectors.errors import ConnectorError, JobNotFound, SubmissionRejected
from connectors.files import read_file_range, tail_file
from connectors.local.follow import STATE_FILES, DirectoryWatch
from connectors.local.identity import AUTO, DEFAULT_UID_RANGE, JobUser, UidRange, resolve_job_user
from connectors.local.runner import SPARE, kill_every_process_of, release_job_identity
from connectors.local.runner import SPEC as RUNNER_SPEC
from connectors.local.uids import UidAllocator
from connectors.progress import ProgressBacklog, parse_progress_line

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("runner.py")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")
BASE_ENVIRONMENT_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
#: up to this many jobs' files (a few small reads of a local disk each) are read on the event loop
#: itself: a trip to a worker thread costs more, its every read waiting for the GIL of a busy loop
INLINE_READS = 8


@dataclass(frozen=True)
class Supervisor:
    """A job's supervisor as ``runner.pid`` names it: its pid and when it started (field 22 of
    /proc/PID/stat and the boot's id), which no later process with that pid shares. ``started`` is
    None in a file holding only a pid, an older gateway's: its supervisor's command line names the job."""

    pid: int
    started: str | None = None

    def text(self) -> str:
        return f"{self.pid} {self.started}" if self.started is not None else str(self.pid)

    @classmethod
    def parse(cls, text: str) -> Supervisor:
        pid, _, started = text.strip().partition(" ")
        return cls(int(pid), started or None)

    @classmethod
    def of(cls, pid: int) -> Supervisor | None:
        """``pid`` with its start time, None where /proc does not tell it (then it is named by no pid:
        only a supervisor whose command line names its job can be recognised by a pid alone)."""
        fields = _proc_stat(pid)
        return None if fields is None else cls(pid, _start_mark(fields))


@dataclass
class _Spare:
    """A supervisor started before its job, blocked reading its job directory from ``process.stdin``."""

    process: subprocess.Popen[bytes]
    supervisor: Supervisor


@dataclass
class _Job:
    external_id: str
    directory: Path
    accelerator: str
    devices: int
    queued_at_ns: int
    supervisor: Supervisor | None = None
    output_offset: int = 0
    cancel_requested: bool = False
    progress: ProgressBacklog = field(default_factory=ProgressBacklog)
    partial_line: bytes = b""
    #: the uid of the job's own (run_as = "auto" as root), until it is free for another job
    own_uid: int | None = None

    @property
    def result_path(self) -> Path:
        return self.directory / "result.json"


def _load_job(directory: Path) -> tuple[_Job, int | None] | None:
    """A job directory's job as its spec and runner pid tell, and the uid of its own it was given
    (None: not a job's folder, or half written). An unfinished job keeps its uid in ``own_uid``."""
    spec_path = directory / "spec.json"
    if not spec_path.exists():
        return None
    spec = json.loads(spec_path.read_text())
    job = _Job(
        external_id=directory.name,
        directory=directory,
        accelerator=spec["accelerator"],
        devices=spec["devices"],
        queued_at_ns=spec["queued_at_ns"],
    )
    uid = int(spec["uid"]) if spec.get("own_uid") else None
    if uid is not None and not job.result_path.exists():
        job.own_uid = uid
    pid_path = directory / "runner.pid"
    if pid_path.exists():
        job.supervisor = Supervisor.parse(pid_path.read_text())
    return job, uid


class LocalConnector(Connector):
    kind = "LOCAL"

    def __init__(
        self,
        name: str,
        root: Path,
        devices: Mapping[str, int],
        *,
        poll_interval: float = 0.05,
        run_as: str = AUTO,
        work_root: Path | None = None,
        job_uid_range: tuple[int, int] = DEFAULT_UID_RANGE,
    ) -> None:
        super().__init__(name)
        self.root = Path(root)
        #: who jobs run as (see identity.py): "auto", "none" or a user name
        self.run_as = run_as
        self.job_uid_range = job_uid_range
        self.work_root = Path(work_root) if work_root is not None else default_work_root(name)
        self._job_user: JobUser | UidRange | None = None
        self._uids: UidAllocator | None = None
        self.devices = dict(devices)
        self.poll_interval = poll_interval
        self._jobs: dict[str, _Job] = {}
        self._queue: list[str] = []
        self._running: set[str] = set()
        self._lock = asyncio.Lock()
        self._pump_task: asyncio.Task[None] | None = None
        self._children: set[int] = set()
        # jobs followed as they write (inotify): external id -> True when a state file changed
        self._watch = DirectoryWatch(self._file_changed)
        self._changed: dict[str, bool] = {}
        self._changed_event: asyncio.Event | None = None
        self._follow_task: asyncio.Task[None] | None = None
        #: the supervisor started in advance for the next job, and whether one may be started
        self._spare: _Spare | None = None
        self._spares = False
        #: ended jobs' uids being handed back in a worker thread (see _release_uids)
        self._releasing: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    @property
    def _markers(self) -> Path:
        return self.root / "running"

    async def start(self) -> None:
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        self._markers.mkdir(exist_ok=True)
        self._job_user = await asyncio.to_thread(resolve_job_user, self.run_as, self.job_uid_range)
        if isinstance(self._job_user, UidRange):
            self._uids = UidAllocator(self._job_user, self.name)
        if self._job_user is not None:
            self.root.chmod(0o700)  # job folders, logs and results: the supervisor's, out of every job's reach
            prepare_work_root(self.work_root)
        following = self._watch.start()
        await asyncio.to_thread(self._recover)
        if following:
            self._changed_event = asyncio.Event()
            for external_id in self._running:
                self._watch.watch(external_id, self._jobs[external_id].directory)
            self._follow_task = asyncio.create_task(self._follow_forever(), name=f"local-follow-{self.name}")
            self.follows_jobs = True
        self._pump_task = asyncio.create_task(self._pump_forever(), name=f"local-pump-{self.name}")
        self._spares = True
        self._start_spare()

    async def close(self) -> None:
        self._spares = False
        spare, self._spare = self._spare, None
        if spare is not None:  # EOF on its stdin: it exits without a job
            spare.process.stdin.close()  # type: ignore[union-attr]
            await asyncio.to_thread(_reap, spare.process)
        if self._follow_task is not None:
            self._follow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow_task
            self._follow_task = None
        self.follows_jobs = False
        self._watch.close()
        if self._pump_task is not None:
            self._pump_task.cancel()
            try:
                await self._pump_task
            except asyncio.CancelledError:
                pass
            self._pump_task = None
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)

    def _recover(self) -> None:
        """Rebuild the queue and the running set from the job directories on disk."""
        found: list[_Job] = []
        newest_uid: tuple[int, int] | None = None  # (queued at, uid) of the latest job given a uid
        for directory in (self.root / "jobs").iterdir():
            loaded = _load_job(directory)
            if loaded is None:
                continue
            job, uid = loaded
            if uid is not None:
                newest_uid = max(newest_uid or (job.queued_at_ns, uid), (job.queued_at_ns, uid))
            found.append(job)
        for job in sorted(found, key=lambda j: j.queued_at_ns):
            self._jobs[job.external_id] = job
            if job.result_path.exists():
                continue
            if job.supervisor is None:
                self._queue.append(job.external_id)
            else:  # alive: re-attached; dead without a result: reported LOST on the next look
                self._running.add(job.external_id)
                marker = self._markers / job.external_id
                if not marker.exists():  # started by a gateway from before the markers: it holds its devices too
                    with contextlib.suppress(OSError):
                        _write_json(marker, {"accelerator": job.accelerator, "devices": job.devices})
        if self._uids is not None:  # a uid stays taken while its job is not finished, across restarts
            unfinished = [job.own_uid for job in found if job.own_uid is not None]
            self._uids.recover(unfinished, newest_uid[1] if newest_uid is not None else None)
        self._collect_finished()

    def _adopt(self, external_ids: Sequence[str]) -> None:
        """Take on jobs another gateway replica on this host started in the same root (it handed
        them over; this one reconciles the center). A job still queued in that replica is left to it."""
        for external_id in external_ids:
            loaded = _load_job(self.root / "jobs" / external_id)
            if loaded is None or (loaded[0].supervisor is None and not loaded[0].result_path.exists()):
                continue
            job = loaded[0]
            self._jobs[external_id] = job
            if not job.result_path.exists():
                self._running.add(external_id)
                self._watch.watch(external_id, job.directory)  # followed here too, not left to the poll
                if self._uids is not None and job.own_uid is not None:  # taken here too until the job ends
                    self._uids.recover([job.own_uid], None)

    # ------------------------------------------------------------------ contract

    async def describe(self) -> CenterDescription:
        return CenterDescription(
            kind=self.kind,
            name=self.name,
            version=f"python {sys.version_info.major}.{sys.version_info.minor}",
            detail={"host": os.uname().nodename, "root": str(self.root)},
        )

    async def capacity(self) -> list[DeviceCapacity]:
        used = self._devices_in_use()
        return [
            DeviceCapacity(accelerator=model, devices_total=total, devices_free=max(0, total - used.get(model, 0)))
            for model, total in self.devices.items()
        ]

    async def submit(self, spec: JobSpec) -> Submission:
        if not spec.command:
            raise SubmissionRejected("the command is empty", center=self.name)
        total = self.devices.get(spec.accelerator)
        if total is None:
            raise SubmissionRejected(f"this center has no {spec.accelerator} devices", center=self.name)
        if spec.devices > total:
            raise SubmissionRejected(
                f"the job asks for {spec.devices} {spec.accelerator} devices; this center has {total}",
                center=self.name,
            )
        external_id = _SAFE_ID.sub("_", spec.reference)
        async with self._lock:
            if external_id not in self._jobs:  # another replica on this host may have taken it already
                await asyncio.to_thread(self._adopt, [external_id])
            existing = self._jobs.get(external_id)
            if existing is not None:  # the same reference twice is the same job
                return Submission(external_id, self._state_of(existing))
            job = await asyncio.to_thread(self._write_job_directory, external_id, spec)
            self._jobs[external_id] = job
            self._queue.append(external_id)
            self._start_queued()
            return Submission(external_id, self._state_of(job))

    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        async with self._lock:
            self._collect_finished()
            self._start_queued()
            unknown = [q.external_id for q in queries if q.external_id not in self._jobs]
            if unknown:
                await asyncio.to_thread(self._adopt, unknown)
                self._collect_finished()
            known = [(self._jobs[q.external_id], q.progress_after) for q in queries if q.external_id in self._jobs]

            def statuses() -> dict[str, JobStatus]:
                return {job.external_id: self._status_of(job, after) for job, after in known}

            # one trip to a worker thread for all the file reads, not one per job; none for a few jobs
            return statuses() if len(known) <= INLINE_READS else await asyncio.to_thread(statuses)

    async def cancel(self, external_id: str) -> None:
        async with self._lock:
            job = self._jobs.get(external_id)
            if job is None:
                raise JobNotFound(f"no job {external_id} on this center", center=self.name)
            if job.result_path.exists():
                return
            if external_id in self._queue:
                self._queue.remove(external_id)
                await asyncio.to_thread(self._end_without_supervisor, job, "CANCELLED")
                self._tell([external_id])  # no supervisor's file tells of this end
                return
            job.cancel_requested = True
            if job.supervisor is not None and not self._runner_gone(job.supervisor, job.directory):
                _signal(job.supervisor.pid, signal.SIGTERM)
            else:
                _kill_child_group(job.directory)
                _kill_own_uid(job.directory)

    async def logs(self, external_id: str, tail_lines: int = 100) -> str:
        job = self._jobs.get(external_id)
        if job is None:
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        return await asyncio.to_thread(tail_file, job.directory / "output.log", tail_lines)

    async def server_host(self, external_id: str) -> str:
        if external_id not in self._jobs:
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        return "127.0.0.1"  # a LOCAL job's server binds loopback on the gateway's own host

    async def read_log(self, external_id: str, offset: int, max_bytes: int) -> LogChunk:
        job = self._jobs.get(external_id)
        if job is None:
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        return await asyncio.to_thread(read_file_range, job.directory / "output.log", offset, max_bytes)

    # ------------------------------------------------------------------ internals

    def _write_job_directory(self, external_id: str, spec: JobSpec) -> _Job:
        directory = self.root / "jobs" / external_id
        directory.mkdir(parents=True, exist_ok=False)
        queued_at_ns = time.time_ns()
        environment = {key: os.environ[key] for key in BASE_ENVIRONMENT_KEYS if key in os.environ}
        environment.update({"PYTHONUNBUFFERED": "1", "AICN_JOB_REFERENCE": spec.reference})
        environment.update(spec.environment)
        payload: dict[str, Any] = {}
        if self._job_user is not None:
            if self._uids is not None:  # a uid (and gid) of the job's own, its folders its alone
                uid = gid = self._uids.allocate(directory)
                private = [folder for folder in spec.private_folders if Path(folder).is_dir()]
                for folder in private:
                    os.chown(folder, uid, gid)
                    os.chmod(folder, 0o700)
                payload.update({"own_uid": True, "private_folders": private})
            else:
                assert isinstance(self._job_user, JobUser)
                uid, gid = self._job_user.uid, self._job_user.gid
            work_dir = self.work_root / external_id
            work_dir.mkdir(mode=0o700)
            os.chown(work_dir, uid, gid)
            environment["HOME"] = str(work_dir)
            environment["TMPDIR"] = str(work_dir)
            payload.update({"work_dir": str(work_dir), "uid": uid, "gid": gid})
        payload |= {
            "reference": spec.reference,
            "name": spec.name,
            "command": list(spec.command),
            "environment": environment,
            "accelerator": spec.accelerator,
            "devices": spec.devices,
            "max_duration_seconds": spec.max_duration_seconds,
            "queued_at_ns": queued_at_ns,
        }
        (directory / RUNNER_SPEC).write_bytes(marshal.dumps(payload))  # what the supervisor reads: no json to import there
        _write_json(directory / "spec.json", payload)
        return _Job(
            external_id,
            directory,
            spec.accelerator,
            spec.devices,
            queued_at_ns,
            own_uid=payload.get("uid") if payload.get("own_uid") else None,
        )

    def _devices_in_use(self, forget_ended: bool = False) -> dict[str, int]:
        """Devices held on this host by the running jobs of every replica that shares the root;
        ``forget_ended`` (under the admission lock) removes the markers of jobs that have ended."""
        used: dict[str, int] = {}
        try:
            markers = list(os.scandir(self._markers))
        except FileNotFoundError:
            return used
        for marker in markers:
            if marker.name.endswith(".tmp"):  # a marker being written
                continue
            directory = self.root / "jobs" / marker.name
            if not _holds_devices(directory):
                if forget_ended:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(marker.path)
                continue
            try:
                held = json.loads(Path(marker.path).read_text())
            except (OSError, ValueError):  # ended and forgotten meanwhile, or half written
                continue
            used[held["accelerator"]] = used.get(held["accelerator"], 0) + int(held["devices"])
        return used

    def _collect_finished(self) -> None:
        ended: list[_Job] = []
        for external_id in list(self._running):
            job = self._jobs[external_id]
            if job.result_path.exists():
                self._running.discard(external_id)
                self._watch.unwatch(external_id)
                ended.append(job)
            elif job.supervisor is not None and self._runner_gone(job.supervisor, job.directory):
                # a supervisor cancelled before it could set up its signal handler dies quietly
                reason = "CANCELLED" if job.cancel_requested else "LOST: the job's supervisor process died"
                _kill_child_group(job.directory)
                self._end_without_supervisor(job, reason)
                self._running.discard(external_id)
                self._watch.unwatch(external_id)  # before its result's news is read: told here instead
                self._tell([external_id])
        self._release_uids(ended)

    def _end_without_supervisor(self, job: _Job, reason: str) -> None:
        """Record the end of a job no supervisor will record (cancelled while queued, or its supervisor died),
        after what the supervisor would have done: its uid's processes killed, its folders handed back."""
        spec = json.loads((job.directory / "spec.json").read_text())
        release_job_identity(spec)
        _write_json(job.result_path, {"exit_code": None, "reason": reason, "finished_at": _now_iso()})
        self._release_uid(job)

    def _release_uid(self, job: _Job) -> None:
        if self._uids is not None and job.own_uid is not None:
            self._uids.release(job.own_uid, job.directory)
            job.own_uid = None

    def _release_uids(self, jobs: Sequence[_Job]) -> None:
        """Hand the uids of jobs that have ended back: at once to this gateway, and their claim files
        in a worker thread when called on the loop. Each is a file opened, locked and rewritten, about
        10 ms apiece under load, and a hundred jobs ending together held the loop (every subscriber's
        delivery) for a second. A new job never waits for it: a claim whose job has a result is stale
        (``UidAllocator.take`` takes it), and emptying a claim leaves one that names another job."""
        uids = self._uids
        claims = [(job.own_uid, job.directory) for job in jobs if job.own_uid is not None]
        for job in jobs:
            job.own_uid = None
        if uids is None or not claims:
            return
        for uid, _directory in claims:
            uids.forget(uid)

        def release() -> None:
            for uid, directory in claims:
                uids.unclaim(uid, directory)

        try:
            future = asyncio.get_running_loop().run_in_executor(None, release)
        except RuntimeError:  # not on the loop (recovery runs in a thread): here and now
            release()
            return
        self._releasing.add(future)
        future.add_done_callback(self._released)

    def _released(self, future: asyncio.Future[None]) -> None:
        self._releasing.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("handing back the uids of ended jobs failed; their claims stay until reused", exc_info=future.exception())

    def _runner_gone(self, supervisor: Supervisor, directory: Path) -> bool:
        # A runner we started stays ours until reaped (its pid cannot go to another process
        # meanwhile), so only a re-attached runner is looked up in /proc.
        if supervisor.pid in self._children:
            return False
        return not _runner_alive(supervisor, directory)

    def _start_queued(self) -> None:
        """Start queued jobs in order while they fit on the host; a job that does not fit blocks those
        behind it. Another replica admitting now holds the lock: the next pump (or status) tries again."""
        if not self._queue:
            return
        with _admission(self.root / "admission.lock") as admitted:
            if not admitted:
                return
            used = self._devices_in_use(forget_ended=True)
            while self._queue:
                job = self._jobs[self._queue[0]]
                if used.get(job.accelerator, 0) + job.devices > self.devices[job.accelerator]:
                    return
                self._queue.pop(0)
                self._launch(job)
                _write_json(self._markers / job.external_id, {"accelerator": job.accelerator, "devices": job.devices})
                used[job.accelerator] = used.get(job.accelerator, 0) + job.devices

    def _launch(self, job: _Job) -> None:
        self._watch.watch(job.external_id, job.directory)  # before the job can write
        pid = self._hand_to_spare(job)
        if pid is None:
            process = _start_runner(job.directory / "runner.log", str(job.directory), stdin=subprocess.DEVNULL)
            pid = process.pid
            job.supervisor = Supervisor.of(pid) or Supervisor(pid)
            _write_text_atomically(job.directory / "runner.pid", job.supervisor.text())
        self._running.add(job.external_id)
        self._children.add(pid)
        self._tell_when_exited(pid, job.external_id)

    def _hand_to_spare(self, job: _Job) -> int | None:
        """Give the job to the spare supervisor: its pid, None when there is no live spare (then the
        caller starts one for the job). The next spare is started once this call's caller is done."""
        spare, self._spare = self._spare, None
        if spare is None or spare.process.poll() is not None:
            self._start_spare_soon()
            return None
        # named before it learns of the job: a gateway dying in between leaves the job LOST (its spare
        # exits at EOF), never started again by the next gateway
        _write_text_atomically(job.directory / "runner.pid", spare.supervisor.text())
        line = os.fsencode(job.directory) + b"\n"
        pipe = spare.process.stdin
        assert pipe is not None
        try:  # one write under PIPE_BUF to an empty pipe: whole, at once, or EPIPE if it died
            handed = os.write(pipe.fileno(), line) == len(line)
        except OSError:
            handed = False
        finally:
            pipe.close()
        self._start_spare_soon()
        if not handed:
            _reap(spare.process)
            return None
        job.supervisor = spare.supervisor
        return spare.process.pid

    def _start_spare_soon(self) -> None:
        """Start the next spare after the current event loop step (the job just handed goes first)."""
        try:
            asyncio.get_running_loop().call_soon(self._start_spare)
        except RuntimeError:  # no loop: the next launch starts its supervisor itself
            pass

    def _start_spare(self) -> None:
        if not self._spares or self._spare is not None:
            return
        try:
            process = _start_runner(self.root / "spare.log", SPARE, stdin=subprocess.PIPE)
        except OSError:
            return
        supervisor = Supervisor.of(process.pid)
        if supervisor is None:  # no /proc to name it by: only a supervisor started for its job is recognised
            process.stdin.close()  # type: ignore[union-attr]
            _reap(process)
            self._spares = False
            return
        self._spare = _Spare(process, supervisor)

    def _tell_when_exited(self, pid: int, external_id: str) -> None:
        """Tell of the job the moment its supervisor exits (its result is written by then), so that
        its end is seen at once instead of at the next poll, and in a look at that job alone: a
        hundred jobs ending together are a hundred small rounds, not full rounds over every job
        (each held back by the others' ends). A pidfd does not reap the child: ``_reap_children`` still does."""
        try:
            loop = asyncio.get_running_loop()
            descriptor = os.pidfd_open(pid)
        except (RuntimeError, OSError, AttributeError):  # no loop (recovery), or no pidfd: the poll sees it
            return

        def exited() -> None:
            loop.remove_reader(descriptor)
            os.close(descriptor)
            self._tell([external_id])

        loop.add_reader(descriptor, exited)

    def _reap_children(self) -> None:
        for pid in list(self._children):
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                finished = pid
            if finished:
                self._children.discard(pid)

    def _state_of(self, job: _Job) -> CenterJobState:
        if job.result_path.exists():
            return _terminal_state(json.loads(job.result_path.read_text()))
        if job.external_id in self._queue:
            return CenterJobState.QUEUED
        if (job.directory / "child.json").exists():
            return CenterJobState.RUNNING
        return CenterJobState.STARTING

    def _status_of(self, job: _Job, progress_after: int) -> JobStatus:
        self._read_new_output(job)
        state = self._state_of(job)
        exit_code: int | None = None
        reason: str | None = None
        finished_at: datetime | None = None
        started_at: datetime | None = None
        child_path = job.directory / "child.json"
        if child_path.exists():
            started_at = datetime.fromisoformat(json.loads(child_path.read_text())["started_at"])
        if state.terminal:
            result = json.loads(job.result_path.read_text())
            exit_code = result["exit_code"]
            reason = _describe_reason(result, state)
            finished_at = datetime.fromisoformat(result["finished_at"])
        return JobStatus(
            external_id=job.external_id,
            state=state,
            exit_code=exit_code,
            reason=reason,
            started_at=started_at,
            finished_at=finished_at,
            progress=job.progress.after(progress_after),
        )

    def _file_changed(self, external_id: str, name: str) -> None:
        self._changed[external_id] = self._changed.get(external_id, False) or name in STATE_FILES
        if self._changed_event is not None:
            self._changed_event.set()

    async def _follow_forever(self) -> None:
        """Tell ``on_jobs_changed`` of each job that printed a progress line or changed state, as it does."""
        assert self._changed_event is not None
        while True:
            await self._changed_event.wait()
            self._changed_event.clear()
            changed, self._changed = self._changed, {}
            async with self._lock:
                jobs = [(self._jobs[key], state) for key, state in changed.items() if key in self._jobs]
                told = self._told_of(jobs) if len(jobs) <= INLINE_READS else await asyncio.to_thread(self._told_of, jobs)
            if told:
                self._tell(told)

    def _tell(self, external_ids: list[str]) -> None:
        """The jobs changed: told to the caller (with ``follows_jobs`` it waits for no poll to learn of it)."""
        if self.on_jobs_changed is not None:
            self.on_jobs_changed(external_ids)
        elif self.on_activity is not None:
            self.on_activity()

    def _told_of(self, jobs: list[tuple[_Job, bool]]) -> list[str]:
        return [job.external_id for job, state_changed in jobs if self._progressed(job) or state_changed]

    def _progressed(self, job: _Job) -> bool:
        """Read the job's new output; True when it held a new progress report."""
        before = job.progress.count
        self._read_new_output(job)
        return job.progress.count > before

    def _read_new_output(self, job: _Job) -> None:
        path = job.directory / "output.log"
        try:
            with open(path, "rb") as output:
                output.seek(job.output_offset)
                chunk = output.read()
        except FileNotFoundError:
            return
        if not chunk:
            return
        job.output_offset += len(chunk)
        data = job.partial_line + chunk
        lines = data.split(b"\n")
        job.partial_line = lines.pop()
        now = datetime.now(UTC)
        for raw in lines:
            report = parse_progress_line(raw.decode("utf-8", "replace"), job.progress.next_ordinal(), now)
            if report is not None:
                job.progress.add(report)

    async def _pump_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            async with self._lock:
                self._reap_children()
                self._collect_finished()
                self._start_queued()


def _terminal_state(result: Mapping[str, Any]) -> CenterJobState:
    reason = result.get("reason")
    if reason == "CANCELLED":
        return CenterJobState.CANCELLED
    if result.get("exit_code") == 0 and reason is None:
        return CenterJobState.SUCCEEDED
    return CenterJobState.FAILED


def _describe_reason(result: Mapping[str, Any], state: CenterJobState) -> str | None:
    reason = result.get("reason")
    if state is CenterJobState.SUCCEEDED:
        return None
    if reason == "TIME_LIMIT":
        return "TIME_LIMIT: the job ran past its maxDurationMinutes and was killed"
    if reason == "CANCELLED":
        return "CANCELLED: cancelled on request"
    if reason:
        return str(reason)
    return f"EXIT_CODE: the command exited with code {result.get('exit_code')}"


def _start_runner(log_path: Path, argument: str, *, stdin: int) -> subprocess.Popen[bytes]:
    """A supervisor for the job directory ``argument``, or a spare (``SPARE``), in a session of its own."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            # -S: the supervisor needs only the standard library, and skipping site-packages
            # (editable installs' hooks and all) saves most of an interpreter's start
            [sys.executable, "-S", str(RUNNER), argument],
            stdin=stdin,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for a spare given up on (its stdin closed, it exits at once), killing it if it does not."""
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat from the third (the state) on; None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[-1].split()


def _start_mark(fields: list[str]) -> str:
    """A process's start, from its ``_proc_stat`` fields: its start time since boot, and the boot's id."""
    return f"{fields[19]} {_boot_id()}"


@functools.cache
def _boot_id() -> str:
    """This boot's id: start times count from the boot, so a pid and start time could come round again."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "-"


def _runner_alive(supervisor: Supervisor, directory: Path) -> bool:
    """True while ``supervisor`` is a live (not zombie) process: the one ``runner.pid`` names, or, for
    a pid alone, a supervisor whose command line names this job directory."""
    fields = _proc_stat(supervisor.pid)
    if fields is None or fields[0] == "Z":
        return False
    if supervisor.started is not None:
        return _start_mark(fields) == supervisor.started
    try:
        cmdline = Path(f"/proc/{supervisor.pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return str(directory).encode() in cmdline


def _holds_devices(directory: Path) -> bool:
    """A started job that has not ended: its supervisor lives and it has no result."""
    try:
        supervisor = Supervisor.parse((directory / "runner.pid").read_text())
    except (OSError, ValueError):
        return False
    return not (directory / "result.json").exists() and _runner_alive(supervisor, directory)


@contextlib.contextmanager
def _admission(path: Path) -> Iterator[bool]:
    """The host-wide right to start jobs in one root: True while held, False when another replica holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)  # closing drops the lock


def default_work_root(center: str) -> Path:
    """Where an isolated center's jobs get their working directories unless ``work_dir`` says."""
    return Path(tempfile.gettempdir()) / f"aicn-work-{center}"


def prepare_work_root(folder: Path) -> None:
    """Make ``folder`` (mode 0711: each job finds its own directory, lists none) and make sure it is
    ours: the default lives in the shared temporary directory, where anyone could have made it first."""
    folder.mkdir(parents=True, exist_ok=True)
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ConnectorError(f"centers.local.work_dir: {folder} is not a directory of the gateway's own user (set work_dir)")
    folder.chmod(0o711)


def _kill_child_group(directory: Path) -> None:
    child_path = directory / "child.json"
    if child_path.exists():
        pid = json.loads(child_path.read_text())["pid"]
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_own_uid(directory: Path) -> None:
    spec = json.loads((directory / "spec.json").read_text())
    if spec.get("own_uid"):
        kill_every_process_of(int(spec["uid"]))


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    _write_text_atomically(path, json.dumps(payload))


def _write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
