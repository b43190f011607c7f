"""Money in and limits out, through the graph: top-ups and the balance history, low-balance
thresholds, hard budgets, quotas set by administrators, price caps and center sets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from resolvers.billing.budgets import CHANNEL as BUDGET_CHANNEL
from tests.billing_helpers import PRICE, money
from tests.client import GraphQLClient
from tests.conftest import Gateway, local_center, require_service
from tests.jobs_helpers import SUBMIT, python_job, submit, wait_for_state
from tests.waiting import eventually, subscribed

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.both_databases  # balances, entries, alerts and quotas are written under the database's locks

TOP_UP = """
mutation($a: ID!, $amount: Decimal!, $ref: String!) {
  topUp(input: {accountId: $a, amount: $amount, reference: $ref, clientMutationId: "t"}) {
    account { balance { amount } } userErrors { code field message } clientMutationId } }
"""
HISTORY = """
{ viewer { balanceHistory(first: 20) { totalCount edges { node { kind amount { amount } balanceAfter { amount } reference description } } } } }
"""
THRESHOLD = """
mutation($a: ID!, $amount: Decimal) { setLowBalanceThreshold(input: {accountId: $a, amount: $amount}) {
  account { lowBalanceThreshold { amount } } userErrors { code field } } }
"""
SET_QUOTA = """
mutation($a: ID!, $units: Float, $mode: QuotaMode) { setQuota(input: {accountId: $a, maxStandardUnits: $units, mode: $mode}) {
  account { quota { maxStandardUnits mode } } userErrors { code field } } }
"""
HARD_BUDGET = """
mutation($amount: Decimal, $hard: Boolean!) { setBudget(input: {amount: $amount, hard: $hard}) {
  account { budget { amount { amount } hard } } userErrors { code } } }
