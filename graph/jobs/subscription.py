"""The jobs' live streams over graphql-transport-ws on /graphql: one job's events, and many jobs' changes."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.fanout import follow
from graph.core.fanout_keyed import follow_keyed
from graph.jobs.inputs import JobFilter
from graph.jobs.types import MAX_TAIL_LINES, Job, JobEvent, LogLines
from resolvers.common.errors import BadRequest
from resolvers.common.ids import int_key
from resolvers.jobs.streams import UpdatesStream


@strawberry.type
class JobSubscription:
    @strawberry.subscription(
        description="A job's events: first those after `after` (replayed from the log), then live; ends after the job's final state."
    )
    async def job_events(
        self, info: Info[Context, None], job_id: strawberry.ID, after: int | None = None
    ) -> AsyncGenerator[JobEvent, None]:
        key = int_key(job_id, "Job")
        job = await info.context.loaders.job.load(key) if key is not None else None
        if job is None:
            raise BadRequest("no such job", "NOT_FOUND")
        streams = info.context.services.job_streams
        async for event in follow(
            info.context, ("Job", job.row.id), lambda last: streams.job_events(job.row, last), JobEvent.from_record, after or 0
        ):
            yield event

    @strawberry.subscription(
        description=(
            "The job's last `tailLines` lines (0-10000), then every new line as the job writes it, until the job ends. "
            "Lines beyond the gateway's rate (limits.log_lines_per_second) are dropped and counted; a line the gateway "
            "adds (dropped or skipped output, a center that does not answer) reads `[aicn: ...]`."
        )
    )
    async def job_logs(
        self, info: Info[Context, None], job_id: strawberry.ID, tail_lines: int | None = 100
    ) -> AsyncGenerator[LogLines, None]:
        tail_lines = 100 if tail_lines is None else tail_lines
        if not 0 <= tail_lines <= MAX_TAIL_LINES:
            raise BadRequest(f"tailLines must be between 0 and {MAX_TAIL_LINES}")
        key = int_key(job_id, "Job")
        job = await info.context.loaders.job.load(key) if key is not None else None
        if job is None:
            raise BadRequest("no such job", "NOT_FOUND")
        async for batch in info.context.services.job_logs.follow(job.row, tail_lines):
            yield LogLines(lines=batch.lines, truncated=batch.truncated, dropped=batch.dropped)

    @strawberry.subscription(
        description=(
            "Every change to the caller's jobs that match the filter (a dashboard's view): states at once, progress at most once "
            "a second per job. `snapshot: true` first sends the matching jobs as they are (newest first, at most 500); `since` "
            "(the last `updatedAt` seen, after a reconnect) first sends the jobs changed at or after it."
        )
    )
    async def job_updates(
        self,
        info: Info[Context, None],
        filter: JobFilter | None = None,
        snapshot: bool = False,
        since: datetime | None = None,
    ) -> AsyncGenerator[Job, None]:
        chosen = filter or JobFilter()
        viewer = info.context.viewer
        streams = info.context.services.job_streams
        query = chosen.to_query(viewer.scope)

        def open_stream(positions: dict[int, int] | None, resume: datetime | None) -> UpdatesStream:
            if positions is None:  # the subscriber's own opening
                return streams.updates(viewer, chosen.accepts, query=query, snapshot=snapshot, since=since)
            return streams.updates(viewer, chosen.accepts, query=query, since=resume, positions=positions)

        # the query holds the viewer's scope and all the filter decides: which rows a stream reads
        async for job in follow_keyed(info.context, ("JobUpdates", query), open_stream, lambda update: Job.from_row(update.row)):
            yield job
