"""Metering and billing end to end: real gateway, real LOCAL processes, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import os
import subprocess
import sys
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from resolvers.billing.budgets import CHANNEL as BUDGET_CHANNEL
from tests.billing_helpers import (
    BILLS,
    BUDGET_ALERTS,
    CORE_SECOND,
    FINALIZE,
    PRICE,
    SET_BUDGET,
    adjust,
    bill,
    job_usage,
    make_admin,
    money,
)
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import CANCEL, SUBMIT, collect_events, python_job, submit, wait_for_state
from tests.statements import COUNTED, statements_of
from tests.waiting import subscribed

pytestmark = pytest.mark.both_databases  # metering, holds, bills and alerts are written and summed by the database

ROOT = Path(__file__).resolve().parent.parent
FOCUS_COLUMNS = (
    "BilledCost EffectiveCost ListCost BillingCurrency BillingPeriodStart BillingPeriodEnd ChargePeriodStart "
    "ChargePeriodEnd ChargeCategory ConsumedQuantity ConsumedUnit PricingQuantity PricingUnit ListUnitPrice "
    "ResourceId ResourceName RegionId ServiceName ProviderName SkuId SubAccountId"
).split()


async def run_job(gql: Any, script: str = "import time; time.sleep(1.2)", **extra: Any) -> dict[str, Any]:
    job = await submit(gql, python_job(script, **extra))
    await wait_for_state(gql, job["id"], {"SUCCEEDED", "FAILED", "CANCELLED"})
    return await job_usage(gql, job["id"])


async def test_a_job_that_ran_is_metered_once_on_its_bill(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    gql = gateway.client
    before = await money(gql)
    assert before == {"balance": Decimal("1000"), "holds": Decimal(0), "available": Decimal("1000")}
    job = await submit(gql, python_job("import time; time.sleep(1.2)", minutes=1))
    await wait_for_state(gql, job["id"], {"RUNNING"})
    hold = CORE_SECOND * 60  # one core for the requested minute
    assert await money(gql) == {"balance": before["balance"], "holds": hold, "available": before["balance"] - hold}

    events = await collect_events(gql, job["id"])
    kinds = [(event["kind"], event["state"]) for event in events]
    assert kinds[-2:] == [("USAGE", None), ("STATE", "SUCCEEDED")], kinds
    assert [kind for kind, _ in kinds].count("USAGE") == 1

    node = await job_usage(gql, job["id"])
    usage = node["usage"]
    ran = datetime.fromisoformat(node["finishedAt"]) - datetime.fromisoformat(node["startedAt"])
    seconds = math.ceil(ran.total_seconds())
    assert usage["seconds"] == seconds >= 2
    assert usage["accelerator"] == "cpu-core" and usage["devices"] == 1 and usage["center"] == {"name": "local"}
    assert usage["computeUnit"] == {"accelerator": {"model": "cpu-core"}}
    assert Decimal(usage["standardUnitsPerDevice"]) == Decimal("0.0032")
    expected_hours = (Decimal("0.0032") * seconds / 3600).quantize(Decimal("1e-9"), ROUND_HALF_UP)
    assert Decimal(usage["standardUnitHours"]) == expected_hours
    assert usage["unitPrice"] == {"amount": "36000.000000", "currency": "CNY"}
    amount = CORE_SECOND * seconds
    assert Decimal(usage["amount"]["amount"]) == amount
    assert usage["job"] == {"id": job["id"]} and usage["bill"]["status"] == "OPEN"
    assert (usage["startedAt"], usage["endedAt"]) == (node["startedAt"], node["finishedAt"])

    the_bill = await bill(gql, usage["bill"]["id"])
    assert the_bill["account"] == {"name": "default"}
    assert Decimal(the_bill["total"]["amount"]) == amount
    assert the_bill["lines"]["totalCount"] == 1
    line = the_bill["lines"]["edges"][0]["node"]
    assert line["kind"] == "USAGE" and Decimal(line["amount"]["amount"]) == amount
    assert line["usage"] == {"id": usage["id"], "job": {"id": job["id"]}} and line["bill"] == {"id": the_bill["id"]}
    assert the_bill["csvUrl"] == f"{gateway.url}/bills/{the_bill['id']}/focus.csv"

    assert await money(gql) == {"balance": before["balance"] - amount, "holds": Decimal(0), "available": before["balance"] - amount}
    listed = await gql.execute("{ viewer { bills { totalCount edges { node { id } } } } bills { totalCount } }")
    assert listed["viewer"]["bills"]["edges"] == [{"node": {"id": the_bill["id"]}}] and listed["bills"]["totalCount"] == 1
    same = await gql.execute("query($id: ID!) { node(id: $id) { ... on UsageRecord { id amount { amount } } } }", {"id": usage["id"]})
    assert same["node"] == {"id": usage["id"], "amount": {"amount": usage["amount"]["amount"]}}


async def test_a_hold_beyond_the_available_balance_is_refused_and_creates_nothing(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)], default_account_balance=Decimal("5.00"))
    gql = gateway.client
    too_long = python_job("print(1)", minutes=10)  # holds 0.032 x 600 = 19.2
    payload = (await gql.execute(SUBMIT, {"input": too_long}))["submitJob"]
    assert payload["job"] is None
    assert [(error["code"], error["field"]) for error in payload["userErrors"]] == [("INSUFFICIENT_BALANCE", ["request"])]
    assert "19.2" in payload["userErrors"][0]["message"]
    assert (await gql.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0
    assert not list((gateway.runtime.settings.data_dir / "centers" / "local" / "jobs").glob("*"))  # no center saw it

    # two one-minute jobs hold 3.84 of the 5.00; a third (1.92 more) does not fit until they end
    sleepers = [await submit(gql, python_job("import time; time.sleep(300)", name=f"s{n}", minutes=1)) for n in range(2)]
    assert (await money(gql))["available"] == Decimal("5.00") - 2 * CORE_SECOND * 60
    third = (await gql.execute(SUBMIT, {"input": python_job("print(1)", minutes=1)}))["submitJob"]
    assert [error["code"] for error in third["userErrors"]] == ["INSUFFICIENT_BALANCE"]
    assert (await gql.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 2
    for sleeper in sleepers:
        await wait_for_state(gql, sleeper["id"], {"RUNNING"})
        await gql.execute(CANCEL, {"id": sleeper["id"]})
    charged = Decimal(0)
    for sleeper in sleepers:
        await wait_for_state(gql, sleeper["id"], {"CANCELLED"})
        charged += Decimal((await job_usage(gql, sleeper["id"]))["usage"]["amount"]["amount"])
    assert charged > 0
    assert await money(gql) == {"balance": Decimal("5.00") - charged, "holds": Decimal(0), "available": Decimal("5.00") - charged}
    assert (await gql.execute(SUBMIT, {"input": python_job("print(1)", minutes=1)}))["submitJob"]["userErrors"] == []


async def test_a_job_that_never_ran_releases_its_hold_and_costs_nothing(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(cores=1, price=PRICE)])
    gql = gateway.client
    running = await submit(gql, python_job("import time; time.sleep(300)", name="running"))
    queued = await submit(gql, python_job("print(1)", name="queued"))
    assert queued["state"] == "QUEUED"
    assert (await money(gql))["holds"] == 2 * CORE_SECOND * 60
    await gql.execute(CANCEL, {"id": queued["id"]})
    node = await job_usage(gql, (await wait_for_state(gql, queued["id"], {"CANCELLED"}))["id"])
    assert node["usage"] is None and node["startedAt"] is None
    assert await money(gql) == {"balance": Decimal(1000), "holds": CORE_SECOND * 60, "available": Decimal(1000) - CORE_SECOND * 60}
    events = await collect_events(gql, queued["id"])
    assert "USAGE" not in [event["kind"] for event in events]
    await wait_for_state(gql, running["id"], {"RUNNING"})  # on a busy machine it may still be starting
    await gql.execute(CANCEL, {"id": running["id"]})
    await wait_for_state(gql, running["id"], {"CANCELLED"})
    assert (await gql.execute(BILLS))["bills"]["totalCount"] == 1  # only the job that ran is on a bill


async def test_finalize_freezes_the_bill_and_corrections_go_on_the_next(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    gql = gateway.client
    first = (await run_job(gql))["usage"]
    this_month = first["bill"]["id"]
    forbidden = (await gql.execute(FINALIZE, {"id": this_month}))["finalizeBill"]
    assert [error["code"] for error in forbidden["userErrors"]] == ["FORBIDDEN"] and forbidden["bill"] is None
    assert [error["code"] for error in (await adjust(gql, this_month, "1.00"))["userErrors"]] == ["FORBIDDEN"]

    gql = make_admin(gateway)
    early = (await gql.execute(FINALIZE, {"id": this_month}))["finalizeBill"]
    assert [error["code"] for error in early["userErrors"]] == ["PERIOD_NOT_ENDED"] and early["bill"]["status"] == "OPEN"
    # the month is over (a late usage record still arrives, below): now it may be finalized
    period_end = datetime.fromisoformat((await bill(gql, this_month))["periodEnd"])
    gateway.runtime.billing.clock = lambda: period_end
    frozen = await bill(gql, this_month)
    finalized = (await gql.execute(FINALIZE, {"id": this_month}))["finalizeBill"]
    assert finalized["userErrors"] == [] and finalized["bill"]["status"] == "FINALIZED" and finalized["bill"]["finalizedAt"]
    again = (await gql.execute(FINALIZE, {"id": this_month}))["finalizeBill"]
    assert [error["code"] for error in again["userErrors"]] == ["BILL_FINALIZED"]

    credit = await adjust(gql, this_month, "-0.500000", "refund: slow start")
    assert credit["userErrors"] == [] and credit["clientMutationId"] == "a"
    next_bill = credit["bill"]
    assert next_bill["id"] != this_month and next_bill["status"] == "OPEN" and next_bill["period"] > frozen["period"]
    assert credit["line"] == {
        "kind": "ADJUSTMENT",
        "amount": {"amount": "-0.500000"},
        "description": "refund: slow start",
        "corrects": {"id": this_month},
    }

    second = (await run_job(gql))["usage"]  # ended this month, whose bill is frozen: it goes on the next
    assert second["bill"]["id"] == next_bill["id"]
    after = await bill(gql, this_month)
    assert (after["total"], after["lines"]["totalCount"], after["status"]) == (frozen["total"], 1, "FINALIZED")
    following = await bill(gql, next_bill["id"])
    amounts = [Decimal(edge["node"]["amount"]["amount"]) for edge in following["lines"]["edges"]]
    assert [edge["node"]["kind"] for edge in following["lines"]["edges"]] == ["ADJUSTMENT", "USAGE"]
    assert Decimal(following["total"]["amount"]) == sum(amounts) == Decimal(second["amount"]["amount"]) - Decimal("0.5")
    totals = Decimal(frozen["total"]["amount"]) + Decimal(following["total"]["amount"])
    assert (await money(gql))["balance"] == Decimal(1000) - totals
    bad = await adjust(gql, this_month, "0.0000001")
    assert [error["code"] for error in bad["userErrors"]] == ["INVALID_AMOUNT"]
    listed = (await gql.execute(BILLS))["bills"]
    assert listed["totalCount"] == 2 and [edge["node"]["id"] for edge in listed["edges"]] == [next_bill["id"], this_month]


async def test_the_cli_finalizes_a_month(gateway_factory: Any, database: Any, tmp_path: Path) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    gql = gateway.client
    usage = (await run_job(gql))["usage"]
    period = usage["bill"]["period"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "AICN_DATA_DIR": str(tmp_path / "cli")}
    environment["AICN_DATABASE_URL"] = database.url
    if database.schema:
        environment["AICN_DATABASE_SCHEMA"] = database.schema
    command = [sys.executable, "-m", "aicn.cli", "bills", "finalize", "--account", "default", "--period", period]
    early = await asyncio.to_thread(subprocess.run, command, env=environment, capture_output=True, text=True, timeout=60)
    assert early.returncode == 2 and f"PERIOD_NOT_ENDED: the month {period} has not ended yet" in early.stdout, early.stdout
    assert (await bill(gql, usage["bill"]["id"]))["status"] == "OPEN"
    year, month = map(int, period.split("-"))
    last = f"{year - (month == 1)}-{(month - 2) % 12 + 1:02d}"
    future = f"{year + 1}-{month:02d}"
    refused = await asyncio.to_thread(subprocess.run, [*command[:-1], future], env=environment, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "PERIOD_NOT_ENDED" in refused.stdout
    done = await asyncio.to_thread(subprocess.run, [*command[:-1], last], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"bill {last} of default is FINALIZED: 0 line(s)" in done.stdout
    unknown = await asyncio.to_thread(
        subprocess.run, [*command[:6], "nobody", "--period", last], env=environment, capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 2 and "no account named 'nobody'" in unknown.stdout


async def test_a_bill_exports_as_focus_csv_that_adds_up_to_its_total(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    gql = gateway.client
    jobs = [await submit(gql, python_job("import time; time.sleep(1.1)", name=f"export-{n}")) for n in range(2)]
    for job in jobs:
        await wait_for_state(gql, job["id"], {"SUCCEEDED"})
    bill_id = (await job_usage(gql, jobs[0]["id"]))["usage"]["bill"]["id"]
    gql = make_admin(gateway)
    assert (await adjust(gql, bill_id, "-0.010000", "goodwill"))["userErrors"] == []
    the_bill = await bill(gql, bill_id)
    response = await gql.http.get(the_bill["csvUrl"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    header = response.text.splitlines()[0].split(",")
    assert set(FOCUS_COLUMNS) <= set(header)
    assert len(rows) == the_bill["lines"]["totalCount"] == 3
    assert sum(Decimal(row["BilledCost"]) for row in rows) == Decimal(the_bill["total"]["amount"])
    assert all(row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] and row["BillingCurrency"] == "CNY" for row in rows)
    usage_rows = [row for row in rows if row["ChargeCategory"] == "Usage"]
    assert sorted(row["ResourceId"] for row in usage_rows) == sorted(job["id"] for job in jobs)
    for row in usage_rows:
        assert row["ConsumedUnit"] == row["PricingUnit"] and Decimal(row["ConsumedQuantity"]) > 0
        assert Decimal(row["ListUnitPrice"]) == Decimal(PRICE) and row["SkuId"] == "local/cpu-core" and row["RegionId"] == "test"
        assert row["ChargePeriodStart"].endswith("Z") and row["BillingPeriodStart"] <= row["ChargePeriodStart"] < row["BillingPeriodEnd"]
    assert [row["ChargeCategory"] for row in rows].count("Adjustment") == 1
    missing = await gql.http.get("/bills/QmlsbDo5OTk5/focus.csv")
    assert missing.status_code == 404


async def test_budget_alerts_at_50_80_and_100_percent_once_a_month(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    gql = gateway.client
    gql = make_admin(gateway)
    usage = (await run_job(gql))["usage"]  # costs 0.064 or so, on this month's bill
    bill_id = usage["bill"]["id"]
    spent = Decimal(usage["amount"]["amount"])
    answer = (await gql.execute(SET_BUDGET, {"amount": "10.00"}))["setBudget"]
    assert answer["userErrors"] == [] and answer["account"]["budget"]["alerts"] == []
    assert Decimal(answer["account"]["budget"]["spent"]["amount"]) == spent

    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async for data in gql.subscribe(BUDGET_ALERTS, {"after": None}):
            seen.append(data["budgetAlerts"])
            if len(seen) == 3:
                return

    watcher = await subscribed(gateway.runtime.bus, BUDGET_CHANNEL, watch())
    for amount in ("4.936", "0.5", "2.5", "1.0", "1.0", "5.0"):  # 5.0, 5.5, 8.0, 9.0, 10.0, 15.0 (+ the job)
        assert (await adjust(gql, bill_id, amount))["userErrors"] == []
    await asyncio.wait_for(watcher, 20)
    assert [alert["threshold"] for alert in seen] == [50, 80, 100]
    assert all(alert["account"] == {"name": "default"} and alert["budget"] == {"amount": "10.000000"} for alert in seen)
    assert [Decimal(alert["spent"]["amount"]) for alert in seen] == [
        spent + Decimal("4.936"),
        spent + Decimal("7.936"),
        spent + Decimal("9.936"),
    ]
    budget = (await gql.execute("{ viewer { budget { alerts { seq threshold } } } }"))["viewer"]["budget"]
    assert [alert["threshold"] for alert in budget["alerts"]] == [50, 80, 100]

    # a restart neither resends nor re-crosses; a reconnect with `after` replays what was stored
    await gateway.stop()
    second: Gateway = await gateway_factory([local_center(price=PRICE)])
    make_admin(second)
    assert (await adjust(second.client, bill_id, "20.0"))["userErrors"] == []
    replayed: list[dict[str, Any]] = []
    async for data in second.client.subscribe(BUDGET_ALERTS, {"after": seen[0]["seq"]}):
        replayed.append(data["budgetAlerts"])
        if len(replayed) == 2:
            break
    assert [alert["threshold"] for alert in replayed] == [80, 100]
    assert len((await second.client.execute("{ viewer { budget { alerts { seq } } } }"))["viewer"]["budget"]["alerts"]) == 3


async def test_a_job_that_crosses_the_budget_alerts_from_its_metering(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    gql = gateway.client
    assert (await gql.execute(SET_BUDGET, {"amount": "0.040"}))["setBudget"]["userErrors"] == []
    bad = (await gql.execute(SET_BUDGET, {"amount": "-1"}))["setBudget"]
    assert [error["code"] for error in bad["userErrors"]] == ["INVALID_AMOUNT"]
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async for data in gql.subscribe(BUDGET_ALERTS):
            seen.append(data["budgetAlerts"])
            if len(seen) == 3:
                return

    watcher = await subscribed(gateway.runtime.bus, BUDGET_CHANNEL, watch())
    await run_job(gql)  # at least 2 s: 0.064 > 0.040
    await asyncio.wait_for(watcher, 20)
    assert [alert["threshold"] for alert in seen] == [50, 80, 100]
    cleared = (await gql.execute(SET_BUDGET, {"amount": None}))["setBudget"]
    assert cleared["userErrors"] == [] and cleared["account"]["budget"] is None


async def test_bill_lines_cost_the_same_statements_whatever_the_page_size(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(cores=4, price=PRICE)])
    gql = gateway.client
    jobs = [await submit(gql, python_job("print(1)", name=f"line-{n}")) for n in range(6)]
    for job in jobs:
        await wait_for_state(gql, job["id"], {"SUCCEEDED"})
    bill_id = (await job_usage(gql, jobs[0]["id"]))["usage"]["bill"]["id"]
    query = """query($id: ID!, $first: Int) { node(id: $id) { ... on Bill { total { amount }
      lines(first: $first) { edges { node { amount { amount } usage { amount { amount } bill { id } job { name usage { id } } } } } } } } }"""
    with statements_of(gateway) as statements:
        small = await gql.execute(query, {"id": bill_id, "first": 2}, headers=COUNTED)
        few = len(statements)
        statements.clear()
        large = await gql.execute(query, {"id": bill_id, "first": 6}, headers=COUNTED)
        many = len(statements)
    assert len(small["node"]["lines"]["edges"]) == 2 and len(large["node"]["lines"]["edges"]) == 6
    assert few == many == 5, (few, many, statements)  # bill, lines, usage records, jobs, usage by job

    pages: list[str] = []
    after = None
    while True:
        page = await bill(gql, bill_id, first=4, after=after)
        pages.extend(edge["node"]["usage"]["id"] for edge in page["lines"]["edges"])
        if not page["lines"]["pageInfo"]["hasNextPage"]:
            break
        after = page["lines"]["pageInfo"]["endCursor"]
    assert len(pages) == len(set(pages)) == 6
