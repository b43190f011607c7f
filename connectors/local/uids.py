"""Handing out the uids of ``run_as = "auto"``: one of its own to each live job, never one a process still runs as.

The allocator keeps no file of its own: each job's ``spec.json`` names its uid, so a gateway that
restarts with jobs still running rebuilds the taken set from the job folders (see the connector's
recovery). A uid is given again only after going round the whole range, and never while any process
on the host still runs as it (a job's escaped leftovers) or when the host's passwd names it.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterable
from pathlib import Path

from connectors.errors import SubmissionRejected
from connectors.local.identity import UidRange


class UidAllocator:
    def __init__(self, uids: UidRange, center: str) -> None:
        self.uids = uids
        self.center = center
        self._taken: set[int] = set()
        self._last = uids.last  # the next one given is the range's first

    def recover(self, taken: Iterable[int], newest: int | None) -> None:
        """Jobs found on disk: the uids of those not finished, and the one given last."""
        self._taken |= {uid for uid in taken if self.uids.first <= uid <= self.uids.last}
        if newest is not None and self.uids.first <= newest <= self.uids.last:
            self._last = newest

    def allocate(self) -> int:
        running = uids_of_processes()
        size = self.uids.last - self.uids.first + 1
        for step in range(1, size + 1):
            uid = self.uids.first + (self._last - self.uids.first + step) % size
            if uid in self._taken or uid in running or _named(uid):
                continue
            self._taken.add(uid)
            self._last = uid
            return uid
        raise SubmissionRejected(
            f"every uid of centers.local.job_uid_range {self.uids.first}-{self.uids.last} is taken by a live job", center=self.center
        )

    def release(self, uid: int) -> None:
        self._taken.discard(uid)


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
