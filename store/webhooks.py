"""Webhook endpoints, the delivery outbox and attempts: reads and writes in the caller's session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.paging import Page, count_rows, keyset_page
from store.webhook_tables import WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow

PENDING = "PENDING"
DELIVERED = "DELIVERED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"


def add_endpoint(
    session: AsyncSession, account_id: int, url: str, secret: str, event_kinds: Sequence[str], description: str | None
) -> WebhookEndpointRow:
    row = WebhookEndpointRow(
        account_id=account_id, url=url, secret=secret, event_kinds=list(event_kinds), description=description, active=True
    )
    session.add(row)
    return row


def _endpoints(owner_id: int | None) -> Select[Any]:
    statement = select(WebhookEndpointRow).where(WebhookEndpointRow.active.is_(True))
    if owner_id is not None:
        statement = statement.where(WebhookEndpointRow.account_id == owner_id)
    return statement


async def endpoints_page(session: AsyncSession, owner_id: int | None, *, first: int, after: int | None) -> Page[WebhookEndpointRow]:
    return await keyset_page(session, _endpoints(owner_id), WebhookEndpointRow.id, first=first, after=after)


async def count_endpoints(session: AsyncSession, owner_id: int | None) -> int:
    return await count_rows(session, _endpoints(owner_id))


async def endpoints_by_ids(session: AsyncSession, ids: Sequence[int], owner_id: int | None) -> dict[int, WebhookEndpointRow]:
    statement = _endpoints(owner_id).where(WebhookEndpointRow.id.in_(list(ids)))
    return {row.id: row for row in await session.scalars(statement)}


async def listening_endpoints(session: AsyncSession, account_id: int, event_kind: str) -> list[WebhookEndpointRow]:
    """The account's active endpoints that receive ``event_kind`` (kinds are filtered here: a
    JSON array is queried differently on each database, and an account has few endpoints)."""
    rows = await session.scalars(_endpoints(account_id).order_by(WebhookEndpointRow.id))
    return [row for row in rows if event_kind in row.event_kinds]


def add_delivery(
    session: AsyncSession, endpoint: WebhookEndpointRow, *, delivery_id: str, event_id: str, event_kind: str, body: str, due: datetime
) -> WebhookDeliveryRow:
    row = WebhookDeliveryRow(
        delivery_id=delivery_id,
        event_id=event_id,
        endpoint_id=endpoint.id,
        account_id=endpoint.account_id,
        event_kind=event_kind,
        body=body,
        state=PENDING,
        attempts=0,
        next_attempt_at=due,
        created_at=due,
    )
    session.add(row)
    return row


async def deactivate_endpoint(session: AsyncSession, endpoint: WebhookEndpointRow) -> None:
    """The endpoint stops receiving; what it had not received yet is CANCELLED (its history stays)."""
    endpoint.active = False
    await session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.endpoint_id == endpoint.id, WebhookDeliveryRow.state == PENDING)
        .values(state=CANCELLED, next_attempt_at=None, leased_until=None)
    )


def _deliveries(endpoint_id: int, states: Sequence[str]) -> Select[Any]:
    statement = select(WebhookDeliveryRow).where(WebhookDeliveryRow.endpoint_id == endpoint_id)
    if states:
        statement = statement.where(WebhookDeliveryRow.state.in_(list(states)))
    return statement


async def deliveries_page(
    session: AsyncSession, endpoint_id: int, states: Sequence[str], *, first: int, after: int | None
) -> Page[WebhookDeliveryRow]:
    return await keyset_page(session, _deliveries(endpoint_id, states), WebhookDeliveryRow.id, first=first, after=after)


async def count_deliveries(session: AsyncSession, endpoint_id: int, states: Sequence[str]) -> int:
    return await count_rows(session, _deliveries(endpoint_id, states))


async def attempts_by_deliveries(session: AsyncSession, delivery_ids: Sequence[int]) -> dict[int, list[WebhookAttemptRow]]:
    grouped: dict[int, list[WebhookAttemptRow]] = {delivery_id: [] for delivery_id in delivery_ids}
    rows = await session.scalars(
        select(WebhookAttemptRow).where(WebhookAttemptRow.delivery_id.in_(list(delivery_ids))).order_by(WebhookAttemptRow.id)
    )
    for row in rows:
        grouped[row.delivery_id].append(row)
    return grouped


async def due_delivery_ids(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Deliveries whose next attempt is due and that no live deliverer holds, oldest first."""
    rows = await session.scalars(
        select(WebhookDeliveryRow.id)
        .where(
            WebhookDeliveryRow.state == PENDING,
            WebhookDeliveryRow.next_attempt_at <= now,
            or_(WebhookDeliveryRow.leased_until.is_(None), WebhookDeliveryRow.leased_until < now),
        )
        .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
        .limit(limit)
    )
    return list(rows)


async def next_due_at(session: AsyncSession, now: datetime) -> datetime | None:
    """When a pending delivery next falls due: the earliest next attempt of those no deliverer
    holds, or the earliest end of a lease (a deliverer that died holding it); None when none is pending."""
    held = and_(WebhookDeliveryRow.leased_until.is_not(None), WebhookDeliveryRow.leased_until >= now)
    row = (
        await session.execute(
            select(
                func.min(case((~held, WebhookDeliveryRow.next_attempt_at))),
                func.min(case((held, WebhookDeliveryRow.leased_until))),
            ).where(WebhookDeliveryRow.state == PENDING)
        )
    ).one()
    times = [time for time in row if time is not None]
    return min(times) if times else None


async def lease(session: AsyncSession, delivery_id: int, now: datetime, until: datetime) -> bool:
    """Take the delivery until ``until``; False when another deliverer took it first (one UPDATE,
    so of two gateways racing, exactly one sees its row counted)."""
    result = await session.execute(
        update(WebhookDeliveryRow)
        .where(
            WebhookDeliveryRow.id == delivery_id,
            WebhookDeliveryRow.state == PENDING,
            or_(WebhookDeliveryRow.leased_until.is_(None), WebhookDeliveryRow.leased_until < now),
        )
        .values(leased_until=until)
    )
    return bool(getattr(result, "rowcount", 0))


async def delivery_with_endpoint(session: AsyncSession, delivery_id: int) -> tuple[WebhookDeliveryRow, WebhookEndpointRow] | None:
    row = (
        await session.execute(
            select(WebhookDeliveryRow, WebhookEndpointRow)
            .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
            .where(WebhookDeliveryRow.id == delivery_id)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def add_attempt(
    session: AsyncSession, delivery: WebhookDeliveryRow, *, at: datetime, status_code: int | None, error: str | None, duration_ms: float
) -> WebhookAttemptRow:
    delivery.attempts += 1
    row = WebhookAttemptRow(
        delivery_id=delivery.id, number=delivery.attempts, at=at, status_code=status_code, error=error, duration_ms=duration_ms
    )
    session.add(row)
    return row


async def lock_delivery(session: AsyncSession, delivery_id: int) -> WebhookDeliveryRow | None:
    return await session.scalar(
        select(WebhookDeliveryRow).where(WebhookDeliveryRow.id == delivery_id).with_for_update().execution_options(populate_existing=True)
    )


async def pending_count(session: AsyncSession) -> int:
    return int(
        (
            await session.execute(select(func.count()).select_from(WebhookDeliveryRow).where(WebhookDeliveryRow.state == PENDING))
        ).scalar_one()
    )
