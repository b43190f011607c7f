"""Webhook endpoints: register (the secret is shown once), remove, list; and publishing an event.

An account's members (``submit``) register endpoints for their own account; an admin may
name another account. The URL is checked at registration (resolvers.webhooks.destinations)
and again before every attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resolvers.access.viewer import Viewer
from resolvers.common.errors import UserErrorData
from resolvers.common.ids import int_key
from resolvers.common.reading import Listing, Reader
from resolvers.webhooks.destinations import DestinationPolicy, DestinationRefused, resolve
from resolvers.webhooks.events import EventKind
from resolvers.webhooks.outbox import enqueue_event
from resolvers.webhooks.signing import new_secret
from store import webhooks as webhook_store
from store.bus import InMemoryBus
from store.db import Database
from store.tables import AccountRow
from store.webhook_tables import WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow

MAX_ENDPOINTS_PER_ACCOUNT = 20
MAX_DESCRIPTION = 200


@dataclass
class EndpointOutcome:
    endpoint: WebhookEndpointRow | None = None
    #: the signing secret: in the answer of the creation only
    secret: str | None = None
    errors: list[UserErrorData] = field(default_factory=list)


class WebhookService(Reader):
    def __init__(self, db: Database, bus: InMemoryBus, destinations: DestinationPolicy) -> None:
        super().__init__(db)
        self.bus = bus
        self.destinations = destinations

    # ------------------------------------------------------------------ publishing

    async def publish(self, account_id: int, kind: EventKind, data: Mapping[str, Any]) -> None:
        """Send an event to the account's endpoints from outside any transaction (in one of
        your own, call ``resolvers.webhooks.outbox.enqueue_event`` there instead)."""
        async with self.db.transaction() as session:
            notices = await enqueue_event(session, account_id, kind, data)
        for channel, message in notices:
            await self.bus.publish(channel, message)

    # ------------------------------------------------------------------ endpoints

    async def create_endpoint(
        self, viewer: Viewer, url: str, kinds: Sequence[EventKind], description: str | None, account_id: str | None = None
    ) -> EndpointOutcome:
        target = viewer.account_id
        if account_id is not None:
            key = int_key(account_id, "Account")
            if key is None or (key != viewer.account_id and not viewer.is_admin):
                return EndpointOutcome(errors=[UserErrorData("no such account", "ACCOUNT_NOT_FOUND", ("accountId",))])
            target = key
        errors: list[UserErrorData] = []
        if not kinds:
            errors.append(UserErrorData("name at least one event kind", "INVALID_EVENT_KINDS", ("eventKinds",)))
        if description is not None and len(description) > MAX_DESCRIPTION:
            errors.append(
                UserErrorData(f"the description is longer than {MAX_DESCRIPTION} characters", "INVALID_DESCRIPTION", ("description",))
            )
        try:
            await resolve(url, self.destinations)
        except DestinationRefused as refusal:
            errors.append(UserErrorData(refusal.message, refusal.code, ("url",)))
        if errors:
            return EndpointOutcome(errors=errors)
        secret = new_secret()
        async with self.db.transaction() as session:
            if await session.get(AccountRow, target) is None:
                return EndpointOutcome(errors=[UserErrorData("no such account", "ACCOUNT_NOT_FOUND", ("accountId",))])
            if await webhook_store.count_endpoints(session, target) >= MAX_ENDPOINTS_PER_ACCOUNT:
                message = f"an account has at most {MAX_ENDPOINTS_PER_ACCOUNT} endpoints: delete one first"
                return EndpointOutcome(errors=[UserErrorData(message, "TOO_MANY_ENDPOINTS", ("url",))])
            kind_names = [kind.value for kind in dict.fromkeys(kinds)]
            endpoint = webhook_store.add_endpoint(session, target, url.strip(), secret, kind_names, description)
            await session.flush()
        return EndpointOutcome(endpoint=endpoint, secret=secret)

    async def delete_endpoint(self, viewer: Viewer, endpoint_id: str) -> EndpointOutcome:
        """Stop sending to an endpoint; its undelivered deliveries are CANCELLED."""
        missing = EndpointOutcome(errors=[UserErrorData("no such webhook endpoint", "WEBHOOK_NOT_FOUND", ("endpointId",))])
        key = int_key(endpoint_id, "WebhookEndpoint")
        if key is None:
            return missing
        async with self.db.transaction() as session:
            endpoint = (await webhook_store.endpoints_by_ids(session, [key], viewer.scope)).get(key)
            if endpoint is None:
                return missing
            await webhook_store.deactivate_endpoint(session, endpoint)
        return EndpointOutcome(endpoint=endpoint)

    # ------------------------------------------------------------------ reads

    async def endpoints(self, scope: int | None, *, first: int, after: int | None) -> Listing[WebhookEndpointRow]:
        return await self.listing(
            lambda session: webhook_store.endpoints_page(session, scope, first=first, after=after),
            lambda session: webhook_store.count_endpoints(session, scope),
        )

    async def endpoints_by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, WebhookEndpointRow]:
        return await self.read(lambda session: webhook_store.endpoints_by_ids(session, ids, scope))

    async def deliveries(self, endpoint_id: int, states: Sequence[str], *, first: int, after: int | None) -> Listing[WebhookDeliveryRow]:
        """An endpoint's deliveries, newest first (the caller has checked it may see the endpoint)."""
        return await self.listing(
            lambda session: webhook_store.deliveries_page(session, endpoint_id, states, first=first, after=after),
            lambda session: webhook_store.count_deliveries(session, endpoint_id, states),
        )

    async def attempts(self, delivery_ids: Sequence[int]) -> dict[int, list[WebhookAttemptRow]]:
        return await self.read(lambda session: webhook_store.attempts_by_deliveries(session, delivery_ids))
