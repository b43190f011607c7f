"""The outbox: an event becomes one delivery row per listening endpoint, in the caller's transaction.

Written with the event itself (a job's end, a budget alert), a delivery is committed exactly
when the event is; the deliverer (resolvers.webhooks.delivery) sends it from the table, so
neither a crash before sending nor a restart loses it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.webhooks.events import EventKind
from store import webhooks as webhook_store
from store.types import utcnow

#: the bus channel that wakes the deliverer at once (without it, it looks every poll interval)
CHANNEL = "webhooks:outbox"
Notice = tuple[str, dict[str, Any]]


def new_delivery_id() -> str:
    return "whd_" + uuid.uuid4().hex


async def enqueue_event(session: AsyncSession, account_id: int, kind: EventKind, data: Mapping[str, Any]) -> list[Notice]:
    """Queue ``data`` as a ``kind`` event for every active endpoint of the account that receives
    that kind. Publish the returned notices on the bus after the transaction commits."""
    endpoints = await webhook_store.listening_endpoints(session, account_id, kind.value)
    if not endpoints:
        return []
    event_id = "evt_" + uuid.uuid4().hex
    now = utcnow()
    for endpoint in endpoints:
        delivery_id = new_delivery_id()
        document = {"id": delivery_id, "eventId": event_id, "type": kind.value, "createdAt": now.isoformat(), "data": dict(data)}
        body = json.dumps(document, separators=(",", ":"), sort_keys=True, default=str)
        webhook_store.add_delivery(session, endpoint, delivery_id=delivery_id, event_id=event_id, event_kind=kind.value, body=body, due=now)
    return [(CHANNEL, {"count": len(endpoints)})]
