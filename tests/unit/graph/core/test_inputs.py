"""Every input type of the schema is built from its plan exactly as strawberry builds it itself:
each input value of every field, all fields given and only the required ones."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    coerce_input_value,
)
from graphql.pyutils import Undefined
from strawberry.types.arguments import convert_argument

from graph.core.inputs import InputBuilder
from graph.federation.schema import federated_schema
from graph.schema import schema

#: a wire value of each scalar
WIRE = {
    "String": "text",
    "ID": "id-1",
    "Int": 3,
    "Float": 1.5,
    "Boolean": True,
    "BigInt": "12",
    "Decimal": "1.25",
    "DateTime": "2026-01-02T03:04:05+00:00",
    "JSON": {"key": [1, "two"]},
}


def wire_value(type_: GraphQLInputType, *, all_fields: bool, depth: int = 0) -> Any:
    if isinstance(type_, GraphQLNonNull):
        return wire_value(type_.of_type, all_fields=all_fields, depth=depth)
    if isinstance(type_, GraphQLList):
        return [wire_value(type_.of_type, all_fields=all_fields, depth=depth)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLScalarType):
        return WIRE[type_.name]
    assert isinstance(type_, GraphQLInputObjectType)
    return {
        name: wire_value(field.type, all_fields=all_fields, depth=depth + 1)
        for name, field in type_.fields.items()
        if (all_fields and depth < 3) or (isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined)
    }


def input_types() -> list[tuple[Any, GraphQLInputObjectType, Any]]:
    return [
        (concrete.definition, concrete.implementation, concrete.definition.origin)
        for concrete in schema.schema_converter.type_map.values()
        if isinstance(concrete.implementation, GraphQLInputObjectType)
    ]


def test_every_input_type_of_both_schemas_has_a_builder() -> None:
    for built in (schema, federated_schema):
        inputs = [c.definition for c in built.schema_converter.type_map.values() if isinstance(c.implementation, GraphQLInputObjectType)]
        assert len(inputs) > 20 and all(isinstance(definition.from_input, InputBuilder) for definition in inputs)


@pytest.mark.parametrize("all_fields", [True, False], ids=["all fields", "required only"])
def test_each_input_is_built_as_strawberry_builds_it(all_fields: bool) -> None:
    registry, config = schema.schema_converter.scalar_registry, schema.config
    for definition, graphql_type, origin in input_types():
        value = coerce_input_value(wire_value(graphql_type, all_fields=all_fields), graphql_type)
        built = convert_argument(value, origin, registry, config)
        builder, definition.from_input = definition.from_input, None
        try:
            expected = convert_argument(value, origin, registry, config)
        finally:
            definition.from_input = builder
        assert type(built) is origin and built == expected, graphql_type.name
        for name, item in vars(built).items():
            if isinstance(item, list):  # a list of the request's own, never graphql-core's shared default
                assert item is not value.get(config.name_converter.from_field(next(f for f in definition.fields if f.python_name == name)))
