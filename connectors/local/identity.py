"""The unprivileged user LOCAL jobs run as (``[centers.local] run_as``): checked, or created, at start."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

from connectors.errors import ConnectorError


@dataclass(frozen=True)
class JobUser:
    name: str
    uid: int
    gid: int


def ensure_job_user(name: str) -> JobUser:
    """The user ``name``; created (a system user without a login) when missing and the gateway is root."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = None
    if entry is not None and entry.pw_uid == os.geteuid():
        raise ConnectorError(f"centers.local.run_as: {name!r} is the gateway's own user; jobs need a user of their own")
    if os.geteuid() != 0:
        raise ConnectorError(
            f"centers.local.run_as = {name!r}: switching to another user for each job needs the gateway to run as root "
            "(or leave run_as unset to run jobs as the gateway's user, without isolation)"
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
    return JobUser(name, entry.pw_uid, entry.pw_gid)
