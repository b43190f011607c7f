"""The schema: roots, types, and the extensions every operation runs through."""

from __future__ import annotations

from collections.abc import Iterator

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types

from graph.accounts import Account
from graph.billing import Bill, UsageRecord
from graph.billing_roots import BillingMutation, BillingQuery, BillingSubscription
from graph.centers import ComputeCenter, ComputeUnit
from graph.data import Dataset, Model
from graph.errors import ShapeErrors
from graph.jobs import Job
from graph.mutations import Mutation
from graph.query import Query
from graph.scalars import SCALAR_MAP
from graph.subscription import Subscription

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 5_000

# Built once: the validation cache is keyed by the rule classes, and the limiters make new
# classes per instance, which would turn every validation into a cache miss.
LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


class CachedParse(ParserCache):
    """strawberry's parser cache, except that a syntax error is left to the normal parse.

    Raised from the cache, the error would skip the error shaping of ``ShapeErrors``.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        except GraphQLError:
            context.graphql_document = None
        yield


class QueryShapeLimits(AddValidationRules):
    """Depth and alias limits, checked (and cached) with the rest of validation."""

    def __init__(self) -> None:
        super().__init__(LIMIT_RULES)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=merge_types("Query", (Query, BillingQuery)),
        mutation=merge_types("Mutation", (Mutation, BillingMutation)),
        subscription=merge_types("Subscription", (Subscription, BillingSubscription)),
        types=[Job, Dataset, Model, Account, ComputeCenter, ComputeUnit, Bill, UsageRecord],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            ShapeErrors,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: CachedParse(maxsize=1024),
            QueryShapeLimits,
            lambda: ValidationCache(maxsize=1024),
        ],
    )


schema = build_schema()
