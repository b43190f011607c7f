"""The schema: roots, types, and the extensions every operation runs through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from graph.access.accounts import Account
from graph.access.audit import AuditQuery, audit_mutations
from graph.access.mutations import AccessMutation
from graph.access.query import AccountQuery, ViewerQuery
from graph.billing.mutations import BillingMutation
from graph.billing.query import BillingQuery
from graph.billing.settlement import SettlementQuery
from graph.billing.subscription import BillingSubscription
from graph.billing.types import Bill, UsageRecord
from graph.centers.query import CatalogQuery, CenterQuery, GatewayQuery
from graph.centers.subscription import CenterSubscription
from graph.centers.types import ComputeCenter, ComputeUnit
from graph.core.errors import ShapeErrors
from graph.core.inputs import build_inputs_from_plans
from graph.core.scalars import SCALAR_MAP
from graph.core.sharing import SharingExecutor
from graph.data.mutations import DataMutation
from graph.data.query import DataQuery
from graph.data.types import Dataset, Model
from graph.gate.extension import Gate
from graph.jobs.mutations import JobMutation
from graph.jobs.offers import OfferQuery
from graph.jobs.query import JobQuery
from graph.jobs.subscription import JobSubscription
from graph.jobs.types import Job
from graph.nodes import NodeQuery
from graph.observe import OperationMetrics, operation_tracing
from graph.services.mutations import ServiceMutation
from graph.services.query import ServiceQuery
from graph.services.subscription import ServiceSubscription
from graph.services.types import InferenceService
from graph.webhooks.mutations import WebhookMutation
from graph.webhooks.query import WebhookQuery
from graph.webhooks.types import WebhookEndpoint

# The roots, merged from each domain's part in the order clients see them.
Query = merge_types(
    "Query",
    (
        NodeQuery,
        ViewerQuery,
        GatewayQuery,
        CenterQuery,
        OfferQuery,
        CatalogQuery,
        JobQuery,
        ServiceQuery,
        DataQuery,
        BillingQuery,
        SettlementQuery,
        AccountQuery,
        AuditQuery,
        WebhookQuery,
    ),
)
Mutation = merge_types("Mutation", (JobMutation, ServiceMutation, DataMutation, BillingMutation, AccessMutation, WebhookMutation))
Subscription = merge_types("Subscription", (JobSubscription, ServiceSubscription, CenterSubscription, BillingSubscription))


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log nothing here: expected errors are the client's business, and ShapeErrors logs unexpected ones with the request id."""


class CachedParse(ParserCache):
    """strawberry's parser cache, except that a syntax error is left to the normal parse,
    and a text the gate has already refused is not parsed at all.

    Raised from the cache, the error would skip the error shaping of ``ShapeErrors``.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None:
            try:
                context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
            except GraphQLError:
                context.graphql_document = None
        yield


class CachedValidation(ValidationCache):
    """strawberry's validation cache, which keeps a refusal the gate has already made."""

    def on_validate(self) -> Iterator[None]:
        if not self.execution_context.pre_execution_errors:
            yield from super().on_validate()
        else:
            yield


#: the object types reached only through `node` (and `_entities` in the federated schema)
NODE_TYPES: list[type] = [Job, Dataset, Model, Account, ComputeCenter, ComputeUnit, Bill, UsageRecord, WebhookEndpoint, InferenceService]


def extensions() -> list[Any]:
    """The gate (graph/gate/extension.py: authentication, text and shape limits, cost, rate, scopes)
    comes before the caches, so that a refused text is neither parsed nor validated. Metrics and
    the operation's span (graph/observe.py) wrap everything, refusals included."""
    return [
        OperationMetrics,
        operation_tracing,
        ShapeErrors,
        Gate,
        lambda: CachedParse(maxsize=1024),
        lambda: CachedValidation(maxsize=1024),
    ]


def schema_arguments() -> dict[str, Any]:
    """What the plain and the federated schema share: all but the query root."""
    audit_mutations(Mutation)
    return {
        "mutation": Mutation,
        "subscription": Subscription,
        "types": NODE_TYPES,
        "config": StrawberryConfig(scalar_map=SCALAR_MAP),
        "extensions": extensions(),
        "execution_context_class": SharingExecutor,
    }


def build_schema() -> strawberry.Schema:
    built = Schema(query=Query, **schema_arguments())
    build_inputs_from_plans(built)
    return built


schema = build_schema()
