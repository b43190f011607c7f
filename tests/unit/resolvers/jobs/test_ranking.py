"""Placement ranking: startable centers first in the policy's order, then busy ones, then those
that cannot run the job at all, each with its score and reason; and the placement document."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from connectors.catalog import DEFAULT_CATALOG
from resolvers.common.errors import CenterFault
from resolvers.jobs.offers import OfferData, make_offer
from resolvers.jobs.ranking import placement_document as document
from resolvers.jobs.ranking import rank
from resolvers.jobs.resources import ResourceRequest
from tests.unit.resolvers.jobs.offer_parts import NOW, center, offer_at

POLICIES = ("CHEAPEST", "EARLIEST_START", "DATA_LOCAL")


def down(center_id: int) -> OfferData:
    return make_offer(
        center(center_id), CenterFault("CENTER_TIMEOUT", "x", "x", "no answer"), ResourceRequest(60), DEFAULT_CATALOG, [], NOW
    )


def order(offers: list[OfferData], policy: str, local: dict[int, int] | None = None) -> list[int]:
    return [candidate.center_id for candidate in rank(offers, policy, NOW, local)]


def test_cheapest_orders_startable_centers_by_price_then_busy_ones_then_the_rest() -> None:
    offers = [down(1), offer_at(2, "0.90"), offer_at(3, "0.10", free=0, busy_minutes=5), offer_at(4, "0.30")]
    assert order(offers, "CHEAPEST") == [4, 2, 3, 1]
    ranked = rank(offers, "CHEAPEST", NOW)
    assert [candidate.score for candidate in ranked[:3]] == [0.00096, 0.00288, 0.00032]  # 0.0032 units a core
    assert ranked[-1].score is None and ranked[-1].reason == "CENTER_DOWN: no answer"


def test_earliest_start_prefers_a_free_dear_center_to_a_busy_cheap_one() -> None:
    offers = [offer_at(1, "0.10", free=0, busy_minutes=30), offer_at(2, "0.90"), offer_at(3, "0.10", free=0, busy_minutes=5)]
    assert order(offers, "EARLIEST_START") == [2, 3, 1]
    scores = [candidate.score for candidate in rank(offers, "EARLIEST_START", NOW)]
    assert scores == [0.0, (timedelta(minutes=5, seconds=1)).total_seconds(), (timedelta(minutes=30, seconds=1)).total_seconds()]


def test_a_busy_center_that_never_frees_up_waits_last_with_an_infinite_score() -> None:
    offers = [offer_at(1, "0.10", free=0), offer_at(2, "0.90", free=0, busy_minutes=10)]
    ranked = rank(offers, "EARLIEST_START", NOW)
    assert [candidate.center_id for candidate in ranked] == [2, 1] and ranked[1].score == float("inf")
    assert document("EARLIEST_START", ranked, chosen=None)["candidates"][1]["score"] is None


def test_data_local_prefers_the_center_holding_more_inputs_then_price() -> None:
    offers = [offer_at(1, "0.10"), offer_at(2, "0.90"), offer_at(3, "0.50")]
    assert order(offers, "DATA_LOCAL", {2: 2, 3: 2, 1: 1}) == [3, 2, 1]
    ranked = rank(offers, "DATA_LOCAL", NOW, {2: 2, 3: 2, 1: 1})
    assert [candidate.score for candidate in ranked] == [2.0, 2.0, 1.0]
    assert "2 input dataset(s) held here" in ranked[0].reason


def test_equal_offers_keep_the_order_of_center_ids() -> None:
    offers = [offer_at(center_id, "0.50") for center_id in (7, 3, 5)]
    for policy in POLICIES:
        assert order(offers, policy) == [3, 5, 7]


def test_each_reason_says_the_price_and_whether_it_can_start() -> None:
    startable, busy = rank([offer_at(1, "0.50"), offer_at(2, "0.50", free=0, busy_minutes=1)], "CHEAPEST", NOW)
    assert startable.reason == "0.001600 per hour for 1 x cpu-core; can start now"
    assert busy.reason.startswith("0.001600 per hour for 1 x cpu-core; NOT_ENOUGH_FREE")


def test_the_placement_document_marks_the_chosen_center_and_keeps_the_terms() -> None:
    ranked = rank([offer_at(1, "0.90"), offer_at(2, "0.30"), down(3)], "CHEAPEST", NOW)
    terms = {"2": {"unitPrice": "0.30"}}
    shown = document("CHEAPEST", ranked, chosen=2, waiting="queued behind 1 job", terms=terms)
    assert shown["policy"] == "CHEAPEST" and shown["waiting"] == "queued behind 1 job" and shown["terms"] == terms
    assert [(entry["centerId"], entry["chosen"]) for entry in shown["candidates"]] == [(2, True), (1, False), (3, False)]
    assert shown["candidates"][2] == {"centerId": 3, "score": None, "chosen": False, "reason": "CENTER_DOWN: no answer"}
    unplaced = document(None, ranked, chosen=None)
    assert unplaced["terms"] == {} and not any(entry["chosen"] for entry in unplaced["candidates"])


offers = st.lists(
    st.tuples(
        st.sampled_from(["0.10", "0.50", "0.90", "2.00"]),
        st.integers(0, 4),
        st.none() | st.integers(-5, 120),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
).map(
    lambda specs: [
        down(n) if is_down else offer_at(n, price, free=free, devices=2, busy_minutes=minutes)
        for n, (price, free, minutes, is_down) in enumerate(specs, start=1)
    ]
)


@given(offers, st.sampled_from(POLICIES), st.dictionaries(st.integers(1, 6), st.integers(0, 3)))
def test_a_ranking_lists_every_center_once_in_its_three_groups(offers: list[OfferData], policy: str, local: dict[int, int]) -> None:
    ranked = rank(offers, policy, NOW, local)
    assert sorted(candidate.center_id for candidate in ranked) == sorted(offer.center.id for offer in offers)
    groups = [0 if c.offer.feasible else 1 if c.offer.could_run else 2 for c in ranked]
    assert groups == sorted(groups)
    assert all((candidate.score is None) == (group == 2) for candidate, group in zip(ranked, groups, strict=True))
    startable = [candidate for candidate, group in zip(ranked, groups, strict=True) if group == 0]
    if policy == "CHEAPEST":
        assert [c.score for c in startable] == sorted(c.score for c in startable if c.score is not None)
    if policy == "DATA_LOCAL":
        held = [local.get(c.center_id, 0) for c in startable]
        assert held == sorted(held, reverse=True)
    if policy == "EARLIEST_START":
        assert all(c.score == 0.0 for c in startable)
