"""The webhook records services hand to the face."""

from store.webhook_tables import WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow

__all__ = ["WebhookAttemptRow", "WebhookDeliveryRow", "WebhookEndpointRow"]
