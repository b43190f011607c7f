"""The webhook loaders of a request."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from graph.core.batching import grouped, nodes
from graph.core.services import Services
from graph.webhooks.types import WebhookEndpoint
from resolvers.access.viewer import Viewer
from resolvers.webhooks.records import WebhookAttemptRow


class WebhookLoaders:
    def __init__(self, services: Services, viewer: Viewer) -> None:
        webhooks, scope = services.webhooks, viewer.scope
        self.endpoint: DataLoader[int, WebhookEndpoint | None] = nodes(
            lambda ids: webhooks.endpoints_by_ids(ids, scope), WebhookEndpoint.from_row
        )
        #: attempts by delivery (their endpoint was checked against the viewer already)
        self.attempts: DataLoader[int, list[WebhookAttemptRow]] = grouped(webhooks.attempts, [])
