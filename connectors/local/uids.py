"""Handing out the uids of ``run_as = "auto"``: one of its own to each live job, never one a process still runs as.

Each job's ``spec.json`` names its uid, so a gateway that restarts with jobs still running rebuilds
the taken set from the job folders (see the connector's recovery). A uid is given again only after
going round the whole range, and never while any process on the host still runs as it (a job's
escaped leftovers) or when the host's passwd names it.

Several gateways may share one host (replicas, a peer, a second center): each claims the uid it
gives in a host-wide folder of claims, one file per uid naming the job folder that holds it, read
and written under an exclusive ``flock``. A claim is stale once its job has a ``result.json`` or its
folder is gone, so neither a gateway that crashed nor one that never releases blocks a uid for ever;
without claims, two gateways could give one uid to two jobs, and the first to end would kill the other.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from connectors.errors import SubmissionRejected
from connectors.local.identity import UidRange

#: the host-wide claims of every gateway on this host (root's: only a root gateway gives uids)
HOST_CLAIMS = Path("/run/aicn-job-uids")


class UidAllocator:
    def __init__(self, uids: UidRange, center: str, claims: Path = HOST_CLAIMS) -> None:
        self.uids = uids
        self.center = center
        self.claims = claims
        self._taken: set[int] = set()
        self._last = uids.last  # the next one given is the range's first

    def recover(self, taken: Iterable[int], newest: int | None) -> None:
        """Jobs found on disk: the uids of those not finished, and the one given last."""
        self._taken |= {uid for uid in taken if self.uids.first <= uid <= self.uids.last}
        if newest is not None and self.uids.first <= newest <= self.uids.last:
            self._last = newest

    def allocate(self, job_folder: Path) -> int:
        """A uid for the job whose folder is ``job_folder``, claimed on this host until that job ends."""
        running = uids_of_processes()
        folder = self._claims_folder()
        size = self.uids.last - self.uids.first + 1
        for step in range(1, size + 1):
            uid = self.uids.first + (self._last - self.uids.first + step) % size
            if uid in self._taken or uid in running or _named(uid) or not _claim(folder / str(uid), job_folder):
                continue
            self._taken.add(uid)
            self._last = uid
            return uid
        raise SubmissionRejected(
            f"every uid of centers.local.job_uid_range {self.uids.first}-{self.uids.last} is taken by a live job", center=self.center
        )

    def release(self, uid: int, job_folder: Path) -> None:
        self.forget(uid)
        self.unclaim(uid, job_folder)

    def forget(self, uid: int) -> None:
        """This gateway may give ``uid`` again (its claim file still names the ended job: stale)."""
        self._taken.discard(uid)

    def unclaim(self, uid: int, job_folder: Path) -> None:
        """Empty ``uid``'s claim file if it still names ``job_folder`` (file work: off the event loop)."""
        _unclaim(self.claims / str(uid), job_folder)

    def _claims_folder(self) -> Path:
        self.claims.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.claims.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise SubmissionRejected(f"{self.claims} must be a folder of this gateway's user that no one else may use", center=self.center)
        return self.claims


def _claim(path: Path, job_folder: Path) -> bool:
    """Whether ``job_folder`` now holds the uid of ``path``: it was free, or its holder has ended."""
    with _locked(path) as handle:
        holder = handle.read().strip()
        if holder and _live(Path(holder)):
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(job_folder))
        return True


def _unclaim(path: Path, job_folder: Path) -> None:
    if not path.exists():
        return
    with _locked(path) as handle:
        if handle.read().strip() == str(job_folder):
            handle.seek(0)
            handle.truncate()


def _live(job_folder: Path) -> bool:
    """A job that has not ended: its folder is there, with a spec and no result yet."""
    return (job_folder / "spec.json").exists() and not (job_folder / "result.json").exists()


class _locked:
    """A claim file opened for update under an exclusive flock (created empty when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Any:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        self.handle = os.fdopen(descriptor, "r+")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self.handle

    def __exit__(self, *_exc: object) -> None:
        self.handle.flush()
        self.handle.close()  # closing drops the lock


def uids_of_processes() -> set[int]:
    """Every real, effective and saved uid a process on this host runs as."""
    found: set[int] = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Uid:"):
                found.update(int(value) for value in line.split()[1:4])
                break
    return found


def _named(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
