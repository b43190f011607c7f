"""Inference services, their replicas (jobs with a ``service_id``) and their event log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.billing_tables import UsageRecordRow
from store.paging import Page, count_rows, keyset_page
from store.service_tables import ServiceEventRow, ServiceRow
from store.states import TERMINAL_STATES
from store.tables import JobRow
from store.types import utcnow

#: a service in one of these states has (or may get) replicas to watch
ACTIVE_STATES = ("DEPLOYING", "READY", "DEGRADED", "SCALING", "STOPPING")


@dataclass(frozen=True)
class ServiceQuery:
    owner_id: int | None = None
    states: tuple[str, ...] = ()
    model_ids: tuple[int, ...] = ()
    center_ids: tuple[int, ...] = ()


def _select(query: ServiceQuery) -> Select[Any]:
    statement = select(ServiceRow)
    if query.owner_id is not None:
        statement = statement.where(ServiceRow.owner_id == query.owner_id)
    if query.states:
        statement = statement.where(ServiceRow.state.in_(query.states))
    if query.model_ids:
        statement = statement.where(ServiceRow.model_id.in_(query.model_ids))
    if query.center_ids:
        statement = statement.where(ServiceRow.center_id.in_(query.center_ids))
    return statement


async def services_page(session: AsyncSession, query: ServiceQuery, *, first: int, after: int | None) -> Page[ServiceRow]:
    return await keyset_page(session, _select(query), ServiceRow.id, first=first, after=after)


async def count_services(session: AsyncSession, query: ServiceQuery) -> int:
    return await count_rows(session, _select(query))


async def services_by_ids(session: AsyncSession, ids: Iterable[int], owner_id: int | None = None) -> dict[int, ServiceRow]:
    statement = select(ServiceRow).where(ServiceRow.id.in_(list(ids)))
    if owner_id is not None:
        statement = statement.where(ServiceRow.owner_id == owner_id)
    return {row.id: row for row in await session.scalars(statement)}


async def find_by_idempotency_key(session: AsyncSession, owner_id: int, key: str) -> ServiceRow | None:
    return await session.scalar(select(ServiceRow).where(ServiceRow.owner_id == owner_id, ServiceRow.idempotency_key == key))


async def active_services(session: AsyncSession) -> list[ServiceRow]:
    return list(await session.scalars(select(ServiceRow).where(ServiceRow.state.in_(ACTIVE_STATES)).order_by(ServiceRow.id)))


async def lock_service(session: AsyncSession, service_id: int) -> ServiceRow | None:
    statement = select(ServiceRow).where(ServiceRow.id == service_id).with_for_update().execution_options(populate_existing=True)
    return await session.scalar(statement)


async def live_replicas(session: AsyncSession, service_ids: Sequence[int]) -> dict[int, list[JobRow]]:
    """Each service's replica jobs that have not ended, oldest first."""
    grouped: dict[int, list[JobRow]] = {service_id: [] for service_id in service_ids}
    if not service_ids:
        return grouped
    rows = await session.scalars(
        select(JobRow).where(JobRow.service_id.in_(service_ids), JobRow.state.not_in(TERMINAL_STATES)).order_by(JobRow.id)
    )
    for row in rows:
        if row.service_id is not None:
            grouped[row.service_id].append(row)
    return grouped


async def ended_replicas_since(session: AsyncSession, service_id: int, after_job_id: int) -> list[JobRow]:
    rows = await session.scalars(
        select(JobRow)
        .where(JobRow.service_id == service_id, JobRow.state.in_(TERMINAL_STATES), JobRow.id > after_job_id)
        .order_by(JobRow.id)
    )
    return list(rows)


async def replica_ids(session: AsyncSession, service_id: int) -> list[int]:
    return list(await session.scalars(select(JobRow.id).where(JobRow.service_id == service_id).order_by(JobRow.id)))


