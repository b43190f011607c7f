"""Complete plain subtrees of an answer in one pass, without graphql-core's per-field machinery.

graphql-core completes every field alike: a resolve info, a path, the resolver, an awaitable
check, then the value's completion, about 6 µs a field. Most fields of a big answer are plain:
a strawberry field without a resolver, arguments, directives or extensions, whose value is the
attribute of the same name (the fifty edges of a fan-out, their units and centers). For an
object whose selected fields are all plain, down to its leaves, ``PlainExecutor`` reads the
attributes and coerces the leaves itself, with the same coercion and checks graphql-core applies.

Anything unusual in the values (a null where the type forbids one, a leaf that does not coerce,
a value of the wrong type, an awaitable) gives the object back to graphql-core, which completes
it the normal way and reports the error exactly as before: reading a plain field twice is
harmless. With a resolve hook (a tracing extension) or incremental delivery, nothing is taken
over. A plan is made once per (type, selection) of an execution, so a list's items share one.

A subscription's executor is copied for each event, and the copy would share the memos keyed
by the identity of field lists (graphql-core's own and the plans here) with every other event's;
each event collects its root fields anew, so those memos would gain entries on every event for
as long as the subscription lives. Each event's executor starts them empty instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLList,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetails
from graphql.pyutils import Path, RefMap, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField


class _Fallback(Exception):
    """A value the plain pass leaves to graphql-core (it reports it, or completes it its own way)."""


#: completes one value of a known type, or raises _Fallback
Complete = Callable[[Any], Any]
#: a plan that turned out not to exist (a resolver, a directive, an abstract type somewhere below)
_NO_PLAN: Any = object()


class PlainExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's executor, completing objects whose selections are all plain fields in one pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager
        #: a resolve hook must see every field: then every field goes through graphql-core
        self._plain_allowed = middleware is None or not middleware.middlewares
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[list[FieldDetails], Any]] = {}

    def build_per_event_executor(self, payload: Any) -> Any:
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, PlainExecutor)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        executor._plans = {}
        return executor

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: list[FieldDetails],
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if self._plain_allowed:
            plan = self._object_plan(return_type, field_details_list)
            if plan is not None:
                try:
                    return plan(result)
                except _Fallback:
                    pass
        return super().complete_object_value(return_type, field_details_list, info, path, result, position_context)

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: list[FieldDetails],
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if self._plain_allowed and type(result) in (list, tuple) and not _has_directives(field_details_list):
            plan = self._value_plan(return_type, field_details_list)
            if plan is not None:
                try:
                    return plan(result)
                except _Fallback:
                    pass
        return super().complete_list_value(return_type, field_details_list, info, path, result, position_context)

    # ------------------------------------------------------------------ plans

    def _object_plan(self, object_type: GraphQLObjectType, field_details_list: list[FieldDetails]) -> Complete | None:
        key = (object_type, id(field_details_list))
        cached = self._plans.get(key)
        if cached is not None:
            return None if cached[1] is _NO_PLAN else cached[1]
        self._plans[key] = (field_details_list, _NO_PLAN)  # a type that contains itself is not planned twice
        plan = self._make_object_plan(object_type, field_details_list)
        self._plans[key] = (field_details_list, _NO_PLAN if plan is None else plan)
        return plan

    def _make_object_plan(self, object_type: GraphQLObjectType, field_details_list: list[FieldDetails]) -> Complete | None:
        definition = object_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryObjectDefinition) or definition.is_type_of is not None:
            return None  # a type of one's own check might want the field's info
        grouped, defer_usages, forbidden = self.collect_subfields(object_type, field_details_list)
        if defer_usages or forbidden:
            return None
        steps: list[tuple[str, str, Complete]] = []
        for response_name, details in grouped.items():
            node = details[0].node
            if any(detail.node.directives or detail.node.arguments for detail in details) or any(
                detail.defer_usage is not None for detail in details
            ):
                return None
            if node.name.value == "__typename":
                steps.append((response_name, "", _constant(object_type.name)))
                continue
            field_def = object_type.fields.get(node.name.value)
            if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
                return None
            field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(field, StrawberryField) or not field.is_basic_field or field.default_resolver is not getattr:
                return None
            complete = self._value_plan(field_def.type, details)
            if complete is None:
                return None
            steps.append((response_name, field.python_name, complete))
        is_type_of = object_type.is_type_of
        return _object_completer(is_type_of, steps)

    def _value_plan(self, return_type: GraphQLOutputType, details: list[FieldDetails]) -> Complete | None:
        if is_non_null_type(return_type):
            inner = self._value_plan(return_type.of_type, details)
            return None if inner is None else _non_null(inner)
        if is_list_type(return_type):
            inner = self._value_plan(return_type.of_type, details)
            return None if inner is None else _nullable(_list_of(inner))
        if is_leaf_type(return_type):
            return _nullable(_leaf(return_type.coerce_output_value))
        if is_object_type(return_type):
            plan = self._object_plan(return_type, details)
            return None if plan is None else _nullable(plan)
        return None  # an interface or a union: graphql-core resolves the runtime type


def _constant(value: str) -> Complete:
    def complete(_value: Any) -> str:
        return value

    return complete


def _has_directives(details: list[FieldDetails]) -> bool:
    return any(detail.node.directives for detail in details)


def _object_completer(is_type_of: Any, steps: list[tuple[str, str, Complete]]) -> Complete:
    def complete(value: Any) -> dict[str, Any]:
        if is_type_of is not None:
            if is_type_of(value, None) is not True:
                raise _Fallback
        elif hasattr(value, "__await__"):
            raise _Fallback
        try:
            return {response_name: step(getattr(value, attribute) if attribute else value) for response_name, attribute, step in steps}
        except _Fallback:
            raise
        except Exception:  # graphql-core turns it into the field's error
            raise _Fallback from None

    return complete


def _non_null(inner: Complete) -> Complete:
    def complete(value: Any) -> Any:
        completed = inner(value)
        if completed is None:
            raise _Fallback  # graphql-core raises "Cannot return null for non-nullable field"
        return completed

    return complete


def _nullable(inner: Complete) -> Complete:
    def complete(value: Any) -> Any:
        if value is None:
            return None
        if value is Undefined or isinstance(value, BaseException):
            raise _Fallback
        return inner(value)

    return complete


def _list_of(inner: Complete) -> Complete:
    def complete(value: Any) -> list[Any]:
        if type(value) not in (list, tuple):
            raise _Fallback  # another iterable, an async one, or no iterable at all
        return [inner(item) for item in value]

    return complete


_PLAIN_LEAVES = frozenset({str, int, float, bool})


def _leaf(coerce: Callable[[Any], Any]) -> Complete:
    def complete(value: Any) -> Any:
        if type(value) not in _PLAIN_LEAVES and hasattr(value, "__await__"):
            raise _Fallback
        try:
            coerced = coerce(value)
        except Exception:
            raise _Fallback from None
        if coerced is None or coerced is Undefined:
            raise _Fallback
        return coerced

    return complete
