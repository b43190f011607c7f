"""Stored bytes per account: shown on Account, limited by a storage quota, metered per GB-month on the bill."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from resolvers.common.ids import to_global_id
from store import transfers as transfer_store
from tests.conftest import Gateway, local_center
from tests.data_helpers import REPLICATE, STAGING_EVENTS, file_at, outputs_of, register
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.test_data_outputs import WRITER

STORED = "{ viewer { id storedBytes maxStorageBytes } }"
SET_QUOTA = """mutation($input: SetStorageQuotaInput!) {
  setStorageQuota(input: $input) { account { storedBytes maxStorageBytes } userErrors { code field } }
}"""
BILL = "query($id: ID!) { node(id: $id) { ... on Bill { lines { edges { node { kind description amount { amount } } } } } } }"
SIZE = 256 * 4096 + len('{"layers": 2}')


async def account_of(gql: Any) -> dict[str, Any]:
    return (await gql.execute(STORED))["viewer"]


async def test_stored_bytes_count_verified_copies_and_the_quota_refuses_more(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("a"), local_center("b")])
    gql = gateway.client
    assert (await account_of(gql))["storedBytes"] == "0"
    job = await submit(gql, python_job(WRITER, outputModelName="tiny"))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=60)
    account = await account_of(gql)
    assert account["storedBytes"] == str(SIZE) and account["maxStorageBytes"] is None

    quota = await gateway.admin.execute(SET_QUOTA, {"input": {"accountId": account["id"], "maxBytes": str(SIZE + 10)}})
    assert quota["setStorageQuota"] == {"account": {"storedBytes": str(SIZE), "maxStorageBytes": str(SIZE + 10)}, "userErrors": []}
    member = await gql.post(SET_QUOTA, {"input": {"accountId": account["id"], "maxBytes": "1"}})
    assert member.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = (await gateway.admin.execute(SET_QUOTA, {"input": {"accountId": account["id"], "maxBytes": "-1"}}))["setStorageQuota"]
    assert [error["code"] for error in bad["userErrors"]] == ["INVALID_QUOTA"]

    dataset = await register(gql, name="more", uri=file_at(gateway, "a", "more.bin", b"z" * 100))
    center_b = next(center.global_id for center in gateway.runtime.registry.all() if center.name == "b")
    refused = (await gql.execute(REPLICATE, {"input": {"datasetId": dataset["id"], "centerId": center_b}}))["replicateDataset"]
    assert [error["code"] for error in refused["userErrors"]] == ["STORAGE_QUOTA_EXCEEDED"]

    # an output beyond the quota is not kept; the job still succeeds and says why
    second = await submit(gql, python_job(WRITER, outputDatasetName="too-much"))
    await wait_for_state(gql, second["id"], {"SUCCEEDED"}, timeout=60)
    assert (await outputs_of(gql, second["id"]))["outputDataset"] is None
    events = (await gql.execute(STAGING_EVENTS, {"id": second["id"]}))["node"]["events"]["edges"]
    assert any((event["node"]["message"] or "").startswith("outputs not kept: STORAGE_QUOTA_EXCEEDED") for event in events)


async def test_storage_is_metered_per_gb_month_when_the_bill_is_finalized(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(storage_price_per_gb_month=Decimal("1000000"))
    gql = gateway.client
    job = await submit(gql, python_job(WRITER, outputModelName="tiny"))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=60)
    assert (await outputs_of(gql, job["id"]))["outputModel"] is not None
    billing, runtime = gateway.runtime.billing, gateway.runtime
    period = billing.book.policy.calendar.period_of(billing.clock())
    billing.clock = lambda: period.end + timedelta(days=1)  # the month is over
    assert runtime.default_viewer is not None
    async with runtime.db.read() as session:
        (size, verified_at), *_ = await transfer_store.verified_copies(session, runtime.default_viewer.account_id)
    bill = await billing.finalize_period(runtime.settings.account_name, period.label)
    lines = [edge["node"] for edge in (await gql.execute(BILL, {"id": to_global_id("Bill", bill.id)}))["node"]["lines"]["edges"]]
    storage = [line for line in lines if line["kind"] == "STORAGE"]
    kept = (
        Decimal(size)
        / Decimal(10**9)
        * Decimal(str((period.end - verified_at).total_seconds()))
        / Decimal(str((period.end - period.start).total_seconds()))
    )
    expected = (kept.quantize(Decimal("0.000000001")) * 1000000).quantize(Decimal("0.000001"))
    assert size == SIZE and len(storage) == 1 and Decimal(storage[0]["amount"]["amount"]) == expected > 0
    assert "GB-months at 1000000" in storage[0]["description"]
