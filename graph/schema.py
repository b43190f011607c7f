"""The schema: roots, types, and the extensions every operation runs through."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.tools import merge_types

from graph.accounts import Account
from graph.audit import AuditQuery, audit_mutations
from graph.auth import AccessMutation, AccessQuery
from graph.centers import ComputeCenter, ComputeUnit
from graph.data import Dataset, Model
from graph.errors import ShapeErrors
from graph.gate import Gate
from graph.jobs import Job
from graph.mutations import Mutation as DomainMutation
from graph.query import Query as DomainQuery
from graph.scalars import SCALAR_MAP
from graph.subscription import Subscription

Query = merge_types("Query", (DomainQuery, AccessQuery, AuditQuery))
Mutation = merge_types("Mutation", (DomainMutation, AccessMutation))


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log nothing here: expected errors are the client's business, and ShapeErrors logs unexpected ones with the request id."""


def build_schema() -> strawberry.Schema:
    audit_mutations(Mutation)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Job, Dataset, Model, Account, ComputeCenter, ComputeUnit],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        # Gate: authentication, limits, cost, rate and scopes, before anything runs (graph/gate.py)
        extensions=[Gate, ShapeErrors],
    )


schema = build_schema()
