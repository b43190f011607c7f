"""Which scope each root field needs, declared where the field is defined.

A root field may say ``metadata={REQUIRES: ADMIN}``; otherwise queries and
subscriptions need ``read`` and mutations ``submit``. The check runs on the
operation's root fields before anything executes, so a forbidden field in a document
rejects the whole document (a mutation document never half runs).
"""

from __future__ import annotations

from collections.abc import Iterable

from graphql import OperationType

from resolvers.access.viewer import READ, SUBMIT, Viewer

REQUIRES = "aicn.requires"
#: the federated subgraph's SDL, public like introspection (the gate refuses it when introspection is off)
PUBLIC_FIELDS = frozenset({"_service"})

_DEFAULT = {OperationType.QUERY: READ, OperationType.SUBSCRIPTION: READ, OperationType.MUTATION: SUBMIT}


def required_scopes(schema: object, operation: OperationType, root_fields: Iterable[str]) -> dict[str, str]:
    """Root field name -> the scope it needs (introspection fields need none)."""
    root_type = {OperationType.QUERY: "Query", OperationType.MUTATION: "Mutation", OperationType.SUBSCRIPTION: "Subscription"}[operation]
    needs: dict[str, str] = {}
    for name in root_fields:
        if name.startswith("__") or name in PUBLIC_FIELDS:
            continue
        field = schema.get_field_for_type(field_name=name, type_name=root_type)  # type: ignore[attr-defined]
        declared = (field.metadata or {}).get(REQUIRES) if field is not None else None
        needs[name] = declared or _DEFAULT[operation]
    return needs


def missing_scopes(viewer: Viewer, needs: dict[str, str]) -> dict[str, str]:
    return {name: scope for name, scope in needs.items() if not viewer.can(scope)}
