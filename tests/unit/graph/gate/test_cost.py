"""The cost, depth and aliases of an operation, measured on its syntax tree; and the prescan of
the raw text that counts tokens, aliases and operations before any parse."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from graphql import FieldNode, Lexer, NameNode, Source, TokenKind, Visitor, print_ast, visit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from graph.gate import cost as cost_module
from graph.gate.cost import MAX_MULTIPLIER, prescan
from tests.unit.graph.gate.small_schema import SDL, cost, document_of, shape


def test_an_object_costs_one_and_a_scalar_nothing() -> None:
    assert cost("{ viewer { name id } }") == 1
    assert cost("{ viewer { __typename } }") == 1
    assert cost("{ __typename }") == 0


def test_a_connection_costs_one_plus_first_times_each_node() -> None:
    assert cost("{ jobs { edges { node { id } } } }") == 1 + 20  # the default page
    # pageInfo is a value the connection carries: it costs nothing of its own
    assert cost("{ jobs(first: 5) { edges { cursor node { owner { name } } } pageInfo { hasNextPage } } }") == 1 + 5 * 2
    assert cost("{ viewer { jobs(first: 3) { edges { node { owner { jobs(first: 2) { edges { node { id } } } } } } } } }") == (
        1 + 1 + 3 * (1 + 1 + 1 + 2)
    )


def test_a_count_costs_one_and_is_not_multiplied_by_the_page() -> None:
    assert cost("{ jobs(first: 50) { totalCount } }") == 1 + 1


def test_a_list_with_first_or_ids_costs_that_many_items() -> None:
    assert cost("{ recent(first: 7) { id owner { name } } }") == 7 * 2
    assert cost('{ nodes(ids: ["a", "b", "c"]) { id } }') == 3
    assert cost("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a", "b", "c", "d"]}) == 4
    assert cost("{ nodes(ids: []) { id } }") == 1
    assert cost('{ nodes(ids: "a") { id } }') == 1  # one id given as a single value


def test_fields_that_ask_the_centers_cost_more() -> None:
    assert cost("{ capacity { model } }") == 5
    assert cost("{ acceleratorCatalog { model } }") == 1
    assert cost("{ jobs(first: 2) { edges { node { logs(tailLines: 10) } } } }") == 1 + 2 * (1 + 5)


def test_each_mutation_root_field_costs_ten_more() -> None:
    assert cost('mutation { cancelJob(id: "x") { id } }') == 10 + 1
    assert cost('mutation { a: cancelJob(id: "x") { id } b: submitJob(name: "y") { owner { name } } }') == 20 + 1 + 2
    assert cost('mutation { cancelJob(id: "x") { id } __typename }') == 10 + 1


def test_introspection_costs_a_fixed_ten_at_depth_one() -> None:
    measured = shape("{ __schema { types { name fields { name type { name } } } } }")
    assert (measured.cost, measured.depth) == (10, 1)
    assert measured.introspection_only
    assert not shape("{ __typename viewer { name } }").introspection_only


def test_first_is_read_from_literals_and_variables_and_bounded() -> None:
    query = "query($n: Int) { jobs(first: $n) { edges { node { id } } } }"
    assert cost(query, {"n": 50}) == 51
    assert cost(query, {}) == 21 and cost(query, {"n": True}) == 21 and cost(query, {"n": "9"}) == 21
    assert cost("{ jobs(first: 0) { edges { node { id } } } }") == 21
    assert cost("{ jobs(first: -4) { edges { node { id } } } }") == 21
    assert cost("{ jobs(first: " + "9" * 100 + ") { edges { node { id } } } }") == 1 + MAX_MULTIPLIER
    assert cost("{ jobs(first: -" + "9" * 100 + ") { edges { node { id } } } }") == 21
    assert cost(query, {"n": 10**30}) == 1 + MAX_MULTIPLIER


def test_depth_counts_field_levels_and_fragments_add_none() -> None:
    assert shape("{ viewer { jobs { edges { node { id } } } } }").depth == 5
    inline = shape('{ nodes(ids: ["a"]) { ... on Job { owner { name } } } }')
    assert (inline.cost, inline.depth) == (2, 3)
    spread = shape("{ ...F } fragment F on Query { viewer { name } }")
    assert (spread.cost, spread.depth, spread.root_fields) == (1, 2, ("viewer",))


def test_aliases_and_root_fields_are_counted_through_fragments() -> None:
    measured = shape("{ a: viewer { n: name } ...F ... on Query { c: viewer { name } } } fragment F on Query { b: viewer { name } }")
    assert measured.aliases == 4 and measured.root_fields == ("viewer", "viewer", "viewer")


def test_a_fragment_bomb_costs_in_full_but_each_fragment_is_walked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    levels = 20  # each fragment spreads the next twice: 2**20 selections from 21 fragments
    fragments = [f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)]
    bomb = "{ ...F0 }\n" + "\n".join([*fragments, f"fragment F{levels} on Query {{ viewer {{ name }} }}"])
    walked: list[str] = []
    original = cost_module._Walker.selection_set

    def counting(self: Any, selections: Any, parent: Any, page: int | None = None) -> Any:
        walked.append("walk")
        return original(self, selections, parent, page)

    monkeypatch.setattr(cost_module._Walker, "selection_set", counting)
    measured = shape(bomb)
    assert measured.cost == 2**levels and measured.depth == 2
    # the operation, each fragment once, and the one object at the bottom: linear, not 2**20
    assert len(walked) <= levels + 4, len(walked)


def test_cyclic_and_unknown_fragments_measure_as_nothing() -> None:
    cyclic = shape("{ ...A } fragment A on Query { viewer { name } ...B } fragment B on Query { ...A }")
    assert cyclic.cost == 1
    assert shape("{ ...Missing viewer { name } }").cost == 1


def test_fields_unknown_to_the_schema_cost_nothing_but_count_their_depth() -> None:
    measured = shape("{ nope { deeper { deepest } } }")
    assert (measured.cost, measured.depth) == (0, 3)


def test_the_operation_chosen_is_the_one_measured() -> None:
    document = "query A { viewer { name } } query B { jobs { edges { node { id } } } }"
    assert shape(document, operation="A").cost == 1 and shape(document, operation="B").cost == 21


def test_the_prescan_counts_tokens_without_commas_or_comments() -> None:
    scan = prescan('# a comment\n{ viewer(a: 1, b: "x, y") { name, id } }', max_tokens=100)
    # { viewer ( a : 1 b : "x, y" ) { name id } }
    assert scan.tokens == 15 and scan.operations == 1 and scan.aliases == 0


def test_the_prescan_stops_past_the_limit() -> None:
    assert prescan("{ " + "a " * 1000 + "}", max_tokens=10).tokens == 11


def test_the_prescan_counts_aliases_outside_arguments_and_strings() -> None:
    assert prescan('{ a: viewer { b: name } jobs(filter: {name: "c: d"}) { totalCount } }', 100).aliases == 2
    assert prescan("query($n: Int = 3) @x(if: true) { a: viewer { name } }", 100).aliases == 1
    assert prescan('{ viewer { name(format: """ x: { y } """) } }', 100).aliases == 0


def test_the_prescan_counts_operations_but_not_fragments() -> None:
    assert prescan("{ a } { b }", 100).operations == 2
    assert prescan("query A { a } mutation B { b } subscription C { c }", 100).operations == 3
    assert prescan("{ ...F } fragment F on Query { query mutation }", 100).operations == 1


def lexer_tokens(query: str) -> int:
    lexer = Lexer(Source(query))
    count = 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


def with_aliases(query: str, chance: random.Random) -> str:
    """The same query with an alias on some of its fields (the generator writes none)."""
    document = document_of(query)

    class Alias(Visitor):
        def leave_field(self, node: FieldNode, *_args: Any) -> FieldNode | None:
            if chance.random() < 0.3:
                return dataclasses.replace(node, alias=NameNode(value=f"a{chance.randrange(1000)}"))
            return None

    return print_ast(visit(document, Alias()))


generated = st.builds(with_aliases, queries(SDL, fields=["viewer", "jobs", "nodes", "recent", "capacity"]), st.randoms())


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(generated)
def test_the_prescan_agrees_with_the_parser_and_the_measure(query: Any) -> None:
    scan = prescan(query, max_tokens=10**6)
    assert scan.tokens == lexer_tokens(query)
    assert scan.operations == 1
    assert scan.aliases == shape(query).aliases  # exact for one operation without fragments


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(generated)
def test_asking_for_the_same_twice_costs_twice_as_much_and_no_deeper(query: Any) -> None:
    operation = document_of(query).definitions[0]
    body = query[operation.selection_set.loc.start + 1 : operation.selection_set.loc.end - 1]  # type: ignore[attr-defined]
    once, twice = shape(query), shape("{ " + body + " " + body + " }")
    assert twice.cost == 2 * once.cost and twice.depth == once.depth and twice.aliases == 2 * once.aliases


@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_a_larger_page_never_costs_less(small: int, large: int) -> None:
    small, large = sorted((small, large))
    query = "query($n: Int) { jobs(first: $n) { totalCount edges { node { owner { name } } } } }"
    assert cost(query, {"n": small}) <= cost(query, {"n": large})
    assert cost(query, {"n": large}) == 2 + 2 * large
