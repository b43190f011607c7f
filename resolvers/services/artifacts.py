"""Bring a model's artifact to a center that cannot read it where it is: a copy into the center's
data root, its checksum verified against the source's (and the model's registered one)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from resolvers.data.digest import algorithm_of, measure


@dataclass(frozen=True)
class Copied:
    path: Path
    size_bytes: int
    checksum: str


class ArtifactMismatch(Exception):
    """The copy's checksum is not the source's or the model's registered one."""


def destination(data_root: Path, service_id: int, source: Path) -> Path:
    return data_root / "models" / f"service-{service_id}" / source.name


async def copy_verified(source: Path, target: Path, registered_checksum: str | None = None) -> Copied:
    """Copy ``source`` (a file or a folder) to ``target`` and verify it; raises ArtifactMismatch."""
    algorithm = algorithm_of(registered_checksum)
    before = await measure(source, algorithm)
    if registered_checksum is not None and before.checksum != registered_checksum:
        raise ArtifactMismatch(f"the artifact's checksum is {before.checksum}, the model says {registered_checksum}")

    def copy() -> None:
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)

    await asyncio.to_thread(copy)
    after = await measure(target, algorithm)
    if after.checksum != before.checksum:
        raise ArtifactMismatch(f"the copy's checksum {after.checksum} is not the source's {before.checksum}")
    return Copied(target, after.size_bytes, after.checksum)
