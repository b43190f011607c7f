"""The federation directives aicn's types carry in the subgraph SDL, derived, never copied.

``@key(fields: "id")`` goes on every object type that implements ``Node``. ``@cost`` and
``@listSize`` (the IBM cost specification, which Apollo's and Hive's demand control read)
are computed from graph/gate/cost.py's constants, so that a router's estimate of an
operation is aicn's own:

- an object field weighs ``OBJECT_COST`` (the spec's default for composite types, 1) and a
  leaf nothing, unless ``FIELD_COSTS`` or ``COUNT_COST`` says more: then ``@cost(weight:)``;
- a connection is one object whose ``edges`` list is as long as ``first``
  (``@listSize(slicingArguments: ["first"], sizedFields: ["edges"], assumedSize: DEFAULT_PAGE)``),
  and the edge wrappers are free (``@cost(weight: 0)`` on ``edges``);
- a list with a ``first`` argument is that long; a plain list counts one item, as aicn
  counts it (``@listSize(assumedSize: 1)``); ``nodes(ids:)`` at most ``MAX_NODES``.

The strawberry definitions are shared with the plain schema, whose SDL must not change,
so the directives are attached only while the federated schema is built or printed
(``attached()``): both are synchronous, so no other request sees them in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graphql import GraphQLField, GraphQLNamedType, GraphQLSchema, get_named_type, is_leaf_type, is_list_type, is_non_null_type
from graphql.type import is_interface_type, is_object_type
from strawberry.federation.schema_directives import Cost, Key, ListSize
from strawberry.federation.types import FieldSet
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.unset import UNSET

from graph.gate.cost import COUNT_COST, COUNT_FIELD, FIELD_COSTS, LIST_ARGUMENTS, OBJECT_COST, is_connection, object_cost
from graph.nodes import MAX_NODES
from resolvers.common.ids import DEFAULT_PAGE

NODE_INTERFACE = "Node"
BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF


def field_cost(schema: GraphQLSchema, parent: GraphQLNamedType, name: str, field: GraphQLField) -> Cost | None:
    """``@cost`` where aicn weighs a field other than the spec's default (1 for objects, 0 for leaves)."""
    target = get_named_type(field.type)
    composite = not is_leaf_type(target)
    if name == "edges" and is_connection(parent):
        return Cost(weight=0)
    own = FIELD_COSTS.get(f"{parent.name}.{name}", 0)
    if name == COUNT_FIELD:
        own = max(own, COUNT_COST)
    weight = max(own, object_cost(schema, parent, name, target)) if composite else own
    default = OBJECT_COST if composite else 0
    return Cost(weight=weight) if weight != default else None


def field_list_size(parent: GraphQLNamedType, name: str, field: GraphQLField) -> ListSize | None:
    """``@listSize`` of a connection or a list field, as aicn multiplies them."""
    if name == "edges" and is_connection(parent):
        return None  # sized by the connection's field (`sizedFields`)
    target = get_named_type(field.type)
    slicing = ["first"] if "first" in field.args else None
    if is_connection(target):
        return ListSize(assumed_size=DEFAULT_PAGE, slicing_arguments=slicing, sized_fields=["edges"], require_one_slicing_argument=False)
    kind = field.type.of_type if is_non_null_type(field.type) else field.type
    if not is_list_type(kind):
        return None
    if slicing:
        return ListSize(assumed_size=1, slicing_arguments=slicing, sized_fields=None, require_one_slicing_argument=False)
    # the spec slices by integers only: `ids:` gets an upper bound
    size = MAX_NODES if any(argument in field.args for argument in LIST_ARGUMENTS) else 1
    return ListSize(assumed_size=size, slicing_arguments=UNSET, sized_fields=UNSET, require_one_slicing_argument=UNSET)


def _planned(schema: GraphQLSchema) -> list[tuple[Any, Any]]:
    """(a strawberry type definition or field, a directive to give it)."""
    plan: list[tuple[Any, Any]] = []
    seen: set[int] = set()
    for type_ in schema.type_map.values():
        if type_.name.startswith("__") or not (is_object_type(type_) or is_interface_type(type_)):
            continue
        definition = (type_.extensions or {}).get(BACKREF)
        if definition is None:
            continue
        if is_object_type(type_) and any(interface.name == NODE_INTERFACE for interface in type_.interfaces):
            plan.append((definition, Key(fields=FieldSet("id"))))
        plan.extend(_field_plan(schema, type_, seen))
    return plan


def _field_plan(schema: GraphQLSchema, type_: GraphQLNamedType, seen: set[int]) -> list[tuple[Any, Any]]:
    plan: list[tuple[Any, Any]] = []
    for name, field in type_.fields.items():  # type: ignore[attr-defined]
        strawberry_field = (field.extensions or {}).get(BACKREF)
        if strawberry_field is None or id(strawberry_field) in seen:
            continue
        seen.add(id(strawberry_field))
        for directive in (field_cost(schema, type_, name, field), field_list_size(type_, name, field)):
            if directive is not None:
                plan.append((strawberry_field, directive))
    return plan


@contextmanager
def attached(schema: GraphQLSchema) -> Iterator[None]:
    """The federation directives on the definitions of ``schema``'s types, for the time of the block."""
    plan = _planned(schema)
    originals = {id(owner): (owner, owner.directives) for owner, _ in plan}
    for owner, directive in plan:
        owner.directives = [*(owner.directives or ()), directive]
    try:
        yield
    finally:
        for owner, directives in originals.values():
            owner.directives = directives
