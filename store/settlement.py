"""What a settlement with a peer reads: the jobs handed to one center that ended in a period, with their usage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.billing_tables import UsageRecordRow
from store.tables import JobRow


async def delegated_jobs(
    session: AsyncSession, center_id: int, start: datetime, end: datetime
) -> list[tuple[JobRow, UsageRecordRow | None]]:
    """Jobs the center accepted (they have its id for them) and that ended in [start, end), oldest first."""
    query = (
        select(JobRow, UsageRecordRow)
        .outerjoin(UsageRecordRow, UsageRecordRow.job_id == JobRow.id)
        .where(JobRow.center_id == center_id, JobRow.external_id.is_not(None))
        .where(JobRow.finished_at >= start, JobRow.finished_at < end)
        .order_by(JobRow.id)
    )
    return [(job, usage) for job, usage in (await session.execute(query)).all()]
