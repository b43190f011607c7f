"""Cached accounts: a request reads no account row once its account is cached, yet a change to the
account (its quota, its storage quota) made on any gateway is seen on every gateway's very next request."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import update

from store.db import Database
from store.tables import AccountRow
from tests.client import GraphQLClient
from tests.conftest import DatabaseChoice, Gateway, require_service
from tests.jobs_helpers import SUBMIT, python_job
from tests.served_gateway import ServedGateway
from tests.statements import COUNTED, statements_of
from tests.test_auth import CREATE_ACCOUNT, CREATE_TOKEN, new_account
from tests.test_data_storage import SET_QUOTA as SET_STORAGE_QUOTA
from tests.test_money_limits import SET_QUOTA
from tests.test_token_cache import replica_config

VIEWER = "{ viewer { id name maxStorageBytes quota { maxStandardUnits mode } } }"
TWO_CORES = python_job("print(1)", request={"devices": 2, "maxDurationMinutes": 1})


async def issue(admin: GraphQLClient, name: str) -> tuple[str, str]:
    """(account id, secret) of a new account's read and submit token."""
    created = (await admin.execute(CREATE_ACCOUNT, {"input": {"name": name, "members": [f"{name}@example.com"]}}))["createAccount"]
    account_id = created["account"]["id"]
    token = {"accountId": account_id, "name": name, "scopes": ["READ", "SUBMIT"]}
    issued = (await admin.execute(CREATE_TOKEN, {"input": token}))["createApiToken"]
    assert issued["userErrors"] == [], issued
    return account_id, issued["secret"]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_quota_set_on_one_gateway_holds_on_the_other_at_once(database: DatabaseChoice, tmp_path: Path) -> None:
    require_service("127.0.0.1", 6379, "Redis")
    prefix = f"aicn-test-{uuid.uuid4().hex[:12]}:"
    first = ServedGateway(replica_config(tmp_path / "a", database, prefix))
    await first.start()
    second = ServedGateway(replica_config(tmp_path / "b", database, prefix))
    try:
        await second.start()
        account_id, secret = await issue(first.client, "capped")
        on_first, on_second = GraphQLClient(first.url, secret), GraphQLClient(second.url, secret)
        try:
            for client in (on_first, on_second):  # now cached on both
                viewer = (await client.execute(VIEWER))["viewer"]
                assert viewer["quota"] is None and viewer["maxStorageBytes"] is None
            # a change behind every gateway's back goes unseen: the account comes from the cache
            engine = Database(database.url or "", schema=database.schema)
            try:
                async with engine.transaction() as session:
                    await session.execute(update(AccountRow).where(AccountRow.name == "capped").values(max_storage_bytes=5))
            finally:
                await engine.dispose()
            assert (await on_first.execute(VIEWER))["viewer"]["maxStorageBytes"] is None

            capped = (await second.client.execute(SET_QUOTA, {"a": account_id, "units": 0.001, "mode": "REFUSE"}))["setQuota"]
            assert capped["userErrors"] == [], capped
            # the very next request on the other gateway reads the new row, and its submissions obey it
            assert (await on_first.execute(VIEWER))["viewer"]["quota"] == {"maxStandardUnits": 0.001, "mode": "REFUSE"}
            refused = (await on_first.execute(SUBMIT, {"input": TWO_CORES}))["submitJob"]
            assert [error["code"] for error in refused["userErrors"]] == ["QUOTA_EXCEEDED"], refused

            stored = await first.client.execute(SET_STORAGE_QUOTA, {"input": {"accountId": account_id, "maxBytes": "1000"}})
            assert stored["setStorageQuota"]["userErrors"] == []
            assert (await on_second.execute(VIEWER))["viewer"]["maxStorageBytes"] == "1000"
        finally:
            await on_first.close()
            await on_second.close()
    finally:
        await second.stop()
        await first.stop()


async def test_requests_read_no_account_once_it_is_cached(gateway: Gateway) -> None:
    _, _, client = await new_account(gateway, "steady")
    assert (await client.post(VIEWER)).status_code == 200
    with statements_of(gateway, selects_only=False) as statements:
        for _ in range(3):
            assert (await client.post(VIEWER, headers=COUNTED)).status_code == 200
    assert statements == []


async def test_a_quota_change_in_process_is_seen_on_the_next_request(gateway: Gateway) -> None:
    account_id, _, client = await new_account(gateway, "changing", scopes=["READ", "SUBMIT"])
    assert (await client.execute(VIEWER))["viewer"]["quota"] is None
    await gateway.admin.execute(SET_QUOTA, {"a": account_id, "units": 0.001, "mode": "REFUSE"})
    assert (await client.execute(VIEWER))["viewer"]["quota"] == {"maxStandardUnits": 0.001, "mode": "REFUSE"}
    refused = (await client.execute(SUBMIT, {"input": TWO_CORES}))["submitJob"]
    assert [error["code"] for error in refused["userErrors"]] == ["QUOTA_EXCEEDED"]
