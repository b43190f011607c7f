"""Offers: what one center would charge for a resource request, whether it can start now,
and when it could if it is busy."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connectors.catalog import DEFAULT_CATALOG
from resolvers.common.errors import CenterFault
from resolvers.jobs.offers import candidate_models, devices_of, make_offer
from resolvers.jobs.resources import ResourceRequest
from tests.unit.resolvers.jobs.offer_parts import NOW, busy, center, unit


def test_a_center_that_cannot_answer_offers_nothing() -> None:
    where = center()
    offer = make_offer(
        where, CenterFault("CENTER_TIMEOUT", "id", "c1", "no answer within 2s"), ResourceRequest(10), DEFAULT_CATALOG, [], NOW
    )
    assert not offer.feasible and not offer.could_run
    assert offer.reason == "CENTER_DOWN: no answer within 2s" and offer.reason_code == "CENTER_DOWN"


def test_a_job_longer_than_the_center_allows_is_refused_there() -> None:
    where = center(max_duration_minutes=30)
    assert make_offer(where, [unit(where)], ResourceRequest(30, devices=1), DEFAULT_CATALOG, [], NOW).feasible
    longer = make_offer(where, [unit(where)], ResourceRequest(30.5, devices=1), DEFAULT_CATALOG, [], NOW)
    assert longer.reason_code == "DURATION_OVER_LIMIT" and "30 minutes" in (longer.reason or "") and not longer.could_run


def test_a_center_without_the_accelerator_says_which_it_lacks() -> None:
    where = center()
    offer = make_offer(where, [unit(where)], ResourceRequest(10, accelerator="nvidia-h100-80gb"), DEFAULT_CATALOG, [], NOW)
    assert offer.reason_code == "NO_SUCH_DEVICE" and "nvidia-h100-80gb" in (offer.reason or "")


def test_the_price_is_per_standard_unit_hour() -> None:
    where = center()
    offer = make_offer(
        where,
        [unit(where, "nvidia-a100-80gb", total=8, price="2.00")],
        ResourceRequest(90, accelerator="nvidia-a100-80gb", devices=2),
        DEFAULT_CATALOG,
        [],
        NOW,
    )
    # 2 x 3.12 standard units at 2.00 an hour, for an hour and a half
    assert offer.feasible and offer.reason is None and offer.estimated_start == NOW
    assert offer.devices == 2 and offer.standard_units == 6.24
    assert offer.price_per_hour == Decimal("12.48") and offer.max_cost == Decimal("18.72")


def test_cheap_devices_keep_six_places_rather_than_round_to_zero() -> None:
    where = center()
    offer = make_offer(where, [unit(where, price="0.50")], ResourceRequest(1, devices=1), DEFAULT_CATALOG, [], NOW)
    assert offer.price_per_hour == Decimal("0.001600") and offer.max_cost == Decimal("0.000027")


def test_more_devices_than_the_center_has_cannot_run_there() -> None:
    where = center()
    offer = make_offer(where, [unit(where, total=4)], ResourceRequest(10, devices=5), DEFAULT_CATALOG, [], NOW)
    assert offer.reason_code == "NOT_ENOUGH_DEVICES" and not offer.could_run and offer.unit is None


def test_over_quota_is_priced_but_cannot_run() -> None:
    where = center()
    offer = make_offer(where, [unit(where)], ResourceRequest(10, devices=4), DEFAULT_CATALOG, [], NOW, quota_left=0.01)
    assert offer.reason_code == "OVER_QUOTA" and offer.price_per_hour is not None
    assert not offer.feasible and not offer.could_run and offer.estimated_start is None
    within = make_offer(where, [unit(where)], ResourceRequest(10, devices=4), DEFAULT_CATALOG, [], NOW, quota_left=0.0128)
    assert within.feasible


def test_a_busy_center_starts_when_enough_running_jobs_reach_their_limit() -> None:
    where, elsewhere = center(1), center(2)
    holders = [busy(where, 1, 50), busy(where, 2, 20), busy(elsewhere, 4, 1), busy(where, 4, 5, model="nvidia-h20-96gb")]
    offer = make_offer(where, [unit(where, total=4, free=1)], ResourceRequest(10, devices=3), DEFAULT_CATALOG, holders, NOW)
    # two more are needed: the job ending in 20 minutes frees them; other centers and models do not count
    assert offer.reason_code == "NOT_ENOUGH_FREE" and offer.could_run and not offer.feasible
    assert offer.estimated_start == NOW + timedelta(minutes=20, seconds=1)
    never = make_offer(where, [unit(where, total=4, free=0)], ResourceRequest(10, devices=4), DEFAULT_CATALOG, holders, NOW)
    assert never.could_run and never.estimated_start is None


def test_a_limit_already_past_frees_devices_now() -> None:
    where = center()
    offer = make_offer(where, [unit(where, free=0)], ResourceRequest(10, devices=1), DEFAULT_CATALOG, [busy(where, 1, -3)], NOW)
    assert offer.estimated_start == NOW + timedelta(seconds=1)


def test_within_a_center_startable_beats_cheaper_and_cheaper_beats_dearer() -> None:
    where = center()
    need = ResourceRequest(10, standard_units=3.0)
    full_cheap = unit(where, "nvidia-a100-80gb", total=1, free=0, price="1.00")
    free_dear = unit(where, "huawei-ascend-910b", total=1, price="5.00")
    free_cheap = unit(where, "nvidia-a100-40gb", total=1, price="2.00")
    assert make_offer(where, [full_cheap, free_dear], need, DEFAULT_CATALOG, [], NOW).unit == free_dear
    assert make_offer(where, [free_dear, free_cheap, full_cheap], need, DEFAULT_CATALOG, [], NOW).unit == free_cheap


def test_what_a_need_asks_of_each_model() -> None:
    assert devices_of(ResourceRequest(10, devices=3), DEFAULT_CATALOG, "nvidia-h100-80gb") == 3
    assert devices_of(ResourceRequest(10, standard_units=10.0), DEFAULT_CATALOG, "nvidia-h100-80gb") == 2  # 9.894 each
    assert devices_of(ResourceRequest(10, standard_units=9.894), DEFAULT_CATALOG, "nvidia-h100-80gb") == 1
    assert devices_of(ResourceRequest(10, standard_units=0.001), DEFAULT_CATALOG, "nvidia-h100-80gb") == 1
    assert devices_of(ResourceRequest(10, cpus=6), DEFAULT_CATALOG, "cpu-core") == 6
    assert devices_of(ResourceRequest(10, cpus=6), DEFAULT_CATALOG, "nvidia-h100-80gb") == 1
    assert devices_of(ResourceRequest(10), DEFAULT_CATALOG, "unknown-model") == 1


def test_which_models_may_serve_a_need() -> None:
    assert candidate_models(ResourceRequest(10, accelerator="nvidia-h20-96gb", devices=2)) == ("nvidia-h20-96gb",)
    assert candidate_models(ResourceRequest(10, devices=2)) == ("cpu-core",)
    assert candidate_models(ResourceRequest(10, cpus=2)) == ("cpu-core",)
    assert candidate_models(ResourceRequest(10, standard_units=2.0)) is None
    assert candidate_models(ResourceRequest(10)) is None


@given(
    devices=st.integers(1, 12),
    total=st.integers(0, 10),
    free=st.integers(0, 10),
    quota=st.none() | st.floats(0, 0.05),
    minutes=st.floats(0.01, 10_000),
)
def test_an_offer_is_startable_exactly_when_devices_and_quota_allow(
    devices: int, total: int, free: int, quota: float | None, minutes: float
) -> None:
    where = center()
    free = min(free, total)
    offer = make_offer(
        where, [unit(where, total=total, free=free)], ResourceRequest(minutes, devices=devices), DEFAULT_CATALOG, [], NOW, quota
    )
    units = devices * 0.0032
    assert offer.feasible == (devices <= free and (quota is None or units <= quota + 1e-9))
    assert offer.could_run == (devices <= total and (quota is None or units <= quota + 1e-9))
    if offer.feasible:
        assert offer.estimated_start == NOW and offer.reason is None
    else:
        assert offer.reason is not None


@given(devices=st.integers(1, 16), shorter=st.floats(0.01, 5_000), longer=st.floats(0.01, 5_000), price=st.decimals("0.01", "50", places=2))
def test_a_longer_or_larger_job_never_costs_less(devices: int, shorter: float, longer: float, price: Decimal) -> None:
    shorter, longer = sorted((shorter, longer))
    where = center()
    units = [unit(where, "nvidia-h100-80gb", total=32, price=str(price))]
    h100 = "nvidia-h100-80gb"
    small = make_offer(where, units, ResourceRequest(shorter, h100, devices), DEFAULT_CATALOG, [], NOW)
    long = make_offer(where, units, ResourceRequest(longer, h100, devices), DEFAULT_CATALOG, [], NOW)
    large = make_offer(where, units, ResourceRequest(shorter, h100, devices + 1), DEFAULT_CATALOG, [], NOW)
    assert small.max_cost is not None and long.max_cost is not None and large.max_cost is not None
    assert small.max_cost <= long.max_cost and small.max_cost <= large.max_cost
    assert small.price_per_hour is not None and large.price_per_hour is not None and small.price_per_hour < large.price_per_hour
    # the hold covers the whole duration at the hourly price, to the cent's ten-thousandth
    assert abs(small.max_cost - small.price_per_hour * Decimal(str(shorter)) / 60) <= Decimal("0.000001") * (1 + Decimal(str(shorter)))
