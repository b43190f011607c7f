"""The jobs' root field: the caller's jobs."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection
from graph.jobs.enums import JobState
from graph.jobs.inputs import JobFilter, JobOrder
from graph.jobs.lists import list_jobs
from graph.jobs.types import Job


@strawberry.type(description="How many jobs are in one state.")
class JobStateCount:
    state: JobState
    count: int


@strawberry.type(description="The caller's jobs counted per state by the database (no pages fetched).")
class JobStats:
    total: int
    by_state: list[JobStateCount] = strawberry.field(description="Every state, those with no job included (count 0).")


@strawberry.type
class JobQuery:
    @strawberry.field(description="The caller's jobs, newest first unless `orderBy` says otherwise.")
    async def jobs(
        self,
        info: Info[Context, None],
        filter: JobFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        order_by: JobOrder = JobOrder.NEWEST,
    ) -> Connection[Job]:
        return await list_jobs(info, first=first, after=after, filter=filter, order=order_by)

    @strawberry.field(description="How many of the caller's jobs (matching `filter`) are in each state.")
    async def job_stats(self, info: Info[Context, None], filter: JobFilter | None = None) -> JobStats:
        query = (filter or JobFilter()).to_query(info.context.viewer.scope)
        counts = await info.context.services.job_reads.stats(query)
        return JobStats(
            total=sum(counts.values()), by_state=[JobStateCount(state=JobState(state), count=count) for state, count in counts.items()]
        )
