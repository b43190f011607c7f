"""The gate every operation passes before it runs: who asks, how big it is, what it may do.

``Gate`` hooks strawberry's parse and validation steps. Before parsing, the raw text must
fit the length, token and alias limits (graphql-core parses at about 4 µs a token, so a
flood is refused unparsed). Then, in order: an anonymous caller may only introspect
(``UNAUTHENTICATED``); over a WebSocket the token is checked again for each operation;
the operation's measured shape must fit the limits (``QUERY_TOO_COMPLEX``); its cost is
taken from the caller's bucket (``THROTTLED``); every field it reads must be within the
token's scopes (``FORBIDDEN``, graph/core/permissions.py). Only then does graphql-core's own validation run
(expensive rules such as overlapping fields come after the cheap refusals), and then
execution. ``extensions.cost`` reports what the operation cost and what is left."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import OperationType, get_operation_ast, parse
from graphql.error import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.rules.max_introspection_depth_rule import MaxIntrospectionDepthRule
from strawberry.extensions import SchemaExtension

from graph.core.context import Context
from graph.core.permissions import PUBLIC_FIELDS, missing_scopes
from graph.gate.cost import prescan
from graph.gate.limits import check_introspection, check_shape, check_text, coded_error, cost_report, text_error, throttled_error
from graph.gate.memo import DocumentMemo
from resolvers.access.audit import ERROR, AuditRecord

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
SUBSCRIPTION_NEEDS_WEBSOCKET = "SUBSCRIPTION_NEEDS_WEBSOCKET"
SUBSCRIPTION_MESSAGE = (
    "subscriptions are served over a WebSocket (graphql-transport-ws) at /graphql, not over plain HTTP; "
    "a query reads the current state once"
)
LOGIN_HINT = (
    "send `Authorization: Bearer <token>` (in GraphiQL: the Headers tab, "
    '{"Authorization": "Bearer <token>"}); the gateway prints an admin token on its first start, '
    "and `aicn tokens create` makes more"
)


def unauthenticated(message: str) -> GraphQLError:
    return coded_error(f"{message}: {LOGIN_HINT}", UNAUTHENTICATED)


#: shapes and scopes of the documents the parser cache keeps
MEMO = DocumentMemo()

#: stands in for a text refused before parsing, so that strawberry parses nothing
_REFUSED = parse("{ __typename }")


class Gate(SchemaExtension):
    def __init__(self, *, execution_context: Any = None) -> None:
        self._report: dict[str, Any] | None = None
        self._refused: list[GraphQLError] = []

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            self.execution_context.parse_options["max_tokens"] = context.limits.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context.context
        query = self.execution_context.query
        if isinstance(context, Context) and isinstance(query, str) and self.execution_context.graphql_document is None:
            limits = context.limits
            scan = prescan(query[: limits.max_query_length + 1], limits.max_tokens)
            self._refused = check_text(query, scan, limits)
            if self._refused:
                self.execution_context.graphql_document = _REFUSED
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            errors = self._refused or await self._admit(context)
            if errors:
                self.execution_context.pre_execution_errors = errors
            else:
                rules: tuple[Any, ...] = (MaxIntrospectionDepthRule,)
                if not context.limits.introspection:
                    rules += (NoSchemaIntrospectionCustomRule,)
                self.execution_context.validation_rules = (*self.execution_context.validation_rules, *rules)
        yield

    def get_results(self) -> dict[str, Any]:
        return {"cost": self._report} if self._report is not None else {}

    async def _admit(self, context: Context) -> list[GraphQLError]:
        execution = self.execution_context
        document = execution.graphql_document
        operation = get_operation_ast(document, execution.operation_name) if document is not None else None
        if document is None or operation is None:
            return []  # strawberry has already refused it
        services, limits = context.services, context.limits
        shape = MEMO.shape(execution.schema._schema, document, operation, execution.variables)
        viewer = context.viewer
        if not limits.introspection and PUBLIC_FIELDS.intersection(shape.root_fields):
            return [coded_error("introspection is off, and `_service` with it: give the router schema.federation.graphql", FORBIDDEN)]
        if not viewer.authenticated and not shape.introspection_only:
            return [unauthenticated("authentication required")]
        if operation.operation == OperationType.SUBSCRIPTION and not context.websocket:
            return [coded_error(SUBSCRIPTION_MESSAGE, SUBSCRIPTION_NEEDS_WEBSOCKET)]
        if context.websocket and viewer.token_id is not None and not await services.access.still_valid(viewer.token_id):
            return [unauthenticated("the token has been revoked or has expired")]
        key = context.throttle_key or "anonymous"
        too_complex = check_shape(shape, limits) or check_introspection(shape, limits)
        if too_complex:
            self._report = cost_report(shape.cost, await services.throttle.available(key), limits)
            return too_complex
        decision = await services.throttle.admit(key, shape.cost)
        self._report = cost_report(shape.cost, decision.available, limits)
        if not decision.allowed:
            return [throttled_error(decision)]
        bad_text = text_error(execution.query or "", document, execution.variables)
        if bad_text is not None:
            return [bad_text]
        missing = missing_scopes(viewer, MEMO.scopes(execution.schema, document, operation))
        if missing:
            if operation.operation == OperationType.MUTATION:
                for name in dict.fromkeys(name for name in shape.root_fields if not name.startswith("__")):
                    await services.audit.record(viewer, AuditRecord(name, None, ERROR, [FORBIDDEN]), context.request_id)
            wanted = sorted(set(missing.values()))
            fields = ", ".join(sorted(missing))
            return [
                coded_error(
                    f"the token lacks the scope {' and '.join(wanted)} that {fields} need(s)",
                    FORBIDDEN,
                    requiredScopes=wanted,
                    fields=sorted(missing),
                )
            ]
        return []
