"""The journal of request counts (SQLite and PostgreSQL): every appended count reaches the
services' totals exactly once, whoever folds and however often; a torn last line waits for its
end; a dead gateway's journal is folded, then deleted; rotation loses nothing; a journal that
cannot be written falls back to counting in the database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from resolvers.services import tally as tally_module
from resolvers.services.tally import Tally
from resolvers.services.usage import TokenUsage
from store.count_journal import SUFFIX, CountJournalRow
from store.db import Database
from store.resources import ResourceRequest
from store.service_tables import ServiceRow
from store.tables import AccountRow, ModelRow

pytestmark = pytest.mark.both_databases  # the fold is a compare-and-set on the database's row


async def new_service(db: Database) -> int:
    async with db.transaction() as session:
        account = AccountRow(name="journal")
        session.add(account)
        await session.flush()
        model = ModelRow(owner_id=account.id, name="m", version="1", uri="file:///m")
        session.add(model)
        await session.flush()
        service = ServiceRow(
            owner_id=account.id,
            model_id=model.id,
            name="s",
            state="READY",
            request=ResourceRequest(max_duration_minutes=60),
            command=["serve"],
        )
        session.add(service)
        await session.flush()
        return service.id


async def totals(db: Database, service_id: int) -> tuple[int, int, int]:
    async with db.read() as session:
        row = (
            await session.execute(
                select(ServiceRow.requests_total, ServiceRow.prompt_tokens_total, ServiceRow.completion_tokens_total).where(
                    ServiceRow.id == service_id
                )
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def journals(folder: Path) -> list[Path]:
    return sorted(folder.glob("*" + SUFFIX))


async def test_two_gateways_folding_the_same_journals_at_once_count_each_request_once(db: Database, tmp_path: Path) -> None:
    service_id = await new_service(db)
    first, second = Tally(db, tmp_path), Tally(db, tmp_path)
    for n in range(30):
        await first.count(service_id, TokenUsage(2, 3) if n % 3 == 0 else None)
        await second.count(service_id)
        if n % 7 == 0:  # fold while counting, both at once, again and again
            await asyncio.gather(first.fold(), second.fold(), first.fold())
    await asyncio.gather(first.fold(), second.fold())
    await asyncio.gather(first.fold(), second.fold())
    assert await totals(db, service_id) == (60, 20, 30)


async def test_a_torn_last_line_is_folded_only_once_it_is_whole(db: Database, tmp_path: Path) -> None:
    service_id = await new_service(db)
    tally = Tally(db, tmp_path)
    await tally.count(service_id)
    [path] = journals(tmp_path)
    with path.open("ab") as file:
        file.write(f"{service_id} 1 0".encode())  # a write cut short: no newline yet
    await tally.fold()
    assert await totals(db, service_id) == (1, 0, 0)
    with path.open("ab") as file:
        file.write(b" 0\n")
    await tally.fold()
    assert await totals(db, service_id) == (2, 0, 0)


async def test_a_dead_gateways_journal_is_folded_once_by_the_next_start_then_deleted(db: Database, tmp_path: Path) -> None:
    service_id = await new_service(db)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    killed = Tally(db, tmp_path)
    host = killed.journal.name.rsplit("-", 2)[0]
    killed.journal.name = f"{host}-{int(dead.stdout)}.1-deadbeef0000"  # as the ended process would have named it
    for _ in range(5):
        await killed.count(service_id)
    await killed.fold()  # folded in part while it lived
    await killed.count(service_id)
    await killed.count(service_id)
    [left] = journals(tmp_path)

    started = Tally(db, tmp_path)
    await started.fold()
    assert await totals(db, service_id) == (7, 0, 0)
    assert not left.exists()
    async with db.read() as session:
        row = await session.get(CountJournalRow, left.name.removesuffix(SUFFIX))
    assert row is not None and row.done and row.folded_bytes > 0
    await started.fold()
    await Tally(db, tmp_path).fold()
    assert await totals(db, service_id) == (7, 0, 0)


async def test_rotation_and_a_clean_stop_lose_nothing_and_leave_no_journal(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tally_module, "ROTATE_BYTES", 40)
    service_id = await new_service(db)
    tally = Tally(db, tmp_path)
    names = set()
    for _ in range(4):
        for _ in range(5):
            await tally.count(service_id, TokenUsage(1, 1))
        names.add(tally.journal.name)
        await tally.fold()
    assert len(names) == 4  # each fold past 40 bytes started a new journal
    assert len(journals(tmp_path)) <= 1
    await tally.count(service_id)
    await tally.close()
    assert await totals(db, service_id) == (21, 20, 20)
    assert journals(tmp_path) == []


async def test_a_journal_that_cannot_be_written_counts_in_the_database_before_answering(db: Database, tmp_path: Path) -> None:
    service_id = await new_service(db)
    blocked = tmp_path / "counts"
    blocked.write_text("a file where the journals' folder should be")
    tally = Tally(db, blocked)
    await tally.count(service_id, TokenUsage(4, 5))
    assert await totals(db, service_id) == (1, 4, 5)
    await tally.close()
    assert await totals(db, service_id) == (1, 4, 5)
