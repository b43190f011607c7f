"""Request limits: the raw text, then the operation's measured shape, against the configured
maximums; the cost report; and text the database could not store.

Every check works on the text or the syntax tree (graph/gate/cost.py), so an abusive operation
is refused before validation proper, before any resolver, loader or center.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import DocumentNode, StringValueNode, visit
from graphql.error import GraphQLError
from graphql.language import Visitor

from graph.gate.cost import Prescan, QueryShape
from resolvers.access.throttle import ThrottleDecision

if TYPE_CHECKING:
    from aicn.security_settings import LimitSettings

TOO_COMPLEX = "QUERY_TOO_COMPLEX"
THROTTLED = "THROTTLED"
BAD_USER_INPUT = "BAD_USER_INPUT"
NUL = "\x00"


def coded_error(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


def check_text(query: str, scan: Prescan, limits: LimitSettings) -> list[GraphQLError]:
    """Refusals that need no parse: too long, too many tokens, an alias flood."""
    checks = [
        ("length", len(query), limits.max_query_length, "the query is {value} characters long; the limit is {limit}"),
        ("tokens", scan.tokens, limits.max_tokens, "the query has more than {limit} tokens"),
    ]
    if scan.operations == 1:  # with several operations in the document, only the chosen one counts
        checks.append(("aliases", scan.aliases, limits.max_aliases, "the operation uses {value} aliases; the limit is {limit}"))
    return [
        coded_error(template.format(value=value, limit=limit), TOO_COMPLEX, limit=name, value=value, maximum=limit)
        for name, value, limit, template in checks
        if value > limit
    ]


def check_shape(shape: QueryShape, limits: LimitSettings) -> list[GraphQLError]:
    checks = (
        ("depth", shape.depth, limits.max_depth, "the operation is nested {value} levels deep; the limit is {limit}"),
        ("aliases", shape.aliases, limits.max_aliases, "the operation uses {value} aliases; the limit is {limit}"),
        ("rootFields", len(shape.root_fields), limits.max_root_fields, "the operation asks for {value} root fields; the limit is {limit}"),
        ("cost", shape.cost, limits.max_cost, "the operation would cost {value} points; one operation may cost at most {limit}"),
    )
    return [
        coded_error(template.format(value=value, limit=limit), TOO_COMPLEX, limit=name, value=value, maximum=limit)
        for name, value, limit, template in checks
        if value > limit
    ]


def check_introspection(shape: QueryShape, limits: LimitSettings) -> list[GraphQLError]:
    """Each `__schema` or `__type` walks the whole schema, for anyone (anonymous callers too):
    an operation may hold only a few, however little they are priced."""
    count = sum(1 for name in shape.root_fields if name in ("__schema", "__type"))
    if count <= limits.max_introspection_fields:
        return []
    return [
        coded_error(
            f"the operation asks for {count} introspection fields; the limit is {limits.max_introspection_fields}",
            TOO_COMPLEX,
            limit="introspection",
            value=count,
            maximum=limits.max_introspection_fields,
        )
    ]


def cost_report(cost: int, available: float, limits: LimitSettings) -> dict[str, Any]:
    """``extensions.cost`` as Shopify shapes it."""
    return {
        "requestedQueryCost": cost,
        "throttleStatus": {
            "maximumAvailable": limits.bucket_size,
            "currentlyAvailable": int(available),
            "restoreRate": limits.restore_rate,
        },
    }


def throttled_error(decision: ThrottleDecision) -> GraphQLError:
    seconds = decision.retry_after_seconds
    return coded_error(
        f"the operation costs {decision.cost} points and {int(decision.available)} are available; retry in {seconds}s",
        THROTTLED,
        retryAfter=seconds,
    )


def text_error(query: str, document: DocumentNode, variables: Any) -> GraphQLError | None:
    """Strings with U+0000 or lone surrogates: PostgreSQL cannot store them, and no real input needs them."""
    if _bad_text(variables) or ("\\u" in query and _literal_has_nul(document)):
        return coded_error("strings must be valid Unicode without the NUL character (U+0000)", BAD_USER_INPUT)
    return None


def _bad_text(value: Any) -> bool:
    if isinstance(value, str):
        if NUL in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_bad_text(key) or _bad_text(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_bad_text(item) for item in value)
    return False


class _FindNul(Visitor):
    found = False

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        if NUL in node.value:
            self.found = True


def _literal_has_nul(document: DocumentNode) -> bool:
    finder = _FindNul()
    visit(document, finder)
    return finder.found
