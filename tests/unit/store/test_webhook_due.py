"""``next_due_at`` says when the webhook deliverer must look again: the earliest next attempt of
the pending deliveries nobody holds, or the end of a lease a deliverer holds (it may have died)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from store import webhooks as webhook_store
from store.db import Database
from store.tables import AccountRow
from store.types import utcnow
from store.webhook_tables import WebhookDeliveryRow, WebhookEndpointRow

pytestmark = pytest.mark.both_databases


async def test_the_next_due_time_is_the_earliest_free_attempt_or_lease_end(db: Database) -> None:
    now = utcnow()
    async with db.read() as session:
        assert await webhook_store.next_due_at(session, now) is None  # nothing pending: nothing to wait for
    async with db.transaction() as session:
        account = AccountRow(name="hooked")
        session.add(account)
        await session.flush()
        endpoint = WebhookEndpointRow(account_id=account.id, url="https://receiver.example/hook", secret="s", event_kinds=["JOB_ENDED"])
        session.add(endpoint)
        await session.flush()
        for name, seconds in (("later", 30), ("soon", 5), ("delivered", 1)):
            webhook_store.add_delivery(
                session, endpoint, delivery_id=name, event_id="evt", event_kind="JOB_ENDED", body="{}", due=now + timedelta(seconds=seconds)
            )
    async with db.transaction() as session:
        await session.execute(
            update(WebhookDeliveryRow).where(WebhookDeliveryRow.delivery_id == "delivered").values(state=webhook_store.DELIVERED)
        )
    async with db.read() as session:
        due = await webhook_store.next_due_at(session, now)
    assert due is not None and due.tzinfo is not None  # an aware time, on either database
    assert due == now + timedelta(seconds=5)  # the pending one due first; a delivered one is not waited for

    # a deliverer holds the sooner one until 2 s from now (then it may have died): its lease's end is what is due
    async with db.transaction() as session:
        await session.execute(
            update(WebhookDeliveryRow).where(WebhookDeliveryRow.delivery_id == "soon").values(leased_until=now + timedelta(seconds=2))
        )
    async with db.read() as session:
        assert await webhook_store.next_due_at(session, now) == now + timedelta(seconds=2)
