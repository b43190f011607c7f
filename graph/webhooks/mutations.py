"""The webhook mutations: register an endpoint (its secret is in this answer only) and delete one."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.payloads import UserError, user_errors
from graph.webhooks.types import WebhookEndpoint, WebhookEventKind
from resolvers.webhooks.events import EventKind


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https://... outside the operator's network (loopback, private and link-local are refused).")
    event_kinds: list[WebhookEventKind]
    description: str | None = None
    account_id: strawberry.ID | None = strawberry.field(default=None, description="Admins: another account's. Absent: the caller's.")
    client_mutation_id: str | None = None


@strawberry.type
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None
    secret: str | None = strawberry.field(
        description="The signing secret (HMAC-SHA256 over `<Aicn-Timestamp>.<body>`). Shown this once: store it now."
    )
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class DeleteWebhookEndpointInput:
    endpoint_id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.type
class DeleteWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Register an endpoint for events of the caller's account; the payload's `secret` is shown once.")
    async def create_webhook_endpoint(self, info: Info[Context, None], input: CreateWebhookEndpointInput) -> CreateWebhookEndpointPayload:
        kinds = [EventKind(kind.value) for kind in input.event_kinds]
        outcome = await info.context.services.webhooks.create_endpoint(
            info.context.viewer, input.url, kinds, input.description, input.account_id
        )
        return CreateWebhookEndpointPayload(
            endpoint=WebhookEndpoint.from_row(outcome.endpoint) if outcome.endpoint else None,
            secret=outcome.secret,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(description="Stop sending to an endpoint; deliveries it has not received are cancelled.")
    async def delete_webhook_endpoint(self, info: Info[Context, None], input: DeleteWebhookEndpointInput) -> DeleteWebhookEndpointPayload:
        outcome = await info.context.services.webhooks.delete_endpoint(info.context.viewer, input.endpoint_id)
        return DeleteWebhookEndpointPayload(
            endpoint=WebhookEndpoint.from_row(outcome.endpoint) if outcome.endpoint else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )
