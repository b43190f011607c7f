"""A model's files sent with ``registerModel`` (a peer gateway pushing the model it deploys here):
written into a folder of this gateway's own, then verified against the sender's checksum.

The checksum is the folder's (see ``digest``): the manifest of the files as sent, so the sender
computes it over the same names and bytes without writing anything.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from resolvers.common.errors import UserErrorData
from resolvers.data.digest import CHECKSUM_PATTERN, Measured, TreeDigest, algorithm_of, measure

#: what one registerModel may carry (the request body limit bounds it too)
MAX_PUSHED_BYTES = 64 * 1024 * 1024
MAX_PUSHED_FILES = 1000


@dataclass(frozen=True)
class PushedFile:
    path: str
    content_base64: str


@dataclass(frozen=True)
class Written:
    path: Path
    measured: Measured


def _refused(message: str) -> UserErrorData:
    return UserErrorData(message, "INVALID_ARTIFACT", ("artifact",))


def _relative(path: str) -> PurePosixPath | None:
    parts = PurePosixPath(path)
    if not path or parts.is_absolute() or any(part in ("", ".", "..") for part in parts.parts) or "\x00" in path:
        return None
    return parts


def tree_checksum(files: Sequence[tuple[str, bytes]], algorithm: str = "sha256") -> Measured:
    """The checksum the folder made of ``files`` (relative path, bytes) has."""
    digest = TreeDigest(algorithm)
    for name, data in files:
        digest.begin_file(name)
        digest.update(data)
        digest.end_file()
    return digest.result()


async def write_pushed(root: Path, files: Sequence[PushedFile], checksum: str) -> Written | UserErrorData:
    """The files written under ``root/<fresh folder>`` and verified; or why they are refused."""
    if not CHECKSUM_PATTERN.match(checksum):
        return _refused("the checksum must be sha256:<hex>, sha512:<hex> or md5:<hex>")
    if not files or len(files) > MAX_PUSHED_FILES:
        return _refused(f"an artifact has 1 to {MAX_PUSHED_FILES} files")
    decoded: list[tuple[PurePosixPath, bytes]] = []
    total = 0
    for item in files:
        relative = _relative(item.path)
        if relative is None:
            return _refused(f"{item.path!r} is not a relative path inside the artifact")
        try:
            data = base64.b64decode(item.content_base64, validate=True)
        except (binascii.Error, ValueError):
            return _refused(f"{item.path!r} is not base64")
        total += len(data)
        if total > MAX_PUSHED_BYTES:
            return _refused(f"an artifact sent this way holds at most {MAX_PUSHED_BYTES} bytes")
        decoded.append((relative, data))
    if len({str(name) for name, _ in decoded}) != len(decoded):
        return _refused("two files of the artifact have the same path")
    target = root / secrets.token_hex(8)

    def write() -> None:
        for relative, data in decoded:
            path = target.joinpath(*relative.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    await asyncio.to_thread(write)
    measured = await measure(target, algorithm_of(checksum))
    if measured.checksum != checksum:
        await asyncio.to_thread(shutil.rmtree, target, True)
        return UserErrorData(
            f"the files' checksum is {measured.checksum}, the sender says {checksum}", "CHECKSUM_MISMATCH", ("artifact", "checksum")
        )
    return Written(target, measured)
