"""Input objects built from a plan made once per type, not by re-resolving every field's type per request.

strawberry turns an argument's input value into its Python class field by field, and resolves
each field's annotation again on every request: a ``submitJob`` of a dozen fields spent a sixth of
its own GraphQL work there. ``InputBuilder`` is strawberry's documented ``from_input`` hook: it
resolves each field's type and GraphQL name once, converts leaves, lists of leaves and their
optionals itself (they need no conversion but a copy of a list), and hands anything else (a nested
input, a GlobalID, a ``Maybe``) to strawberry's own conversion, so the result is what strawberry
builds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

import strawberry
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types.arguments import InputContext
from strawberry.types.base import StrawberryList, StrawberryMaybe, StrawberryObjectDefinition, StrawberryOptional, StrawberryType
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Convert = Callable[[Any], Any]
#: (GraphQL name, Python name, its own conversion or None for strawberry's, the resolved type)
Step = tuple[str, str, Convert | None, Any]


def build_inputs_from_plans(schema: strawberry.Schema) -> None:
    """Give every input type of ``schema`` that builds its value the default way an ``InputBuilder``."""
    for concrete in schema.schema_converter.type_map.values():
        definition = concrete.definition
        if isinstance(definition, StrawberryObjectDefinition) and definition.is_input and definition.from_input is None:
            if not any(isinstance(field.type, StrawberryMaybe) for field in definition.fields):
                definition.from_input = InputBuilder(definition)


class InputBuilder:
    def __init__(self, definition: StrawberryObjectDefinition) -> None:
        self.definition = definition
        # strawberry's implicit None for a field with no default: graphql-core has checked the required ones are there
        self.absent = {
            field.python_name: None for field in definition.fields if field.default_value is MISSING and field.default_factory is MISSING
        }
        self._plan: list[Step] | None = None

    def __call__(self, cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
        plan = self._plan if self._plan is not None else self._make_plan(context)
        fields: dict[str, Any] = dict(self.absent)
        for graphql_name, python_name, convert, type_ in plan:
            if graphql_name in value:
                item = value[graphql_name]
                fields[python_name] = convert(item) if convert is not None else context.convert(item, type_, graphql_name)
        return cls(**fields)

    def _make_plan(self, context: InputContext) -> list[Step]:
        plan: list[Step] = []
        for field in self.definition.fields:
            type_ = field.resolve_type(type_definition=self.definition)
            name = context.config.name_converter.from_field(field)
            plan.append((name, field.python_name, _own_conversion(type_, context.scalar_registry), type_))
        self._plan = plan
        return plan


def _same(value: Any) -> Any:
    return value


def _optional(inner: Convert) -> Convert:
    def convert(value: Any) -> Any:
        return value if value is None or value is UNSET else inner(value)

    return convert


def _own_conversion(type_: StrawberryType | type, scalars: Mapping[object, Any]) -> Convert | None:
    """How a value of ``type_`` converts, when it is as plain as a leaf; None for strawberry to convert."""
    if isinstance(type_, StrawberryMaybe):
        return None
    if isinstance(type_, StrawberryOptional):
        inner = _own_conversion(type_.of_type, scalars)
        return _optional(inner) if inner is not None else None
    if isinstance(type_, StrawberryList):
        item = type_.of_type
        if isinstance(item, StrawberryMaybe):
            return None
        if isinstance(item, StrawberryOptional):
            item = item.of_type
        # the list is copied: graphql-core gives every request that omits it the same default
        return list if _is_leaf(item, scalars) else None
    return _same if _is_leaf(type_, scalars) else None


def _is_leaf(type_: Any, scalars: Mapping[object, Any]) -> bool:
    if type_ is GlobalID:  # decoded by strawberry, with its own error
        return False
    if isinstance(type_, LazyType):
        return _is_leaf(type_.resolve_type(), scalars)
    return isinstance(type_, StrawberryEnumDefinition) or has_enum_definition(type_) or is_scalar(type_, scalars)
