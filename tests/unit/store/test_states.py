"""The job vocabulary: members are the strings the database holds, and come back as members."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from store.states import HOLDING_STATES, TERMINAL_STATES, UNSUBMITTED_STATES, JobEventKind, JobKind, JobState
from store.tables import JobEventRow, JobRow
from store.types import EnumString

#: what the database holds today; a change here is a data migration
STORED = {
    JobState: ["PENDING", "QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED"],
    JobEventKind: ["STATE", "PROGRESS", "LOG", "PLACEMENT", "USAGE", "STAGING"],
    JobKind: ["TRAINING", "INFERENCE", "BATCH"],
}


@pytest.mark.parametrize("vocabulary", list(STORED))
def test_values_are_the_stored_strings_and_the_names(vocabulary: type[JobState | JobEventKind | JobKind]) -> None:
    assert [member.value for member in vocabulary] == STORED[vocabulary]
    assert [member.name for member in vocabulary] == STORED[vocabulary]


def test_members_compare_and_hash_as_their_strings() -> None:
    assert JobState.RUNNING == "RUNNING" and "RUNNING" == JobState.RUNNING
    assert JobState.RUNNING != JobState.STARTING
    assert str(JobState.CANCELLED) == "CANCELLED" and f"{JobState.CANCELLED}" == "CANCELLED"
    assert "FAILED" in TERMINAL_STATES and {"QUEUED": 1}[JobState.QUEUED] == 1
    assert JobState("SUCCEEDED") is JobState.SUCCEEDED
    with pytest.raises(ValueError):
        JobState("DONE")


def test_state_groups() -> None:
    assert TERMINAL_STATES == {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    assert [state for state in JobState if state.terminal] == [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]
    assert set(HOLDING_STATES) == {JobState.QUEUED, JobState.STARTING, JobState.RUNNING, JobState.CANCELLING}
    assert UNSUBMITTED_STATES == (JobState.PENDING, JobState.QUEUED)
    assert not TERMINAL_STATES & set(HOLDING_STATES)


def test_the_job_tables_keep_their_varchar_columns() -> None:
    for column in (JobRow.__table__.c.state, JobRow.__table__.c.kind, JobEventRow.__table__.c.kind, JobEventRow.__table__.c.state):
        assert isinstance(column.type, EnumString)
        assert column.type.impl.length == 20  # type: ignore[attr-defined]


async def test_enum_string_writes_the_value_and_reads_a_member(tmp_path: Path) -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("state", EnumString(JobState, 20), nullable=True))
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'states.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(
                insert(table), [{"id": 1, "state": JobState.RUNNING}, {"id": 2, "state": "QUEUED"}, {"id": 3, "state": None}]
            )
            raw = (await connection.execute(text("SELECT state FROM t ORDER BY id"))).scalars().all()
            typed = (await connection.execute(select(table.c.state).order_by(table.c.id))).scalars().all()
            matched = (await connection.execute(select(table.c.id).where(table.c.state.in_(HOLDING_STATES)))).scalars().all()
    finally:
        await engine.dispose()
    assert raw == ["RUNNING", "QUEUED", None]
    assert typed == [JobState.RUNNING, JobState.QUEUED, None] and all(type(value) is JobState for value in typed[:2])
    assert matched == [1, 2]


def test_enum_string_refuses_a_word_outside_the_vocabulary() -> None:
    with pytest.raises(ValueError):
        EnumString(JobState, 20).process_bind_param("DONE", None)  # type: ignore[arg-type]
