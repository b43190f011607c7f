"""What the metrics read at scrape time: counts over every account, one query each."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.states import JobState
from store.tables import JobRow


async def jobs_per_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(JobRow.state, func.count()).group_by(JobRow.state))
    return {JobState(state).value: int(count) for state, count in rows}


async def network_queue_length(session: AsyncSession) -> int:
    """Jobs waiting at the network level for a center (QUEUED, not handed to any center)."""
    statement = select(func.count()).select_from(JobRow).where(JobRow.state == JobState.QUEUED, JobRow.center_id.is_(None))
    return int((await session.execute(statement)).scalar_one())
