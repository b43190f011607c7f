"""The plain pass (graph/core/plain.py): the same answers and errors as graphql-core's own completion,
with graphql-core's per-field work left only to the fields that are not plain."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
import strawberry
from graphql import ExecutionResult, GraphQLResolveInfo
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph.core.plain import PlainExecutor
from graph.core.scalars import SCALAR_MAP, BigInt


@strawberry.enum
class Color(enum.Enum):
    RED = "RED"
    BLUE = "BLUE"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Leaf(Named):
    name: str
    color: Color
    size: int | None
    big: BigInt
    price: Decimal
    at: datetime


@strawberry.type
class Branch:
    label: str
    leaves: list[Leaf]
    first: Leaf | None
    strict: Leaf
    tags: list[str | None]

    @strawberry.field
    def computed(self) -> str:
        return self.label.upper()

    @strawberry.field
    def failing(self) -> int:
        raise RuntimeError("resolver failed")


def leaf(name: Any, color: Any = Color.RED, size: Any = 1) -> Leaf:
    return Leaf(name=name, color=color, size=size, big=BigInt(2**40), price=Decimal("0.000000889"), at=datetime(2026, 1, 2, tzinfo=UTC))


BRANCHES: dict[str, list[Branch]] = {}


@strawberry.type
class Query:
    @strawberry.field
    def branches(self, which: str) -> list[Branch]:
        return BRANCHES[which]

    @strawberry.field
    async def later(self, which: str) -> list[Branch]:
        return BRANCHES[which]

    @strawberry.field
    def named(self) -> list[Named]:
        return [leaf("n")]


class CountingPlain(PlainExecutor):
    fields = 0

    def execute_field(self, *args: Any, **kwargs: Any) -> Any:
        CountingPlain.fields += 1
        return super().execute_field(*args, **kwargs)


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def branch_events(self, count: int) -> AsyncGenerator[Branch, None]:
        for n in range(count):
            yield Branch(label=f"e{n}", leaves=[leaf(f"x{n}")], first=leaf("f"), strict=leaf("s"), tags=["t"])


class RecordingPlain(PlainExecutor):
    """Keeps every executor made, the subscription's own first (each event's is a copy of it)."""

    made: ClassVar[list[PlainExecutor]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordingPlain.made.append(self)


def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    config = StrawberryConfig(scalar_map=SCALAR_MAP)
    reference = strawberry.Schema(query=Query, config=config, execution_context_class=StrawberryGraphQLCoreExecutionContext)
    plain = strawberry.Schema(query=Query, config=config, execution_context_class=CountingPlain)
    return reference, plain


REFERENCE, PLAIN = schemas()

SELECTION = """
  label computed tags
  leaves { name color size big price at __typename ... on Named { alias: name } }
  first { name } strict { name color }
