"""The gateway's Prometheus metrics: counters and histograms every layer adds to.

They live on one registry of this process (``REGISTRY``), served at ``/metrics`` together
with the values read at scrape time (jobs per state, queue length, breaker state: see
resolvers.monitoring). Labels take only bounded values: centers and event kinds come from
the configuration, and operation names (chosen by clients) are kept up to
``MAX_OPERATION_NAMES``, later ones counting as ``other``.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

MAX_OPERATION_NAMES = 200
OTHER = "other"
ANONYMOUS = "anonymous"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

operations = Counter(
    "aicn_graphql_operations",
    "GraphQL operations executed, by operation name, type and outcome (ok, error)",
    ["operation", "type", "outcome"],
    registry=REGISTRY,
)
operation_seconds = Histogram(
    "aicn_graphql_operation_seconds",
    "Time to execute a GraphQL operation (a subscription: until its first result is ready)",
    ["operation", "type"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
connector_calls = Counter("aicn_connector_calls", "Calls to a center's connector", ["center"], registry=REGISTRY)
connector_errors = Counter(
    "aicn_connector_errors",
    "Connector calls that failed, by code (CENTER_TIMEOUT, CENTER_UNAVAILABLE, REFUSED: the center answered no)",
    ["center", "code"],
    registry=REGISTRY,
)
connector_seconds = Histogram(
    "aicn_connector_call_seconds", "Duration of a connector call", ["center"], buckets=_LATENCY_BUCKETS, registry=REGISTRY
)
reconcile_job_failures = Counter(
    "aicn_reconcile_job_failures",
    "Jobs whose write in a reconciler round failed (the job is tried again next round; the center's other jobs go on)",
    ["center"],
    registry=REGISTRY,
)
subscriptions_open = Gauge("aicn_subscriptions_open", "GraphQL subscriptions (WebSocket operations) running now", registry=REGISTRY)
subscription_events = Counter(
    "aicn_subscription_events", "Results sent to WebSocket subscribers (rate() of it: events delivered per second)", registry=REGISTRY
)
subscription_executions = Counter(
    "aicn_subscription_executions",
    "Subscription events whose selection was executed (once per event and group of subscribers that share it)",
    registry=REGISTRY,
)
subscription_shared = Counter(
    "aicn_subscription_shared", "Subscription results taken from another subscriber's execution of the same event", registry=REGISTRY
)
subscription_group_frames = Counter(
    "aicn_subscription_group_frames",
    "Subscription results sent from a group's one stream (encoded once for the group, graph/core/fanout.py)",
    registry=REGISTRY,
)
slow_subscribers_closed = Counter(
    "aicn_slow_subscribers_closed", "WebSocket connections closed because the client fell too far behind", registry=REGISTRY
)
webhook_attempts = Counter(
    "aicn_webhook_attempts",
    "Webhook delivery attempts, by event kind and outcome (delivered, failed, refused: the destination check said no)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
webhook_deliveries = Counter(
    "aicn_webhook_deliveries",
    "Webhook deliveries that reached a final state, by event kind and state (DELIVERED, FAILED)",
    ["kind", "state"],
    registry=REGISTRY,
)
webhook_attempt_seconds = Histogram(
    "aicn_webhook_attempt_seconds", "Duration of a webhook delivery attempt", buckets=_LATENCY_BUCKETS, registry=REGISTRY
)

_names: set[str] = set()
_names_lock = threading.Lock()


def operation_label(name: str | None) -> str:
    """The label of an operation name: itself while fewer than MAX_OPERATION_NAMES are known."""
    if not name:
        return ANONYMOUS
    with _names_lock:
        if name in _names:
            return name
        if len(_names) < MAX_OPERATION_NAMES:
            _names.add(name)
            return name
    return OTHER
