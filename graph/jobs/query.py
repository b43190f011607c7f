"""The jobs' root field: the caller's jobs."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection
from graph.jobs.inputs import JobFilter
from graph.jobs.lists import list_jobs
from graph.jobs.types import Job


@strawberry.type
class JobQuery:
    @strawberry.field(description="The caller's jobs, newest first.")
    async def jobs(
        self, info: Info[Context, None], filter: JobFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Job]:
        return await list_jobs(info, first=first, after=after, filter=filter)
