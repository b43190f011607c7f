"""The schema: roots, types, and the extensions every operation runs through."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from graph.accounts import Account
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


class QueryShapeLimits(AddValidationRules):
    """Depth and alias limits, checked (and cached) with the rest of validation."""

    def __init__(self) -> None:
        super().__init__(LIMIT_RULES)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Job, Dataset, Model, Account, ComputeCenter, ComputeUnit],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=1024),
            QueryShapeLimits,
            lambda: ValidationCache(maxsize=1024),
            ShapeErrors,
        ],
    )


schema = build_schema()
