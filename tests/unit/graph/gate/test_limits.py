"""The request limits applied to the raw text and the measured shape, the cost report, the
THROTTLED error, and text the database could not store."""

from __future__ import annotations

from typing import Any

from graphql import parse
from hypothesis import given
from hypothesis import strategies as st

from aicn.security_settings import LimitSettings
from graph.gate.cost import Prescan, QueryShape
from graph.gate.limits import check_shape, check_text, cost_report, text_error, throttled_error
from resolvers.access.throttle import ThrottleDecision

LIMITS = LimitSettings(
    max_depth=4, max_aliases=3, max_tokens=50, max_query_length=200, max_root_fields=2, max_cost=100, bucket_size=500, restore_rate=50.0
)


def refused(errors: list[Any]) -> dict[str, tuple[int, int]]:
    """limit name -> (value, maximum) of each QUERY_TOO_COMPLEX error."""
    assert all(error.extensions["code"] == "QUERY_TOO_COMPLEX" for error in errors)
    return {error.extensions["limit"]: (error.extensions["value"], error.extensions["maximum"]) for error in errors}


def test_text_at_the_limits_passes_and_one_past_each_is_refused() -> None:
    assert check_text("x" * 200, Prescan(tokens=50, aliases=3, operations=1), LIMITS) == []
    errors = check_text("x" * 201, Prescan(tokens=51, aliases=4, operations=1), LIMITS)
    assert refused(errors) == {"length": (201, 200), "tokens": (51, 50), "aliases": (4, 3)}
    assert errors[0].message == "the query is 201 characters long; the limit is 200"


def test_aliases_in_the_text_are_only_judged_with_one_operation() -> None:
    assert check_text("{}", Prescan(tokens=5, aliases=40, operations=2), LIMITS) == []
    assert check_text("{}", Prescan(tokens=5, aliases=40, operations=0), LIMITS) == []


def test_a_shape_at_the_limits_passes_and_one_past_each_is_refused() -> None:
    assert check_shape(QueryShape(cost=100, depth=4, aliases=3, root_fields=("a", "b")), LIMITS) == []
    errors = check_shape(QueryShape(cost=101, depth=5, aliases=4, root_fields=("a", "b", "c")), LIMITS)
    assert refused(errors) == {"depth": (5, 4), "aliases": (4, 3), "rootFields": (3, 2), "cost": (101, 100)}
    assert "cost 101 points; one operation may cost at most 100" in errors[-1].message


@given(cost=st.integers(0, 300), depth=st.integers(0, 10), aliases=st.integers(0, 10), roots=st.integers(0, 5))
def test_a_shape_is_refused_exactly_for_the_limits_it_passes(cost: int, depth: int, aliases: int, roots: int) -> None:
    shape = QueryShape(cost=cost, depth=depth, aliases=aliases, root_fields=tuple("r" * roots))
    over = {
        name
        for name, value, limit in (("cost", cost, 100), ("depth", depth, 4), ("aliases", aliases, 3), ("rootFields", roots, 2))
        if value > limit
    }
    assert set(refused(check_shape(shape, LIMITS))) == over


def test_the_cost_report_is_shaped_like_shopifys() -> None:
    assert cost_report(12, 487.9, LIMITS) == {
        "requestedQueryCost": 12,
        "throttleStatus": {"maximumAvailable": 500, "currentlyAvailable": 487, "restoreRate": 50.0},
    }


def test_a_throttled_error_says_when_to_retry() -> None:
    error = throttled_error(ThrottleDecision(allowed=False, cost=90, available=10.6, capacity=500, restore_rate=50.0))
    assert error.extensions == {"code": "THROTTLED", "retryAfter": 2}
    assert error.message == "the operation costs 90 points and 10 are available; retry in 2s"


def test_nul_or_lone_surrogates_anywhere_in_the_variables_are_refused() -> None:
    document = parse("{ viewer { name } }")
    for variables in ({"a": "x\x00y"}, {"a": ["ok", {"b": "\x00"}]}, {"x\x00": 1}, {"a": "\ud800"}, {"a": {"b": ["\udfff"]}}):
        error = text_error("{ viewer { name } }", document, variables)
        assert error is not None and error.extensions == {"code": "BAD_USER_INPUT"}, variables
    assert text_error("{ viewer { name } }", document, {"a": ["ok", {"b": "日本語 ✓"}], "n": 3, "f": None}) is None


def test_an_escaped_nul_in_a_literal_is_refused() -> None:
    query = '{ jobs(filter: {nameContains: "a\\u0000b"}) { totalCount } }'
    assert text_error(query, parse(query), None) is not None
    harmless = '{ jobs(filter: {nameContains: "a\\u0041b"}) { totalCount } }'
    assert text_error(harmless, parse(harmless), None) is None


@given(st.text())
def test_text_is_refused_exactly_when_it_has_nul_or_cannot_be_utf8(text: str) -> None:
    document = parse("{ viewer { name } }")
    try:
        text.encode("utf-8")
        storable = "\x00" not in text
    except UnicodeEncodeError:
        storable = False
    assert (text_error("{ viewer { name } }", document, {"v": [text]}) is None) == storable
