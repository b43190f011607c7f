"""The kinds of event an endpoint can receive, and how another domain hands one over.

To send an event, a domain calls ``enqueue_event`` (resolvers.webhooks.outbox) inside the
transaction that records what happened, and publishes the notices it returns once that
transaction has committed; or, with no transaction of its own, ``WebhookService.publish``.
"""

from __future__ import annotations

import enum


class EventKind(enum.StrEnum):
    #: a job reached SUCCEEDED, FAILED or CANCELLED (data: the job's id, name, state, exit code, reason, times)
    JOB_ENDED = "JOB_ENDED"
    #: a month's spending crossed a budget threshold (data: period, threshold, budget, spent, currency)
    BUDGET_ALERT = "BUDGET_ALERT"
    #: an inference service changed state (data: the service's id, name, state, message)
    SERVICE_STATE = "SERVICE_STATE"
