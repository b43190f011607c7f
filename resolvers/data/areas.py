"""Where data lives on a center: its data root, with one folder per job and one per replica.

Every center kind here runs on a filesystem the gateway reaches too (the same host, or a
shared mount); ``[[centers]] data_root`` names the folder. A job finds its inputs in
``AICN_INPUT_DIR`` and leaves what it wants kept in ``AICN_OUTPUT_DIR``; both stay after
the job ends (the output folder becomes the first replica of the dataset or model made
from it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

JOBS_FOLDER = "jobs"
REPLICAS_FOLDER = "replicas"
INPUT_ENVIRONMENT = "AICN_INPUT_DIR"
OUTPUT_ENVIRONMENT = "AICN_OUTPUT_DIR"


def file_uri(path: Path) -> str:
    return Path(path).absolute().as_uri()


def path_of(uri: str) -> Path | None:
    """The local path a ``file://`` URI names (None for any other scheme or a remote host)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


@dataclass(frozen=True)
class JobArea:
    """A job's input and output folders under its center's data root."""

    root: Path
    reference: str

    @property
    def folder(self) -> Path:
        return self.root / JOBS_FOLDER / self.reference

    @property
    def input_dir(self) -> Path:
        return self.folder / "input"

    @property
    def output_dir(self) -> Path:
        return self.folder / "output"

    def prepare(self) -> None:
        """Make both folders (blocking). The job may run as a user of its own: it can traverse
        ``jobs/`` without listing it, read its inputs, and write its output folder."""
        jobs = self.root / JOBS_FOLDER
        jobs.mkdir(parents=True, exist_ok=True)
        jobs.chmod(0o711)
        self.input_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        for folder, mode in ((self.input_dir, 0o755), (self.output_dir, 0o777)):
            if folder.stat().st_uid == os.geteuid():  # not once a center handed it to the job's own uid (0700)
                folder.chmod(mode)

    def environment(self) -> dict[str, str]:
        return {INPUT_ENVIRONMENT: str(self.input_dir), OUTPUT_ENVIRONMENT: str(self.output_dir)}


def replica_path(root: Path, dataset_id: int, name: str) -> Path:
    """Where a center keeps its verified copy of a dataset."""
    return root / REPLICAS_FOLDER / f"dataset-{dataset_id}" / safe_name(name)


def safe_name(name: str) -> str:
    """A dataset's name as one path component (``AICN_INPUT_DIR/<name>``)."""
    cleaned = "".join(c if c.isalnum() or c in "-_.=+" else "_" for c in name).strip(".")
    return cleaned or "dataset"
