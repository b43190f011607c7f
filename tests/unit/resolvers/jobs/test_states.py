"""The graph's job enums are the services' own: one definition, and the schema's names unchanged."""

from __future__ import annotations

from graph.jobs import types as graph_types
from resolvers.jobs import states


def test_the_graph_enums_are_the_service_enums() -> None:
    assert graph_types.JobState is states.JobState
    assert graph_types.JobKind is states.JobKind
    assert graph_types.JobEventKind is states.JobEventKind


def test_the_graph_enums_keep_their_graphql_names() -> None:
    for vocabulary in (states.JobState, states.JobKind, states.JobEventKind):
        definition = vocabulary.__strawberry_definition__  # type: ignore[attr-defined]
        assert definition.name == vocabulary.__name__
        assert [value.name for value in definition.values] == [member.name for member in vocabulary]
