"""Lists of jobs: the caller's, a center's, an account's, or a dataset's users, newest first."""

from __future__ import annotations

from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection, connection_from_page
from graph.jobs.inputs import JobFilter
from graph.jobs.types import Job
from resolvers.common.ids import decode_cursor, page_size
from resolvers.jobs.records import JobQuery, JobRow


async def list_jobs(
    info: Info[Context, None],
    *,
    first: int | None,
    after: str | None,
    filter: JobFilter | None,
    center_key: int | None = None,
    owner_key: int | None = None,
    dataset_key: int | None = None,
) -> Connection[Job]:
    viewer = info.context.viewer
    base = (filter or JobFilter()).to_query(viewer.scope)
    owner = base.owner_id
    if owner_key is not None:
        owner = owner_key if owner in (None, owner_key) else -1  # another account's jobs: none
    query = JobQuery(
        owner_id=owner,
        states=base.states,
        center_ids=(center_key,) if center_key is not None else base.center_ids,
        kinds=base.kinds,
        name_contains=base.name_contains,
        input_dataset_id=dataset_key,
    )
    listing = await info.context.services.job_reads.jobs(query, first=page_size(first), after=decode_cursor(after))
    loader = info.context.loaders.job

    def node(row: JobRow) -> Job:
        job = Job.from_row(row)
        loader.prime(row.id, job)  # linked fields of these jobs need no lookup
        return job

    return connection_from_page(listing.page, node, lambda row: row.id, listing.count)