"""

CASES: dict[str, Callable[[], list[Branch]]] = {
    "fine": lambda: [Branch(label="b", leaves=[leaf("x"), leaf("y", Color.BLUE, None)], first=None, strict=leaf("s"), tags=["t", None])],
    "null in a non-null leaf": lambda: [Branch(label="b", leaves=[leaf("x"), leaf(None)], first=leaf("f"), strict=leaf("s"), tags=[])],
    "null in a non-null object": lambda: [Branch(label="b", leaves=[], first=None, strict=None, tags=[])],  # type: ignore[arg-type]
    "a leaf that does not coerce": lambda: [Branch(label="b", leaves=[leaf("x", size="many")], first=None, strict=leaf("s"), tags=[])],
    "an enum value that is not one": lambda: [Branch(label="b", leaves=[leaf("x", color="GREEN")], first=None, strict=leaf("s"), tags=[])],
    "an object of the wrong type": lambda: [Branch(label="b", leaves=[leaf("x"), "not a leaf"], first=None, strict=leaf("s"), tags=[])],  # type: ignore[list-item]
    "a tuple and a generator for lists": lambda: [
        Branch(label="b", leaves=(leaf("x"),), first=None, strict=leaf("s"), tags=(t for t in ["g"]))  # type: ignore[arg-type]
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("root", ["branches", "later"])
async def test_answers_and_errors_are_graphql_cores(case: str, root: str) -> None:
    query = f'query($skip: Boolean!) {{ {root}(which: "{case}") {{ {SELECTION} skipped: label @skip(if: $skip) }} named {{ name }} }}'
    for skip in (True, False):
        BRANCHES[case] = CASES[case]()  # a generator is read once
        expected = await REFERENCE.execute(query, variable_values={"skip": skip})
        BRANCHES[case] = CASES[case]()
        got = await PLAIN.execute(query, variable_values={"skip": skip})
        assert got.data == expected.data
        assert [(e.message, e.path) for e in got.errors or []] == [(e.message, e.path) for e in expected.errors or []]


async def test_a_resolver_below_still_runs_and_fails_alone() -> None:
    BRANCHES["fine"] = CASES["fine"]()
    query = '{ branches(which: "fine") { label failing leaves { name } } }'
    expected = await REFERENCE.execute(query)
    got = await PLAIN.execute(query)
    assert got.data == expected.data
    assert [(e.message, e.path) for e in got.errors or []] == [(e.message, e.path) for e in expected.errors or []]


async def test_graphql_core_completes_only_the_fields_that_are_not_plain() -> None:
    BRANCHES["many"] = [
        Branch(label=f"b{n}", leaves=[leaf(f"x{m}") for m in range(20)], first=leaf("f"), strict=leaf("s"), tags=["t"]) for n in range(5)
    ]
    CountingPlain.fields = 0
    result = await PLAIN.execute('{ branches(which: "many") { label computed leaves { name color size } first { name } } }')
    assert result.errors is None
    assert result.data is not None and len(result.data["branches"]) == 5
    # the root field, and per branch its resolver field and the plain fields beside it (graphql-core
    # completes the branch, which has a resolver): label, computed, leaves, first; none of the 100 leaves
    assert CountingPlain.fields == 1 + 5 * 4


def test_a_resolve_hook_sees_every_field() -> None:
    seen: list[str] = []

    class Hook(strawberry.extensions.SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: GraphQLResolveInfo[Any], *args: Any, **kwargs: Any) -> Any:
            seen.append(info.field_name)
            return _next(root, info, *args, **kwargs)

    schema = strawberry.Schema(
        query=Query, config=StrawberryConfig(scalar_map=SCALAR_MAP), execution_context_class=PlainExecutor, extensions=[Hook]
    )
    BRANCHES["fine"] = CASES["fine"]()
    result = schema.execute_sync('{ branches(which: "fine") { leaves { name } } }')
    assert result.errors is None
    assert seen.count("name") == 2


async def test_a_long_subscription_s_memos_do_not_grow_with_its_events() -> None:
    schema = strawberry.Schema(
        query=Query, subscription=Subscription, config=StrawberryConfig(scalar_map=SCALAR_MAP), execution_context_class=RecordingPlain
    )
    RecordingPlain.made.clear()
    sizes: list[tuple[int, int]] = []
    labels: list[str] = []
    stream = await schema.subscribe("subscription { branchEvents(count: 40) { label leaves { name color } first { name } } }")
    assert not isinstance(stream, ExecutionResult)
    async for result in stream:
        assert result.errors is None and result.data is not None
        labels.append(result.data["branchEvents"]["label"])
        subscription_executor = RecordingPlain.made[0]
        sizes.append((len(subscription_executor._relevant_sub_fields), len(subscription_executor._plans)))
    assert labels == [f"e{n}" for n in range(40)]
    # what each event collects and plans is its own: the subscription's memos are the same after
    # the fortieth event as after the first (shared, they gained entries on every event)
    assert sizes[-1] == sizes[0]
