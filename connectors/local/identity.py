"""The user LOCAL jobs run as (``[centers.local] run_as``): resolved, checked or created, at start.

``run_as`` is ``"auto"`` (the default: a uid of its own for each job, from ``job_uid_range``, when
the gateway may switch users, else the gateway's own user, which the gateway warns about once at
start), ``"none"`` (the gateway's own user, on purpose) or the name of one user all jobs share,
which must work.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from connectors.errors import ConnectorError

AUTO = "auto"
NO_ISOLATION = "none"
DEFAULT_UID_RANGE = (1_900_000_000, 1_900_065_535)


@dataclass(frozen=True)
class JobUser:
    """One named user every job runs as (an explicit ``run_as``)."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class UidRange:
    """Each job runs as a uid (and gid) of its own from ``first``..``last`` (``run_as = "auto"`` as root)."""

    first: int
    last: int


#: what running jobs as another user takes: set their uid and gid, hand them their working
#: directory (chown) and signal their processes (cancel, time limit)
_SWITCHING_CAPABILITIES = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7}


def can_switch_users() -> bool:
    """Whether this process may run jobs as another user: root, holding the capabilities for it
    (a root in a container started with those capabilities dropped cannot)."""
    if os.geteuid() != 0:
        return False
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return True  # no /proc to ask: root's rights are whole
    effective = next((line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), None)
    if effective is None:
        return True
    held = int(effective, 16)
    return all(held >> bit & 1 for bit in _SWITCHING_CAPABILITIES.values())


def resolve_job_user(run_as: str, uid_range: tuple[int, int] = DEFAULT_UID_RANGE) -> JobUser | UidRange | None:
    """Who jobs run as; None: the gateway's own user (``"none"``, or ``"auto"`` without the right to switch)."""
    if run_as == NO_ISOLATION or (run_as == AUTO and not can_switch_users()):
        return None
    if run_as == AUTO:
        return UidRange(*uid_range)
    return ensure_job_user(run_as)


def falls_back_to_the_gateway_user(run_as: str) -> bool:
    """``"auto"`` on a gateway that cannot switch users: its jobs run unisolated, as the gateway's user."""
    return run_as == AUTO and not can_switch_users()


def ensure_job_user(name: str) -> JobUser:
    """The user ``name``; created (a system user without a login) when missing and the gateway is root."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = None
    if entry is not None and entry.pw_uid == os.geteuid():
        raise ConnectorError(f"centers.local.run_as: {name!r} is the gateway's own user; jobs need a user of their own")
    if not can_switch_users():
        raise ConnectorError(
            f"centers.local.run_as = {name!r}: switching to another user for each job needs the gateway to run as root "
            "holding CAP_SETUID, CAP_SETGID, CAP_CHOWN and CAP_KILL "
            f'(or set run_as = "{NO_ISOLATION}" to run jobs as the gateway\'s user, without isolation)'
        )
    if entry is None:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        done = subprocess.run(
            [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise ConnectorError(f"centers.local.run_as: cannot create user {name!r}: {done.stderr.strip()}")
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise ConnectorError(f"centers.local.run_as: {name!r} has uid 0 (root); jobs need an unprivileged user")
    return JobUser(name, entry.pw_uid, entry.pw_gid)
