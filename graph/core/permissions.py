"""Which scope each field an operation reads needs, declared where the field is defined.

The rule, checked on every field of the operation before anything executes (a forbidden
field anywhere rejects the whole document, so a mutation document never half runs):

- every field needs ``read``, except
- a mutation's root field, which needs ``submit``, and what the mutation itself answers:
  the fields of its payload (``job``, ``dataset``, ``userErrors``, ``secret`` ...) and the
  scalar and enum fields of the objects the payload holds (``job { id state }``). Anything
  reached beyond them (``dataset { owner { tokens } }``, ``job { center { name } }``) is a
  read and needs ``read``;
- a field that says ``metadata={REQUIRES: ADMIN}`` (at the root or anywhere below) needs that
  scope instead;
- introspection (``__schema``, ``__type``, ``__typename``) needs none.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLNamedType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_interface_type,
    is_leaf_type,
    is_object_type,
)

from resolvers.access.viewer import READ, SUBMIT, Viewer

REQUIRES = "aicn.requires"
#: the federated subgraph's SDL, public like introspection (the gate refuses it when introspection is off)
PUBLIC_FIELDS = frozenset({"_service"})
#: the mutation payloads' error type: always part of what the mutation answers
USER_ERROR = "UserError"


class _Zone(Enum):
    ROOT_READ = "root read"
    ROOT_MUTATION = "root mutation"
    PAYLOAD = "payload"  # the fields of a mutation's payload
    RESULT = "result"  # the fields of an object the payload holds
    READ = "read"


class _ScopeWalker:
    def __init__(self, schema: Any, document: DocumentNode) -> None:
        self.schema = schema  # strawberry's schema: it holds the fields' metadata
        self.core = schema._schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self._memo: dict[tuple[str, _Zone], dict[str, str]] = {}
        self._active: set[tuple[str, _Zone]] = set()

    def selection_set(self, selections: SelectionSetNode | None, parent: GraphQLNamedType | None, zone: _Zone) -> dict[str, str]:
        needs: dict[str, str] = {}
        if selections is None or parent is None:
            return needs
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                needs.update(self.field(selection, parent, zone))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.core.get_type(condition.name.value) if condition else parent
                needs.update(self.selection_set(selection.selection_set, target, zone))
            elif isinstance(selection, FragmentSpreadNode):
                needs.update(self.fragment(selection.name.value, zone))
        return needs

    def fragment(self, name: str, zone: _Zone) -> dict[str, str]:
        key = (name, zone)
        if key in self._memo:
            return self._memo[key]
        definition = self.fragments.get(name)
        if definition is None or key in self._active:  # unknown or cyclic: validation reports it
            return {}
        self._active.add(key)
        target = self.core.get_type(definition.type_condition.name.value)
        needs = self.selection_set(definition.selection_set, target, zone)
        self._active.discard(key)
        self._memo[key] = needs
        return needs

    def field(self, node: FieldNode, parent: GraphQLNamedType, zone: _Zone) -> dict[str, str]:
        name = node.name.value
        if name.startswith("__") or (name in PUBLIC_FIELDS and zone is _Zone.ROOT_READ):
            return {}
        definition = parent.fields.get(name) if is_object_type(parent) or is_interface_type(parent) else None
        if definition is None:
            return {}  # validation reports an unknown field
        target = get_named_type(definition.type)
        default, inner = self._default(zone, target)
        coordinate = f"{parent.name}.{name}"
        declared = self._declared(parent, name)
        needs = dict(self.selection_set(node.selection_set, target, inner))
        scope = declared or default
        if scope is not None:
            needs[coordinate] = scope
        return needs

    @staticmethod
    def _default(zone: _Zone, target: GraphQLNamedType) -> tuple[str | None, _Zone]:
        """The scope a field needs by default in ``zone``, and the zone of its own selection."""
        if zone is _Zone.ROOT_MUTATION:
            return SUBMIT, _Zone.PAYLOAD
        if zone is _Zone.PAYLOAD:
            return None, _Zone.RESULT
        if zone is _Zone.RESULT and (is_leaf_type(target) or target.name == USER_ERROR):
            return None, _Zone.RESULT
        return READ, _Zone.READ

    def _declared(self, parent: GraphQLNamedType, name: str) -> str | None:
        if not is_object_type(parent):
            return None
        field = self.schema.get_field_for_type(field_name=name, type_name=parent.name)
        return (field.metadata or {}).get(REQUIRES) if field is not None else None


def required_scopes(schema: Any, document: DocumentNode, operation: OperationDefinitionNode) -> dict[str, str]:
    """Schema coordinate (``Type.field``) of every field the operation reads -> the scope it needs."""
    walker = _ScopeWalker(schema, document)
    root = walker.core.get_root_type(operation.operation)
    zone = _Zone.ROOT_MUTATION if operation.operation == OperationType.MUTATION else _Zone.ROOT_READ
    return walker.selection_set(operation.selection_set, root, zone)


def missing_scopes(viewer: Viewer, needs: Mapping[str, str]) -> dict[str, str]:
    return {name: scope for name, scope in needs.items() if not viewer.can(scope)}
