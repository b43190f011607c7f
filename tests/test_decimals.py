"""Every Decimal of the schema, read through real data, is fixed-point at one scale per kind:
money at 6 places, quantities (standard units, unit-hours) at 9, never in exponent notation;
the FOCUS CSV writes them the same way."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from graphql import get_named_type

from graph.schema import schema
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import wait_for_state

MONEY = re.compile(r"^-?\d+\.\d{6}$")
QUANTITY = re.compile(r"^\d+\.\d{9}$")

#: one query that reaches every Money and Decimal field; the test checks it misses none
SWEEP = """
query($job: ID!, $running: ID!) {
  viewer { balance { amount } holds { amount } available { amount } lowBalanceThreshold { amount }
    balanceHistory(first: 10) { edges { node { amount { amount } balanceAfter { amount } } } }
    budget { amount { amount } spent { amount } alerts { budget { amount } spent { amount } } }
    bills(first: 5) { edges { node { id total { amount } lines(first: 10) { edges { node { amount { amount } } } } } } } }
  centers { edges { node { computeUnits { pricePerUnitHour { amount } } } } }
  offers(request: { devices: 1, maxDurationMinutes: 7 }) { pricePerHour { amount } maxCost { amount } }
  node(id: $job) { ... on Job { costSoFar { amount } usage { unitPrice { amount } amount { amount } standardUnitsPerDevice standardUnitHours } } }
  running: node(id: $running) { ... on Job { costSoFar { amount } hold { amount } } }
  services { edges { node { pricePerUnitHour { amount } pricePerMillionTokens { amount } usage { edges { node { amount { amount } } } } } } }
}
"""
COVERED = {
    ("Account", "balance"), ("Account", "holds"), ("Account", "available"), ("Budget", "amount"), ("Budget", "spent"),
    ("BudgetAlert", "budget"), ("BudgetAlert", "spent"), ("Bill", "total"), ("BillLine", "amount"),
    ("ComputeUnit", "pricePerUnitHour"), ("Offer", "pricePerHour"), ("Offer", "maxCost"), ("UsageRecord", "unitPrice"),
    ("UsageRecord", "amount"), ("UsageRecord", "standardUnitsPerDevice"), ("UsageRecord", "standardUnitHours"),
    ("Money", "amount"), ("Account", "lowBalanceThreshold"), ("BalanceEntry", "amount"), ("BalanceEntry", "balanceAfter"),
    ("Job", "costSoFar"), ("Job", "hold"), ("InferenceService", "pricePerUnitHour"), ("InferenceService", "pricePerMillionTokens"),
    # a settlement needs a peer gateway: tests/test_peer_e2e.py sweeps these the same way
    ("PeerSettlement", "originCharged"), ("PeerSettlement", "expectedPeerCharge"), ("PeerSettlement", "peerCharged"),
    ("PeerSettlement", "margin"), ("PeerSettlementLine", "originAmount"), ("PeerSettlementLine", "expectedPeerAmount"),
    ("PeerSettlementLine", "peerAmount"), ("PeerSettlementLine", "difference"),
}  # fmt: skip


def decimal_fields() -> set[tuple[str, str]]:
    found = set()
    for named in schema._schema.type_map.values():
        if named.name.startswith("__") or not hasattr(named, "fields") or named.name.endswith("Input"):
            continue
        for name, definition in named.fields.items():
            if get_named_type(definition.type).name in ("Money", "Decimal"):
                found.add((named.name, name))
    return found


def strings_under(value: Any, key: str) -> list[str]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == key and isinstance(v, str)] + [s for v in value.values() for s in strings_under(v, key)]
    if isinstance(value, list):
        return [s for item in value for s in strings_under(item, key)]
    return []


async def test_every_decimal_is_fixed_point_at_its_scale(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(centers=[local_center(price="36000")])
    assert decimal_fields() == COVERED, decimal_fields() ^ COVERED
    budget = await gateway.admin.execute('mutation { setBudget(input: {amount: "0.0000010"}) { userErrors { code } } }')
    assert budget["setBudget"]["userErrors"] == []
    submitted = await gateway.admin.execute(
        'mutation { submitJob(input: {name: "d", command: ["true"], request: {devices: 1, maxDurationMinutes: 1}}) { job { id } } }'
    )
    job_id = submitted["submitJob"]["job"]["id"]
    await wait_for_state(gateway.admin, job_id, {"SUCCEEDED"})
    viewer = (await gateway.admin.execute("{ viewer { id } }"))["viewer"]["id"]
    money_in = await gateway.admin.execute(
        """mutation($a: ID!) { topUp(input: {accountId: $a, amount: "1.5", reference: "sweep"}) { userErrors { code } }
             setLowBalanceThreshold(input: {accountId: $a, amount: "0.25"}) { userErrors { code } } }""",
        {"a": viewer},
    )
    assert money_in == {"topUp": {"userErrors": []}, "setLowBalanceThreshold": {"userErrors": []}}, money_in
    running = await gateway.admin.execute(
        'mutation { submitJob(input: {name: "r", command: ["sleep", "30"], request: {devices: 1, maxDurationMinutes: 1}}) { job { id } } }'
    )
    running_id = running["submitJob"]["job"]["id"]
    await wait_for_state(gateway.admin, running_id, {"RUNNING"})
    variables = {"job": job_id, "running": running_id}
    data = await gateway.admin.execute(SWEEP, variables)
    bill_id = data["viewer"]["bills"]["edges"][0]["node"]["id"]
    adjusted = await gateway.admin.execute(
        'mutation($b: ID!) { addBillAdjustment(input: {billId: $b, amount: "-2.5", description: "x"}) { userErrors { code } } }',
        {"b": bill_id},
    )
    assert adjusted["addBillAdjustment"]["userErrors"] == []
    data = await gateway.admin.execute(SWEEP, variables)
    cancelled = await gateway.admin.execute(
        "mutation($j: ID!) { cancelJob(input: {jobId: $j}) { userErrors { code } } }", {"j": running_id}
    )
    assert cancelled["cancelJob"]["userErrors"] == []
    amounts = strings_under(data, "amount")
    usage = data["node"]["usage"]
    assert len(amounts) >= 20 and data["viewer"]["budget"]["alerts"], data
    assert data["running"]["hold"] is not None and data["viewer"]["balanceHistory"]["edges"], data
    assert all(MONEY.match(amount) for amount in amounts), amounts
    assert QUANTITY.match(usage["standardUnitHours"]) and QUANTITY.match(usage["standardUnitsPerDevice"]), usage
    assert "-2.500000" in amounts and "36000.000000" in amounts
    exported = await gateway.admin.http.get(f"/bills/{bill_id}/focus.csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 2
    for row in rows:
        for column in ("BilledCost", "EffectiveCost", "ListCost") + (("ListUnitPrice",) if row["ListUnitPrice"] else ()):
            assert MONEY.match(row[column]), (column, row)
        for column in ("ConsumedQuantity", "PricingQuantity"):
            assert not row[column] or QUANTITY.match(row[column]), (column, row)
    assert any(row["ConsumedQuantity"] for row in rows)
