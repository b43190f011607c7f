"""A router's cost estimate, from the @cost and @listSize the subgraph SDL carries, is aicn's own.

The estimate here follows the IBM cost specification as Apollo's demand control applies
it: a field weighs its `@cost`, else 1 for an object and 0 for a leaf, plus what it
selects, times its list size (a slicing argument's value, else `assumedSize`; a
`sizedFields` child takes its parent's size); each mutation root field adds 10.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    build_ast_schema,
    get_named_type,
    is_leaf_type,
    parse,
)

from graph.gate.cost import MUTATION_COST, measure
from graph.schema import schema as plain_schema

ROOT = Path(__file__).resolve().parent.parent
SPEC_MUTATION_WEIGHT = 10  # Apollo's weight of a mutation root field


def directive_arguments(node: Any, name: str) -> dict[str, Any] | None:
    for directive in getattr(node, "directives", None) or ():
        if directive.name.value == name:
            values: dict[str, Any] = {}
            for argument in directive.arguments:
                value = argument.value
                if isinstance(value, IntValueNode):
                    values[argument.name.value] = int(value.value)
                elif isinstance(value, ListValueNode):
                    values[argument.name.value] = [item.value for item in value.values if isinstance(item, StringValueNode)]
            return values
    return None


class Estimate:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def selections(self, selection_set: SelectionSetNode | None, parent: Any, sized: dict[str, int]) -> int:
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, sized)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                total += self.selections(
                    selection.selection_set, self.schema.get_type(condition.name.value) if condition else parent, sized
                )
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                total += self.selections(fragment.selection_set, self.schema.get_type(fragment.type_condition.name.value), sized)
        return total

    def field(self, node: FieldNode, parent: Any, sized: dict[str, int]) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        definition = parent.fields[name]
        target = get_named_type(definition.type)
        cost = directive_arguments(definition.ast_node, "cost")
        weight = cost["weight"] if cost else (0 if is_leaf_type(target) else 1)
        size, child_sized = sized.get(name, 1), {}
        list_size = directive_arguments(definition.ast_node, "listSize")
        if list_size is not None:
            arguments = {argument.name.value: argument.value for argument in node.arguments or ()}
            sliced = [int(arguments[a].value) for a in list_size.get("slicingArguments", []) if isinstance(arguments.get(a), IntValueNode)]
            count = sliced[0] if sliced else list_size.get("assumedSize", 1)
            if list_size.get("sizedFields"):
                child_sized = dict.fromkeys(list_size["sizedFields"], count)
            else:
                size = count
        return size * (weight + self.selections(node.selection_set, target, child_sized))

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.get_root_type(operation.operation)
        total = self.selections(operation.selection_set, root, {})
        if operation.operation == OperationType.MUTATION:
            total += SPEC_MUTATION_WEIGHT * sum(1 for s in operation.selection_set.selections if isinstance(s, FieldNode))
        return total


def readme_operations() -> list[str]:
    blocks = re.findall(r"```graphql\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    return [block for block in blocks if block.lstrip().startswith(("{", "query", "mutation", "subscription", "fragment"))]


FEDERATED = build_ast_schema(parse((ROOT / "schema.federation.graphql").read_text()), assume_valid_sdl=True)


def test_the_readme_has_examples_to_compare() -> None:
    assert len(readme_operations()) >= 5


@pytest.mark.parametrize("text", readme_operations())
def test_a_routers_estimate_is_aicns_cost(text: str) -> None:
    document = parse(text)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert operations
    for operation in operations:
        ours = measure(plain_schema._schema, document, operation, None).cost
        assert Estimate(FEDERATED, document).operation(operation) == ours, text


def test_mutations_weigh_what_routers_assume() -> None:
    assert MUTATION_COST == SPEC_MUTATION_WEIGHT