async def services_by_models(session: AsyncSession, model_ids: Sequence[int], owner_id: int | None) -> dict[int, list[ServiceRow]]:
    statement = select(ServiceRow).where(ServiceRow.model_id.in_(model_ids)).order_by(ServiceRow.id.desc())
    if owner_id is not None:
        statement = statement.where(ServiceRow.owner_id == owner_id)
    grouped: dict[int, list[ServiceRow]] = {model_id: [] for model_id in model_ids}
    for row in await session.scalars(statement):
        grouped[row.model_id].append(row)
    return grouped


def append_event(
    session: AsyncSession,
    service: ServiceRow,
    kind: str,
    *,
    state: str | None = None,
    replicas_ready: int | None = None,
    message: str | None = None,
    at: datetime | None = None,
) -> ServiceEventRow:
    """The service's next event; the caller holds the service's row lock and commits."""
    service.last_seq += 1
    service.updated_at = utcnow()
    event = ServiceEventRow(
        service_id=service.id,
        seq=service.last_seq,
        at=at or utcnow(),
        kind=kind,
        state=state,
        replicas_ready=replicas_ready,
        message=message,
    )
    session.add(event)
    return event


async def events_after(session: AsyncSession, service_id: int, after: int, limit: int) -> list[ServiceEventRow]:
    rows = await session.scalars(
        select(ServiceEventRow)
        .where(ServiceEventRow.service_id == service_id, ServiceEventRow.seq > after)
        .order_by(ServiceEventRow.seq)
        .limit(limit)
    )
    return list(rows)


async def events_page(session: AsyncSession, service_id: int, *, first: int, after: int | None) -> Page[ServiceEventRow]:
    statement = select(ServiceEventRow).where(ServiceEventRow.service_id == service_id)
    return await keyset_page(session, statement, ServiceEventRow.seq, first=first, after=after, descending=False)


async def add_requests(session: AsyncSession, counts: dict[int, int]) -> None:
    """Add each service's newly counted requests to its total."""
    for service_id, count in counts.items():
        if count:
            await session.execute(
                update(ServiceRow).where(ServiceRow.id == service_id).values(requests_total=ServiceRow.requests_total + count)
            )


async def add_tokens(session: AsyncSession, tokens: dict[int, tuple[int, int]]) -> None:
    """Add each service's newly reported (prompt, completion) tokens to its totals; a priced
    service also keeps them as not yet billed."""
    for service_id, (prompt, completion) in tokens.items():
        priced = case((ServiceRow.price_per_million_tokens > Decimal(0), prompt + completion), else_=0)
        await session.execute(
            update(ServiceRow)
            .where(ServiceRow.id == service_id)
            .values(
                prompt_tokens_total=ServiceRow.prompt_tokens_total + prompt,
                completion_tokens_total=ServiceRow.completion_tokens_total + completion,
                tokens_unbilled=ServiceRow.tokens_unbilled + priced,
            )
        )


async def tokens_to_bill(session: AsyncSession, ended: Iterable[str], cutoff: datetime) -> list[int]:
    """Services with tokens not yet billed that ended, or last went on a bill before ``cutoff``."""
    rows = await session.scalars(
        select(ServiceRow.id)
        .where(ServiceRow.tokens_unbilled > 0)
        .where(or_(ServiceRow.state.in_(list(ended)), func.coalesce(ServiceRow.tokens_billed_at, ServiceRow.created_at) <= cutoff))
        .order_by(ServiceRow.id)
    )
    return list(rows)


async def usage_page(session: AsyncSession, service_id: int, *, first: int, after: int | None) -> Page[UsageRecordRow]:
    """The usage records of the service's replicas, newest first."""
    statement = select(UsageRecordRow).where(UsageRecordRow.service_id == service_id)
    return await keyset_page(session, statement, UsageRecordRow.id, first=first, after=after)


async def count_usage(session: AsyncSession, service_id: int) -> int:
    return await count_rows(session, select(UsageRecordRow).where(UsageRecordRow.service_id == service_id))
