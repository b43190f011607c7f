"""Looking at processes from tests."""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group; zombies wait on a lazy init."""
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def runnable_by_anyone(program: Path) -> bool:
    """True when a user with no rights of its own (the LOCAL jobs' user) can run ``program``."""
    target = program.resolve()
    if not target.is_file() or not target.stat().st_mode & 0o001:
        return False
    return all(folder.stat().st_mode & 0o001 for folder in target.parents)


def job_interpreter() -> str:
    """The Python that test jobs run: the tests' own when any user can run it, else the system's.

    LOCAL jobs run as an unprivileged user of their own (as root, by default), and that user cannot
    reach an interpreter under a private home (a pyenv under /root); giving it rights there would
    weaken the very isolation under test. The jobs' scripts need only the standard library."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if runnable_by_anyone(Path(candidate)):
            return candidate
    raise AssertionError(f"no Python that any user can run (tried {sys.executable}, /usr/bin/python3, /usr/local/bin/python3)")


#: the interpreter every test job's command starts with, on every kind of center
JOB_PYTHON = job_interpreter()


@contextmanager
def folder_jobs_can_read() -> Iterator[Path]:
    """A fresh folder any user may look into (0755), outside pytest's private temporary tree (0700),
    for a test to signal its LOCAL jobs, which run as a user of their own; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="aicn-test-signal-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@functools.cache
def python_with_packages() -> str:
    """A Python with the tests' own packages (onnxruntime, scikit-learn, ...) that the LOCAL jobs' users
    can run: for replicas of the built-in ONNX runner (``[services] python``) and jobs that train.

    The tests' interpreter when anyone can run it and read its packages; else, made once per test
    process, a venv of a system Python of the same version (the packages' ABI) in a world-readable
    temporary folder whose site-packages points at the tests' when others may read them, or holds
    hard links to them (no copy: the same files, in a folder others may traverse; a copy across
    filesystems). About 0.1 s, or 0.7 s for 800 MB of packages by hard links."""
    packages = Path(sysconfig.get_paths()["purelib"])
    if runnable_by_anyone(Path(sys.executable)) and _readable_by_anyone(packages):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = next(
        (c for c in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}") if runnable_by_anyone(Path(c))),
        None,
    )
    if base is None:
        raise AssertionError(f"no Python {version} that any user can run (/usr/bin/python{version}); LOCAL jobs' users need one")
    folder = Path(tempfile.mkdtemp(prefix="aicn-test-python-"))
    folder.chmod(0o755)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    site = folder / "lib" / f"python{version}" / "site-packages"
    if _readable_by_anyone(packages):
        (site / "aicn-tests.pth").write_text(f"{packages}\n")
    else:
        linked = subprocess.run(["cp", "-al", f"{packages}/.", str(site)], capture_output=True)
        if linked.returncode != 0:
            subprocess.run(["cp", "-a", f"{packages}/.", str(site)], check=True, capture_output=True)
    return str(folder / "bin" / "python")


def _readable_by_anyone(folder: Path) -> bool:
    target = folder.resolve()
    return bool(target.stat().st_mode & 0o005 == 0o005) and all(parent.stat().st_mode & 0o001 for parent in target.parents)
