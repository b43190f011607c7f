"""What an operation asks for, measured on its syntax tree before anything runs.

The cost follows Shopify's and GitHub's public APIs, about one point per object the answer
may return: an entity (a type that implements ``Node``, or a connection's node) costs 1; a
value object that comes with its parent's row (``Money``, ``JobProgress``, a status) costs
nothing, like a scalar or an enum; a connection costs 1 plus `first` times what each of its
nodes selects (`first` defaults to the page size, 20), a list with `first` or `ids:` that
many times its items, a `totalCount` 1, a root field at least 1, and a mutation 10. Fields
that ask the centers cost a little more. The walk visits each fragment once (memoized), so
a fragment "bomb" costs linear time to measure while its cost adds up in full.

The weights are the named constants below (federation ``@cost`` directives are emitted
from them); the README's "Limits and their codes" works an example through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_interface_type,
    is_object_type,
)

from resolvers.common.ids import DEFAULT_PAGE

#: an entity: a ``Node`` or a connection's node
OBJECT_COST = 1
#: an object that is part of its parent's row (no fetch of its own)
VALUE_OBJECT_COST = 0
#: a root field, whatever it returns
ROOT_FIELD_COST = 1
#: a connection itself (its nodes are counted by `first`)
CONNECTION_COST = 1
MUTATION_COST = 10
INTROSPECTION_COST = 10
#: fields that call out to centers (or count rows) cost more than a loaded object
FIELD_COSTS: Mapping[str, int] = {
    "Query.capacity": 5,
    "Query.computeUnits": 5,
    "Query.offers": 5,
    "ComputeCenter.status": 2,
    "ComputeCenter.computeUnits": 2,
    "ComputeCenter.capacity": 2,
    "Job.computeUnit": 2,
    "Job.logs": 5,
    "Query.jobStats": 2,  # one GROUP BY over the caller's jobs
    "ComputeCenter.queueLength": 1,  # one COUNT per batch of centers
    "Job.logBytes": 5,
    "Subscription.jobLogs": 5,
    # reads the peer's usage records through its graph
    "Query.peerSettlement": 10,
}
#: a list field with one of these list arguments has one item per element (`nodes(ids:)`, federation's `_entities`)
LIST_ARGUMENTS = ("ids", "representations")
#: the federated subgraph's SDL field: public like introspection (and off with it)
SCHEMA_FIELDS = frozenset({"_service"})
COUNT_FIELD = "totalCount"
COUNT_COST = 1
#: arithmetic guard: `first: 10**100` must not make the numbers themselves expensive
MAX_MULTIPLIER = 1_000_000_000


@dataclass
class _Measure:
    cost: int = 0
    depth: int = 0
    aliases: int = 0

    def add(self, other: _Measure, *, depth_offset: int = 0) -> None:
        self.cost += other.cost
        self.aliases += other.aliases
        self.depth = max(self.depth, other.depth + depth_offset)


@dataclass(frozen=True)
class QueryShape:
    cost: int
    depth: int
    aliases: int
    root_fields: tuple[str, ...] = field(default_factory=tuple)
    #: the variables the measure read (page sizes, list lengths): it depends on nothing else
    variables_read: frozenset[str] = frozenset()

    @property
    def introspection_only(self) -> bool:
        """Only `__schema`, `__type`, `__typename` (GraphiQL's schema fetch) or `_service` (a router's) at the root."""
        return all(name.startswith("__") or name in SCHEMA_FIELDS for name in self.root_fields)


class _Walker:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any] | None) -> None:
        self.schema = schema
        self.variables = variables or {}
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self._memo: dict[tuple[str, int | None], _Measure] = {}
        self._active: set[str] = set()
        self.read: set[str] = set()

    def selection_set(self, selections: SelectionSetNode | None, parent: GraphQLNamedType | None, page: int | None = None) -> _Measure:
        """The measure of one selection set; its depth counts the field levels below ``parent``.

        ``page`` is the size of the connection ``parent`` is, which its ``edges`` multiply by.
        """
        total = _Measure()
        if selections is None:
            return total
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total.add(self.field(selection, parent, page))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total.add(self.selection_set(selection.selection_set, target, page))
            elif isinstance(selection, FragmentSpreadNode):
                total.add(self.fragment(selection.name.value, page))
        return total

    def fragment(self, name: str, page: int | None) -> _Measure:
        key = (name, page)
        if key in self._memo:
            return self._memo[key]
        definition = self.fragments.get(name)
        if definition is None or name in self._active:  # unknown or cyclic: validation reports it
            return _Measure()
        self._active.add(name)
        target = self.schema.get_type(definition.type_condition.name.value)
        measure = self.selection_set(definition.selection_set, target, page)
        self._active.discard(name)
        self._memo[key] = measure
        return measure

    def field(self, node: FieldNode, parent: GraphQLNamedType | None, page: int | None) -> _Measure:
        name = node.name.value
        aliases = 1 if node.alias is not None else 0
        if name == "__typename":
            return _Measure(aliases=aliases)
        if name in ("__schema", "__type"):
            # bounded by the schema, and graphql-core's MaxIntrospectionDepthRule caps its nesting
            return _Measure(cost=INTROSPECTION_COST, depth=1, aliases=aliases)
        definition = None
        if parent is not None and (is_object_type(parent) or is_interface_type(parent)):
            definition = parent.fields.get(name)
        if definition is None:
            inner = self.selection_set(node.selection_set, None)
            return _Measure(cost=inner.cost, depth=inner.depth + 1, aliases=inner.aliases + aliases)
        target = get_named_type(definition.type)
        arguments = {argument.name.value: argument.value for argument in node.arguments or ()}
        own = FIELD_COSTS.get(f"{parent.name}.{name}", 0)  # type: ignore[union-attr]
        if name == COUNT_FIELD:
            own = max(own, COUNT_COST)
        multiplier, child_page = 1, None
        if is_connection(target):
            child_page = self.page_size(arguments)
        elif name == "edges" and page is not None:
            multiplier = page  # the connection's objects are its nodes; the edge wrappers are free
        elif "first" in arguments:
            multiplier = self.page_size(arguments)
        elif listed := next((arguments[name] for name in LIST_ARGUMENTS if name in arguments), None):
            multiplier = max(1, self.list_length(listed))
        if node.selection_set is not None and not (name == "edges" and page is not None):
            own = max(own, self.object_cost(parent, name, target))
        inner = self.selection_set(node.selection_set, target, child_page)
        return _Measure(cost=multiplier * (own + inner.cost), depth=inner.depth + 1, aliases=inner.aliases + aliases)

    def object_cost(self, parent: GraphQLNamedType | None, name: str, target: GraphQLNamedType) -> int:
        return object_cost(self.schema, parent, name, target)

    def page_size(self, arguments: Mapping[str, ValueNode]) -> int:
        first = self.int_value(arguments.get("first"))
        return DEFAULT_PAGE if first is None or first < 1 else min(first, MAX_MULTIPLIER)

    def resolve(self, value: ValueNode | None) -> Any:
        if isinstance(value, VariableNode):
            self.read.add(value.name.value)
            return self.variables.get(value.name.value)
        return value

    def int_value(self, value: ValueNode | None) -> int | None:
        resolved = self.resolve(value)
        if isinstance(resolved, IntValueNode):
            digits = resolved.value
            if len(digits.lstrip("-")) > 10:  # beyond Int anyway; int() of a huge literal is itself slow
                return None if digits.startswith("-") else MAX_MULTIPLIER
            return int(digits)
        if isinstance(resolved, int) and not isinstance(resolved, bool):
            return resolved
        return None

    def list_length(self, value: ValueNode) -> int:
        resolved = self.resolve(value)
        if isinstance(resolved, ListValueNode):
            return len(resolved.values)
        if isinstance(resolved, list):
            return len(resolved)
        return 1


def object_cost(schema: GraphQLSchema, parent: GraphQLNamedType | None, name: str, target: GraphQLNamedType) -> int:
    """What a field that selects an object costs itself (before what it selects): an entity or a
    connection counts, a value carried on its parent (money, progress, status) does not."""
    if parent is schema.query_type or parent is schema.mutation_type or parent is schema.subscription_type:
        return ROOT_FIELD_COST
    if is_connection(target):
        return CONNECTION_COST
    if name == "node" and _is_edge(parent):
        return OBJECT_COST
    if _is_entity(target):
        return OBJECT_COST
    return VALUE_OBJECT_COST


def is_connection(target: GraphQLNamedType) -> bool:
    fields = getattr(target, "fields", None)
    return is_object_type(target) and fields is not None and "edges" in fields and "pageInfo" in fields


def _is_edge(parent: GraphQLNamedType | None) -> bool:
    fields = getattr(parent, "fields", None)
    return fields is not None and "node" in fields and "cursor" in fields


def _is_entity(target: GraphQLNamedType) -> bool:
    """A ``Node`` (fetched by id), an interface or a union: anything but a plain value object."""
    if is_object_type(target):
        return any(interface.name == "Node" for interface in target.interfaces)
    return True


def _root_names(walker: _Walker, selections: SelectionSetNode, seen: set[str] | None = None) -> list[str]:
    seen = seen if seen is not None else set()
    names: list[str] = []
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            names.append(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            names.extend(_root_names(walker, selection.selection_set, seen))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            definition = walker.fragments.get(selection.name.value)
            if definition is not None:
                names.extend(_root_names(walker, definition.selection_set, seen))
    return names


def measure(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
) -> QueryShape:
    walker = _Walker(schema, document, variables)
    root = schema.get_root_type(operation.operation)
    total = walker.selection_set(operation.selection_set, root)
    cost = total.cost
    names = _root_names(walker, operation.selection_set)
    if operation.operation.value == "mutation":
        cost += MUTATION_COST * sum(1 for name in names if not name.startswith("__"))
    return QueryShape(cost=cost, depth=total.depth, aliases=total.aliases, root_fields=tuple(names), variables_read=frozenset(walker.read))


def cost_key(shape: QueryShape, variables: Mapping[str, Any] | None) -> tuple[tuple[int | None, int | None], ...]:
    """What of ``variables`` the measure of ``shape``'s operation depends on: of each variable it read,
    the integer (a page size) and the list length it can take; equal keys, equal measures."""
    values = variables or {}
    return tuple(_as_read(values.get(name)) for name in sorted(shape.variables_read))


def _as_read(value: Any) -> tuple[int | None, int | None]:
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    return number, len(value) if isinstance(value, list) else None


#: GraphQL's lexemes, close enough to count them at C speed (commas and comments are not tokens)
_LEXEME = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|#[^\n\r]*|\.\.\.'
    r"|[_A-Za-z][_0-9A-Za-z]*|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[!$&():=@\[\]{|}]"
)
_OPERATION_KEYWORDS = frozenset({"query", "mutation", "subscription"})


@dataclass(frozen=True)
class Prescan:
    """What the raw text shows before parsing: graphql-core parses about 4 µs per token."""

    tokens: int
    aliases: int  # colons outside arguments; exact for a document with one operation
    operations: int


def prescan(query: str, max_tokens: int) -> Prescan:
    """Count tokens, aliases and operations, stopping once ``max_tokens`` is passed."""
    tokens = aliases = operations = 0
    parens = braces = 0
    previous = ""
    for match in _LEXEME.finditer(query):
        lexeme = match.group()
        if lexeme[0] == "#":
            continue
        tokens += 1
        if tokens > max_tokens:
            break
        if lexeme == "(":
            parens += 1
        elif lexeme == ")":
            parens -= 1
        elif lexeme == "{":
            if braces == 0 and parens == 0 and previous in ("", "}"):
                operations += 1  # an anonymous `{ ... }` operation
            braces += 1
        elif lexeme == "}":
            braces -= 1
        elif lexeme == ":" and parens == 0 and braces > 0:
            aliases += 1
        elif braces == 0 and parens == 0 and lexeme in _OPERATION_KEYWORDS:
            operations += 1
        previous = lexeme
    return Prescan(tokens=tokens, aliases=aliases, operations=operations)