"""
ALERTS = "subscription { budgetAlerts { kind threshold budget { amount } spent { amount } } }"
OFFERS = """
query($request: ResourceRequestInput!) { offers(request: $request) { center { name } feasible reason pricePerHour { amount } } }
"""
CENTERS = "{ centers { edges { node { id name } } } }"


async def account_id(gql: GraphQLClient) -> str:
    return str((await gql.execute("{ viewer { id } }"))["viewer"]["id"])


async def refusal(gql: GraphQLClient, job: dict[str, Any]) -> list[dict[str, Any]]:
    payload = (await gql.execute(SUBMIT, {"input": job}))["submitJob"]
    assert payload["job"] is None, payload
    return list(payload["userErrors"])


async def center_ids(gql: GraphQLClient) -> dict[str, str]:
    return {edge["node"]["name"]: edge["node"]["id"] for edge in (await gql.execute(CENTERS))["centers"]["edges"]}


async def test_a_top_up_credits_once_per_reference_and_is_its_own_history_entry(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    admin, member = gateway.admin, gateway.client
    account = await account_id(member)
    first = (await admin.execute(TOP_UP, {"a": account, "amount": "25.5", "ref": "invoice-1"}))["topUp"]
    assert first == {"account": {"balance": {"amount": "1025.500000"}}, "userErrors": [], "clientMutationId": "t"}
    again = (await admin.execute(TOP_UP, {"a": account, "amount": "25.500000", "ref": "invoice-1"}))["topUp"]
    assert again["userErrors"] == [] and again["account"]["balance"]["amount"] == "1025.500000"  # credited once
    other = (await admin.execute(TOP_UP, {"a": account, "amount": "30", "ref": "invoice-1"}))["topUp"]
    assert other["account"] is None and [e["code"] for e in other["userErrors"]] == ["REFERENCE_REUSED"]
    for bad in ("0", "-5", "1.0000001"):
        refused = (await admin.execute(TOP_UP, {"a": account, "amount": bad, "ref": f"bad-{bad}"}))["topUp"]
        assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [("INVALID_AMOUNT", ["amount"])], bad
    blank = (await admin.execute(TOP_UP, {"a": account, "amount": "1", "ref": "  "}))["topUp"]
    assert [e["code"] for e in blank["userErrors"]] == ["INVALID_REFERENCE"]
    nobody = (await admin.execute(TOP_UP, {"a": "QWNjb3VudDo5OTk5", "amount": "1", "ref": "x"}))["topUp"]
    assert [e["code"] for e in nobody["userErrors"]] == ["ACCOUNT_NOT_FOUND"]
    forbidden = (await member.post(TOP_UP, {"a": account, "amount": "1", "ref": "mine"})).json()
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await money(member))["balance"] == Decimal("1025.5")  # nothing else was credited

    job = await submit(member, python_job("print(1)"))
    await wait_for_state(member, job["id"], {"SUCCEEDED"})
    history = (await member.execute(HISTORY))["viewer"]["balanceHistory"]
    kinds = [(edge["node"]["kind"], edge["node"]["reference"]) for edge in history["edges"]]
    assert kinds == [("USAGE", None), ("TOP_UP", "invoice-1")] and history["totalCount"] == 2
    usage, top_up = (edge["node"] for edge in history["edges"])
    assert top_up["amount"]["amount"] == "25.500000" and top_up["balanceAfter"]["amount"] == "1025.500000"
    charged = Decimal(usage["amount"]["amount"])
    assert charged < 0 and Decimal(usage["balanceAfter"]["amount"]) == Decimal("1025.5") + charged
    assert (await money(member))["balance"] == Decimal(usage["balanceAfter"]["amount"])


async def test_a_low_balance_threshold_blocks_submissions_and_alerts_once(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    admin, member = gateway.admin, gateway.client
    account = await account_id(member)
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async for data in member.subscribe(ALERTS):
            seen.append(data["budgetAlerts"])

    watcher = await subscribed(gateway.runtime.bus, BUDGET_CHANNEL, watch())
    try:
        set_to = (await admin.execute(THRESHOLD, {"a": account, "amount": "999.5"}))["setLowBalanceThreshold"]
        assert set_to == {"account": {"lowBalanceThreshold": {"amount": "999.500000"}}, "userErrors": []}
        # a one-minute job holds 1.92 (0.032 a second): it would leave less than 999.5 available
        errors = await refusal(member, python_job("print(1)"))
        assert [error["code"] for error in errors] == ["INSUFFICIENT_BALANCE"] and "999.5" in errors[0]["message"]
        assert (await member.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0
        await refusal(member, python_job("print(2)"))
        await eventually(lambda: seen, "a LOW_BALANCE alert")
        assert [(a["kind"], a["budget"]["amount"], a["spent"]["amount"]) for a in seen] == [("LOW_BALANCE", "999.500000", "998.080000")]
        lower = (await admin.execute(THRESHOLD, {"a": account, "amount": "990"}))["setLowBalanceThreshold"]
        assert lower["userErrors"] == []
        await submit(member, python_job("print(3)"))
        negative = (await admin.execute(THRESHOLD, {"a": account, "amount": "-1"}))["setLowBalanceThreshold"]
        assert [e["code"] for e in negative["userErrors"]] == ["INVALID_AMOUNT"]
        removed = (await admin.execute(THRESHOLD, {"a": account, "amount": None}))["setLowBalanceThreshold"]
        assert removed == {"account": {"lowBalanceThreshold": None}, "userErrors": []}
        assert len(seen) == 1  # told once this month
    finally:
        watcher.cancel()


async def test_a_hard_budget_refuses_what_would_cross_it_and_a_soft_one_only_alerts(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    member = gateway.client
    hard = (await member.execute(HARD_BUDGET, {"amount": "1.5", "hard": True}))["setBudget"]
    assert hard == {"account": {"budget": {"amount": {"amount": "1.500000"}, "hard": True}}, "userErrors": []}
    errors = await refusal(member, python_job("print(1)"))  # holds 1.92
    assert [error["code"] for error in errors] == ["BUDGET_EXCEEDED"] and "1.5" in errors[0]["message"]
    fits = await submit(member, python_job("print(1)", minutes=0.5))  # holds 0.96
    await wait_for_state(member, fits["id"], {"SUCCEEDED"})
    soft = (await member.execute(HARD_BUDGET, {"amount": "1.5", "hard": False}))["setBudget"]
    assert soft["account"]["budget"]["hard"] is False
    await submit(member, python_job("print(2)"))


async def test_set_quota_has_the_cli_modes_and_shows_on_the_account(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("big", cores=4)])
    admin, member = gateway.admin, gateway.client
    account = await account_id(member)
    core = gateway.runtime.catalog.get("cpu-core")
    assert core is not None
    refuse = (await admin.execute(SET_QUOTA, {"a": account, "units": core.standard_units, "mode": "REFUSE"}))["setQuota"]
    assert refuse == {"account": {"quota": {"maxStandardUnits": core.standard_units, "mode": "REFUSE"}}, "userErrors": []}
    two_cores = python_job("print(1)", request={"devices": 2, "maxDurationMinutes": 1})
    assert [error["code"] for error in await refusal(member, two_cores)] == ["QUOTA_EXCEEDED"]
    queue = (await admin.execute(SET_QUOTA, {"a": account, "units": core.standard_units, "mode": "QUEUE"}))["setQuota"]
    assert queue["account"]["quota"]["mode"] == "QUEUE"
    waiting = await submit(member, two_cores)
    assert waiting["state"] == "QUEUED"
    default = (await admin.execute(SET_QUOTA, {"a": account, "units": 10.0, "mode": None}))["setQuota"]
    assert default["account"]["quota"] == {"maxStandardUnits": 10.0, "mode": "QUEUE"}  # the gateway's quota_mode
    assert (await wait_for_state(member, waiting["id"], {"SUCCEEDED", "FAILED"}, timeout=30))["state"] == "SUCCEEDED"
    lifted = (await admin.execute(SET_QUOTA, {"a": account, "units": None}))["setQuota"]
    assert lifted == {"account": {"quota": None}, "userErrors": []}
    for units in (0.0, -1.0):
        bad = (await admin.execute(SET_QUOTA, {"a": account, "units": units}))["setQuota"]
        assert [e["code"] for e in bad["userErrors"]] == ["INVALID_QUOTA"]
    forbidden = (await member.post(SET_QUOTA, {"a": account, "units": 1.0})).json()
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_price_caps_and_center_sets_decide_placement(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("cheap", price="0.50"), local_center("dear", price="2.00")])
    member = gateway.client
    ids = await center_ids(member)
    core = gateway.runtime.catalog.get("cpu-core")
    assert core is not None
    cheap_hour, dear_hour = Decimal("0.50") * Decimal(str(core.standard_units)), Decimal("2.00") * Decimal(str(core.standard_units))
    cap = str((cheap_hour + dear_hour) / 2)
    capped = (await member.execute(OFFERS, {"request": {"devices": 1, "maxDurationMinutes": 5, "maxPricePerHour": cap}}))["offers"]
    by_name = {offer["center"]["name"]: offer for offer in capped}
    assert by_name["cheap"]["feasible"] is True
    assert by_name["dear"]["feasible"] is False and by_name["dear"]["reason"].startswith("OVER_PRICE_CAP")

    only_dear = await submit(member, python_job("print(1)", request={"devices": 1, "maxDurationMinutes": 1, "centerIds": [ids["dear"]]}))
    assert only_dear["center"]["name"] == "dear"
    not_cheap = await submit(
        member, python_job("print(1)", request={"devices": 1, "maxDurationMinutes": 1, "excludeCenterIds": [ids["cheap"]]})
    )
    assert not_cheap["center"]["name"] == "dear"
    placement = await member.execute(
        "query($id: ID!) { node(id: $id) { ... on Job { placement { candidates { center { name } reason } } } } }", {"id": not_cheap["id"]}
    )
    reasons = {c["center"]["name"]: c["reason"] for c in placement["node"]["placement"]["candidates"]}
    assert reasons["cheap"].startswith("CENTER_EXCLUDED")

    too_low = await refusal(member, python_job("print(1)", request={"devices": 1, "maxDurationMinutes": 1, "maxPricePerHour": "0.000001"}))
    assert [error["code"] for error in too_low] == ["NO_FEASIBLE_CENTER"]
    assert "cheap: OVER_PRICE_CAP" in too_low[0]["message"] and "dear: OVER_PRICE_CAP" in too_low[0]["message"]
    unknown = await refusal(
        member, python_job("print(1)", request={"devices": 1, "maxDurationMinutes": 1, "centerIds": [ids["cheap"], "bm9wZQ"]})
    )
    assert [(e["code"], e["field"]) for e in unknown] == [("CENTER_NOT_FOUND", ["request", "centerIds", "1"])]
    excluded_unknown = await refusal(
        member, python_job("print(1)", request={"devices": 1, "maxDurationMinutes": 1, "excludeCenterIds": ["Q29tcHV0ZUNlbnRlcjo5OTk"]})
    )
    assert [(e["code"], e["field"]) for e in excluded_unknown] == [("CENTER_NOT_FOUND", ["request", "excludeCenterIds", "0"])]
    bad_cap = await refusal(member, python_job("print(1)", request={"devices": 1, "maxDurationMinutes": 1, "maxPricePerHour": "-1"}))
    assert [e["code"] for e in bad_cap] == ["INVALID_PRICE_CAP"]
    assert (await member.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 2  # the refusals created nothing


async def test_a_waiting_job_keeps_its_center_set_when_the_queue_places_it(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("one", cores=1), local_center("two", cores=1, price="5.00")])
    member = gateway.client
    ids = await center_ids(member)
    holder = await submit(
        member,
        python_job(
            "import time; time.sleep(1.5)", name="holder", request={"devices": 1, "maxDurationMinutes": 1, "centerIds": [ids["one"]]}
        ),
    )
    assert holder["center"]["name"] == "one"
    waiter = await submit(
        member, python_job("print(1)", name="waiter", request={"devices": 1, "maxDurationMinutes": 1, "centerIds": [ids["one"]]})
    )
    assert waiter["state"] == "QUEUED" and waiter["center"] is None  # "two" is free but not in its set
    await wait_for_state(member, waiter["id"], {"SUCCEEDED"}, timeout=30)
    placed = await member.execute("query($id: ID!) { node(id: $id) { ... on Job { center { name } } } }", {"id": waiter["id"]})
    assert placed["node"]["center"]["name"] == "one"


async def test_the_cli_sets_the_same_quota_as_the_graph(gateway_factory: Any, database: Any, tmp_path: Path) -> None:
    """Through the Redis bus the gateway hears of each change (it caches the account with the token)."""
    require_service("127.0.0.1", 6379, "Redis")
    bus = {"bus_url": "redis://127.0.0.1:6379/0", "bus_prefix": f"aicn-test-{uuid.uuid4().hex[:12]}:"}
    gateway: Gateway = await gateway_factory(**bus)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "AICN_DATA_DIR": str(tmp_path / "cli"), "AICN_DATABASE_URL": database.url}
    environment.update(AICN_BUS_URL=bus["bus_url"], AICN_BUS_PREFIX=bus["bus_prefix"])
    if database.schema:
        environment["AICN_DATABASE_SCHEMA"] = database.schema

    def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "aicn.cli", "set-quota", *arguments]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)

    assert (await gateway.client.execute("{ viewer { quota { mode } } }"))["viewer"]["quota"] is None  # now cached
    done = await asyncio.to_thread(cli, "default", "2.5", "--mode", "refuse")
    assert done.returncode == 0 and "mode refuse" in done.stdout, done.stderr
    quota = (await gateway.client.execute("{ viewer { quota { maxStandardUnits mode } } }"))["viewer"]["quota"]
    assert quota == {"maxStandardUnits": 2.5, "mode": "REFUSE"}
    bad = await asyncio.to_thread(cli, "default", "-1")
    assert bad.returncode == 2 and "INVALID_QUOTA" in bad.stderr
    nobody = await asyncio.to_thread(cli, "nobody", "1")
    assert nobody.returncode == 1 and "ACCOUNT_NOT_FOUND" in nobody.stderr
    lifted = await asyncio.to_thread(cli, "default", "none")
    assert lifted.returncode == 0
    assert (await gateway.client.execute("{ viewer { quota { mode } } }"))["viewer"]["quota"] is None
