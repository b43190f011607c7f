"""Lists of jobs: the caller's, a center's, an account's, or a dataset's users, newest first."""

from __future__ import annotations

from decimal import Decimal

from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection, connection_from_page
from graph.jobs.cursors import decode_job_cursor, encode_job_cursor
from graph.jobs.inputs import JobFilter, JobOrder
from graph.jobs.types import Job
from resolvers.common.ids import page_size
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
    order: JobOrder = JobOrder.NEWEST,
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
        submitted_after=base.submitted_after,
        submitted_before=base.submitted_before,
    )
    key = order.key()
    listing = await info.context.services.job_reads.sorted_jobs(query, key, first=page_size(first), after=decode_job_cursor(after, key))
    loader = info.context.loaders.job

    def node(entry: tuple[JobRow, Decimal]) -> Job:
        job = Job.from_row(entry[0])
        loader.prime(entry[0].id, job)  # linked fields of these jobs need no lookup
        return job

    return connection_from_page(
        listing.page, node, lambda entry: entry[0].id, listing.count, cursor=lambda entry: encode_job_cursor(key, entry[0].id, entry[1])
    )
