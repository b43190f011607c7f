"""Request counts appended to a local file before each answer goes out, folded into the database
exactly once.

A gateway appends one line per answered request (``service requests prompt completion``) to a
journal of its own in the data folder: a ``write(2)`` that survives the process being killed
the moment after (the kernel holds it, as it holds SQLite's WAL with ``synchronous=NORMAL``).
Folding adds what lies past a journal's folded offset to the services' totals and moves the
offset in the same transaction, compare-and-set: two gateways folding one journal at once count
it once, and a fold that fails is simply done again.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Boolean, String, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from store.tables import Base
from store.types import BigId

SUFFIX = ".counts"


class CountJournalRow(Base):
    __tablename__ = "count_journals"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: bytes of the journal already added to the services' totals
    folded_bytes: Mapped[int] = mapped_column(BigId)
    #: the journal is closed and folded to its end; its file may be deleted
    done: Mapped[bool] = mapped_column(Boolean, default=False)


@dataclass
class Counts:
    """What a stretch of journal counted, per service."""

    requests: dict[int, int] = field(default_factory=dict)
    tokens: dict[int, tuple[int, int]] = field(default_factory=dict)

    def add(self, service_id: int, requests: int, prompt: int, completion: int) -> None:
        if requests:
            self.requests[service_id] = self.requests.get(service_id, 0) + requests
        if prompt or completion:
            before = self.tokens.get(service_id, (0, 0))
            self.tokens[service_id] = (before[0] + prompt, before[1] + completion)


def journal_name() -> str:
    """A new journal's name: the host and process that write it (pid and start time), and a token of its own."""
    return f"{socket.gethostname()}-{os.getpid()}.{started_at(os.getpid())}-{uuid.uuid4().hex[:12]}"


def started_at(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (0: not known; raises ProcessLookupError when there is none)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            raise ProcessLookupError(pid) from None
        return 0
    except (OSError, IndexError, ValueError):
        return 0


def writer_gone(name: str) -> bool:
    """Whether the process that wrote journal ``name`` is known to have ended: it ran on this
    host, and no process runs with its pid, or the one that does started at another time."""
    host, _, process = name.rpartition("-")[0].rpartition("-")
    pid, _, started = process.partition(".")
    if host != socket.gethostname() or not pid.isdigit() or not started.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
        now = started_at(int(pid))
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return now != 0 and int(started) != 0 and now != int(started)


class CountJournal:
    """The journal this gateway appends to."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = journal_name()
        self._fd: int | None = None  # opened (and the folder made) at the first count

    def path(self, name: str) -> Path:
        return self.folder / (name + SUFFIX)

    def append(self, service_id: int, requests: int, prompt: int = 0, completion: int = 0) -> None:
        """Count, durably against the process's end, before returning (raises OSError)."""
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path(self.name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, f"{service_id} {requests} {prompt} {completion}\n".encode())

    def rotate(self) -> str:
        """Start a new journal; the old one's name is returned (nothing is written to it again)."""
        old = self.name
        self.close()
        return old

    def close(self) -> None:
        """Stop writing (a later count opens a new journal)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.name = journal_name()

    def names(self) -> list[str]:
        """Every journal in the folder: this gateway's and any other's (one that died, or a replica on this host)."""
        if not self.folder.is_dir():
            return []
        return sorted(entry.name[: -len(SUFFIX)] for entry in self.folder.iterdir() if entry.name.endswith(SUFFIX))


def read_from(path: Path, offset: int) -> tuple[Counts, int]:
    """The counts past ``offset``, up to the last whole line, and the offset after them."""
    counts = Counts()
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        fields = line.split()
        if len(fields) == 4:
            service_id, requests, prompt, completion = (int(value) for value in fields)
            counts.add(service_id, requests, prompt, completion)
    return counts, offset + end


async def folded(session: AsyncSession, name: str) -> tuple[int, bool]:
    """How far journal ``name`` is folded, and whether it is done."""
    row = (await session.execute(select(CountJournalRow.folded_bytes, CountJournalRow.done).where(CountJournalRow.name == name))).first()
    return (0, False) if row is None else (int(row[0]), bool(row[1]))


class FoldRaced(Exception):
    """Another gateway folded the same stretch first: this transaction must not commit."""


async def move_offset(session: AsyncSession, name: str, start: int, end: int, *, done: bool) -> None:
    """Move journal ``name``'s folded offset from ``start`` to ``end`` (raises FoldRaced when it is no longer at ``start``)."""
    if start == 0:
        exists = (await session.execute(select(CountJournalRow.name).where(CountJournalRow.name == name))).first()
        if exists is None:
            await session.execute(insert(CountJournalRow).values(name=name, folded_bytes=end, done=done))
            return
    moved = await session.execute(
        update(CountJournalRow)
        .where(CountJournalRow.name == name, CountJournalRow.folded_bytes == start, CountJournalRow.done.is_(False))
        .values(folded_bytes=end, done=done)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise FoldRaced(name)
