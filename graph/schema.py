"""The schema: roots, types, and the extensions every operation runs through."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
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


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=merge_types("Query", (Query, BillingQuery)),
        mutation=merge_types("Mutation", (Mutation, BillingMutation)),
        subscription=merge_types("Subscription", (Subscription, BillingSubscription)),
        types=[Job, Dataset, Model, Account, ComputeCenter, ComputeUnit, Bill, UsageRecord],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            ShapeErrors,
        ],
    )


schema = build_schema()
