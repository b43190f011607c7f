"""Every error a client sees has a code; nothing internal leaks.

``ShapeErrors`` runs last on every operation: it adds the errors resolvers recorded for
partial answers (a center that did not respond), gives each error an
``extensions.code``, and replaces anything unexpected by ``INTERNAL`` plus the request
id, which the log line carrying the real exception also has.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from resolvers.common.errors import BadRequest, CenterFault

log = logging.getLogger("aicn.graph")


def center_error(fault: CenterFault, path: list[str | int] | None = None) -> GraphQLError:
    return GraphQLError(
        fault.message,
        path=path,
        extensions={"code": fault.code, "center": fault.center_id, "centerName": fault.center_name},
    )


class ShapeErrors(MaskErrors):
    def on_execute(self):  # type: ignore[no-untyped-def]
        yield
        result = self.execution_context.result
        extra = getattr(self.execution_context.context, "partial_errors", None)
        if result is not None and extra:
            result.errors = list(result.errors or []) + list(extra)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._shape(error) for error in errors]

    def _shape(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, CenterFault):
            return GraphQLError(
                original.message,
                nodes=error.nodes,
                path=error.path,
                extensions={"code": original.code, "center": original.center_id, "centerName": original.center_name},
            )
        if isinstance(original, BadRequest):
            return GraphQLError(original.message, nodes=error.nodes, path=error.path, extensions={"code": original.code})
        if original is None or isinstance(original, GraphQLError) or _bad_scalar_input(error):
            source = original if isinstance(original, GraphQLError) else error
            extensions: dict[str, Any] = dict(source.extensions or {})
            if "code" not in extensions:
                extensions["code"] = _request_error_code(error) if error.path is None else "BAD_USER_INPUT"
            return GraphQLError(
                error.message, nodes=error.nodes, source=error.source, positions=error.positions, path=error.path, extensions=extensions
            )
        request_id = getattr(self.execution_context.context, "request_id", None)
        log.error("internal error request_id=%s path=%s", request_id, error.path, exc_info=original)
        return GraphQLError(
            "Internal server error",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL", "requestId": request_id},
        )


def _bad_scalar_input(error: GraphQLError) -> bool:
    """A scalar refused a value in the document or its variables (ours raise ValueError with a message for the user)."""
    return error.path is None and bool(error.nodes) and isinstance(error.original_error, (ValueError, TypeError))


#: the parser's own limits (the token limit the gate sets, graphql-core's nesting limit)
_PARSER_LIMITS = ("tokens. Parsing aborted", "nested too deeply")


def _request_error_code(error: GraphQLError) -> str:
    if error.message.startswith("Syntax Error"):
        return "QUERY_TOO_COMPLEX" if any(limit in error.message for limit in _PARSER_LIMITS) else "GRAPHQL_PARSE_FAILED"
    return "GRAPHQL_VALIDATION_FAILED"
