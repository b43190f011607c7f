"""Leases on the database (SQLite and PostgreSQL): one holder at a time, a new epoch at each change
of holder, a stale holder's fenced write refused, a clean stop handing the lease over at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text

from resolvers.common.ids import int_key
from resolvers.common.leases import Leases
from resolvers.jobs import reconciler
from resolvers.jobs.states import JobState
from store.db import Database
from store.leases import LeaseRow
from store.tables import JobRow
from store.types import utcnow
from tests.conftest import DatabaseChoice
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases  # the lease is the database's row and its locks


class Loop:
    def __init__(self) -> None:
        self.running = False
        self.starts = 0

    def start(self) -> None:
        self.running, self.starts = True, self.starts + 1

    async def stop(self) -> None:
        self.running = False


def replica(db: Database, name: str, loop: Loop, ttl: float = 1.0) -> Leases:
    leases = Leases(db, f"{name}:test:1:0", ttl_seconds=ttl, heartbeat_seconds=ttl / 4, reclaim_dead_local=False)
    leases.add("center:a", loop.start, loop.stop)
    return leases


async def test_one_holder_at_a_time_and_a_new_epoch_when_the_holder_changes(db: Database) -> None:
    first_loop, second_loop = Loop(), Loop()
    first, second = replica(db, "first", first_loop), replica(db, "second", second_loop)
    await first.beat_once()
    await second.beat_once()
    assert first.held() == {"center:a": 1} and second.held() == {}
    assert first_loop.running and not second_loop.running
    async with db.transaction() as session:
        assert await first.fence("center:a")(session)
        assert not await second.fence("center:a")(session)

    # the first holder stops beating (as if killed): once its lease has run out, the second takes it
    while not second.held():
        await asyncio.sleep(0.05)
        await second.beat_once()
    assert second.held() == {"center:a": 2} and second_loop.running
    async with db.transaction() as session:
        assert not await first.fence("center:a")(session)  # the stale holder's write is refused
    await first.beat_once()  # the stale holder learns it lost the lease, and stops its loop
    assert first.held() == {} and not first_loop.running


async def test_a_clean_stop_hands_the_lease_over_at_the_next_beat(db: Database) -> None:
    first_loop, second_loop = Loop(), Loop()
    first, second = replica(db, "first", first_loop, ttl=60), replica(db, "second", second_loop, ttl=60)
    await first.start()
    await second.start()
    assert first.held() and not second.held()
    await first.stop()
    assert not first_loop.running
    await second.beat_once()
    assert second.held() == {"center:a": 2} and second_loop.running
    await second.stop()


async def test_a_hand_over_a_dead_replica_left_unfinished_is_finished_by_the_reconciling_one(
    gateway_factory: Any, database: DatabaseChoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler, "SWEEP_INTERVAL_SECONDS", 0.1)
    gateway = await gateway_factory()
    job = await submit(gateway.client, python_job("import time; time.sleep(5)", name="left-behind"))
    # running first: a reconciler round that saw it start cannot then write over the faked row below
    await wait_for_state(gateway.client, job["id"], {"RUNNING"})
    key = int_key(job["id"], "Job")
    # what a replica killed between choosing the center and recording the submission leaves behind
    db = Database(database.url or "", schema=database.schema)
    try:
        async with db.transaction() as session:
            row = await session.get(JobRow, key)
            assert row is not None and row.external_id is not None
            submitted_as = row.external_id
            row.external_id, row.state, row.updated_at = None, JobState.QUEUED, utcnow() - timedelta(minutes=5)

        async def submitted_again() -> str | None:
            async with db.read() as session:
                found = await session.get(JobRow, key, populate_existing=True)
                return found.external_id if found is not None else None

        assert await eventually(submitted_again, "the sweep finished the hand-over", timeout=15) == submitted_as  # the same job
    finally:
        await db.dispose()
    finished = await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
    assert finished["state"] == "SUCCEEDED"


async def test_a_stop_ends_in_bounded_time_when_the_database_cannot_take_the_release(db: Database, database: DatabaseChoice) -> None:
    import sqlite3
    import time

    from resolvers.common import leases as leases_module

    loop = Loop()
    leases = replica(db, "stopping", loop, ttl=30.0)
    await leases.start()
    assert loop.running and leases.held() == {"center:a": 1}
    other = Database(database.url or "", schema=database.schema)
    blocker = sqlite3.connect(db.engine.url.database or "", timeout=0) if db.dialect == "sqlite" else None
    try:
        async with other.transaction() as session:
            if blocker is not None:
                blocker.execute("BEGIN IMMEDIATE")  # SQLite: the file's write lock, as a stuck connection holds it
            else:  # PostgreSQL: the lease's row, locked by another transaction
                await session.execute(text("SELECT name FROM leases FOR UPDATE"))
            started = time.monotonic()
            await leases.stop()
            took = time.monotonic() - started
    finally:
        if blocker is not None:
            blocker.rollback()
            blocker.close()
        await other.dispose()
    assert not loop.running
    assert took < leases_module.RELEASE_SECONDS + 2, took
    successor = replica(db, "successor", Loop(), ttl=30.0)
    await successor.beat_once()
    assert successor.held() == {}  # not released: the lease waits for its expiry, as the warning says


SPREAD = ("center:a", "center:b", "center:c")


def spreading_replica(db: Database, name: str, loops: dict[str, Loop], ttl: float = 1.0) -> Leases:
    leases = Leases(db, f"{name}:test:1:0", ttl_seconds=ttl, heartbeat_seconds=ttl / 4, reclaim_dead_local=False)
    for lease in SPREAD:
        loops[lease] = Loop()
        leases.add(lease, loops[lease].start, loops[lease].stop, spread=True)
    leases.add("network-queue", Loop().start, Loop().stop)
    return leases


async def beat_all(replicas: list[Leases], loops: list[dict[str, Loop]]) -> None:
    for leases in replicas:
        await leases.beat_once()
        for lease in SPREAD:  # never two replicas running one lease's loop, at any point
            assert sum(replica_loops[lease].running for replica_loops in loops) <= 1, lease


async def test_spread_leases_are_shared_out_fairly_stay_put_and_move_when_a_holder_dies(db: Database) -> None:
    loops: list[dict[str, Loop]] = [{}, {}, {}]
    replicas = [spreading_replica(db, f"r{index}", loops[index]) for index in range(3)]
    await beat_all(replicas[:1], loops)
    assert set(replicas[0].held()) == {*SPREAD, "network-queue"}  # alone, the first takes everything
    for _ in range(4):  # the others join: the first hands over what is above its share, the others take it
        await beat_all(replicas, loops)
    counts = [len([name for name in leases.held() if name in SPREAD]) for leases in replicas]
    assert counts == [1, 1, 1], counts
    assert sum("network-queue" in leases.held() for leases in replicas) == 1
    settled = [leases.held() for leases in replicas]
    for _ in range(6):  # a stable set of replicas: nothing moves back and forth
        await beat_all(replicas, loops)
    assert [leases.held() for leases in replicas] == settled
    view = replicas[0].view
    assert sorted(view) == sorted(leases.holder for leases in replicas)
    assert all(view[leases.holder] == sorted(leases.held()) for leases in replicas)

    # the third stops beating (killed): once its lease expires the two others share its center
    lost = [name for name in replicas[2].held() if name in SPREAD]
    while any(name not in {**replicas[0].held(), **replicas[1].held()} for name in lost):
        await asyncio.sleep(0.05)
        await beat_all(replicas[:2], loops[:2])  # its own loops died with it
    counts = [len([name for name in leases.held() if name in SPREAD]) for leases in replicas[:2]]
    assert sorted(counts) == [1, 2], counts
    assert lost[0] in {**replicas[0].held(), **replicas[1].held()}


async def test_a_hand_over_lets_the_round_in_progress_end_before_the_lease_is_free(db: Database) -> None:
    order: list[str] = []
    first_loops: dict[str, Loop] = {}
    first = spreading_replica(db, "first", first_loops, ttl=60)
    finishing = asyncio.Event()

    async def drain() -> None:  # a round still writing when the hand-over begins
        order.append("drain begins")
        async with db.read() as session:
            assert await first.fence("center:c")(session)  # its writes still pass the fence meanwhile
        finishing.set()
        order.append("round ended")

    first.add("center:c", first_loops["center:c"].start, first_loops["center:c"].stop, drain=drain, spread=True)
    await first.beat_once()
    second = spreading_replica(db, "second", {}, ttl=60)
    await second.beat_once()  # announces itself: the first is now above its share of ceil(3 / 2) = 2
    await first.beat_once()
    assert finishing.is_set() and order == ["drain begins", "round ended"]
    assert "center:c" not in first.held()
    await second.beat_once()
    assert "center:c" in second.held()  # free only once the round had ended
    async with db.transaction() as session:
        assert not await first.fence("center:c")(session)


async def test_the_heartbeat_renews_while_readers_hold_every_pooled_connection(gateway_factory: Any) -> None:
    """A crowd of subscribers opening at once can hold the whole shared pool: the heartbeat, on
    connections of its own, still renews, so the replica keeps its centers."""
    gateway = await gateway_factory()
    runtime = gateway.runtime
    held_before = runtime.leases.held()
    assert held_before, "a lone gateway holds its leases"
    pool: Any = runtime.db.engine.pool
    crowd = [await runtime.db.engine.connect() for _ in range(pool.size() + pool._max_overflow)]
    try:
        async with asyncio.timeout(5):  # a beat waiting for the drained pool would wait 30 s, then fail
            await runtime.leases.beat_once()
            if runtime.db.dialect == "sqlite":  # one writer at a time, on a connection of its own
                async with runtime.db.transaction() as session:
                    await session.execute(text("SELECT 1"))
    finally:
        for connection in crowd:
            await connection.close()
    assert runtime.leases.held() == held_before


async def test_a_heartbeat_renews_every_lease_held_in_one_statement(db: Database) -> None:
    """A replica reconciling 50 centers holds 54 leases: a statement for each, every heartbeat, was
    54 round trips to the database on the event loop that serves requests."""
    loops = {f"center:{index}": Loop() for index in range(60)}
    leases = Leases(db, "many:test:1:0", ttl_seconds=60, heartbeat_seconds=15, reclaim_dead_local=False)
    for name, loop in loops.items():
        leases.add(name, loop.start, loop.stop)
    await leases.beat_once()
    assert set(leases.held()) == set(loops) and all(loop.running for loop in loops.values())

    async def expiries() -> dict[str, Any]:
        async with db.read() as session:
            rows = await session.execute(select(LeaseRow.name, LeaseRow.expires_at).where(LeaseRow.name.startswith("center:")))
            return {name: expires_at for name, expires_at in rows.all()}

    before = await expiries()
    updates: list[str] = []
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)
        if statement.lstrip().upper().startswith("UPDATE LEASES"):
            updates.append(statement)

    engines = [engine.sync_engine for engine in db.engines]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        await leases.beat_once()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    assert len(updates) == 1, updates  # the leases' renewal with this replica's presence
    # and one read of the table, what it holds read off it: a steady beat (nothing to take) is two statements
    assert len([statement for statement in statements if not statement.lstrip().upper().startswith(("PRAGMA", "BEGIN"))]) == 2, statements
    after = await expiries()
    assert sorted(after) == sorted(loops) and all(after[name] > before[name] for name in loops)  # every one pushed back
    assert leases.held() == dict.fromkeys(loops, 1)
    await leases.stop()  # released in one statement too: each is free for the next holder at once
    successor = Leases(db, "next:test:1:0", ttl_seconds=60, heartbeat_seconds=15, reclaim_dead_local=False)
    for name in loops:
        successor.add(name, Loop().start, Loop().stop)
    await successor.beat_once()
    assert successor.held() == dict.fromkeys(loops, 2)
