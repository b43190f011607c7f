"""Cached tokens: a request reads no token from the database, yet a revocation on any gateway
is refused on every gateway's very next request, and expiry still counts to the second."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from resolvers.access.service import hash_secret
from resolvers.access.token_cache import TokenCache
from resolvers.access.viewer import Viewer
from store.auth_tables import ApiTokenRow
from store.db import Database
from store.types import utcnow
from tests.client import GraphQLClient
from tests.conftest import DatabaseChoice, Gateway, require_service
from tests.served_gateway import ServedGateway, write_config
from tests.statements import COUNTED, statements_of
from tests.test_auth import CREATE_ACCOUNT, CREATE_TOKEN, REVOKE_TOKEN, new_account
from tests.waiting import eventually

VIEWER = "{ viewer { name } }"


def replica_config(directory: Path, database: DatabaseChoice, prefix: str) -> Path:
    """A gateway process on the shared database and Redis, with channels of this test's own."""
    directory.mkdir()
    config = write_config(directory, database.url or "", database.schema)
    top = f'bus_url = "redis://127.0.0.1:6379/0"\nbus_prefix = "{prefix}"\n'
    config.write_text(top + config.read_text() + "\n[auth]\ntoken_cache_seconds = 600\n")
    return config


async def issue(admin: GraphQLClient, name: str) -> tuple[str, str]:
    """(token id, secret) of a new account's read token."""
    created = (await admin.execute(CREATE_ACCOUNT, {"input": {"name": name, "members": [f"{name}@example.com"]}}))["createAccount"]
    issued = (await admin.execute(CREATE_TOKEN, {"input": {"accountId": created["account"]["id"], "name": name, "scopes": ["READ"]}}))[
        "createApiToken"
    ]
    assert issued["userErrors"] == [], issued
    return issued["token"]["id"], issued["secret"]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_token_revoked_on_one_gateway_is_refused_on_the_other_at_once(database: DatabaseChoice, tmp_path: Path) -> None:
    require_service("127.0.0.1", 6379, "Redis")
    prefix = f"aicn-test-{uuid.uuid4().hex[:12]}:"
    first = ServedGateway(replica_config(tmp_path / "a", database, prefix))
    await first.start()
    second = ServedGateway(replica_config(tmp_path / "b", database, prefix))
    try:
        await second.start()
        token_id, secret = await issue(first.client, "roaming")
        hidden_id, hidden = await issue(first.client, "hidden")
        on_first, on_second = GraphQLClient(first.url, secret), GraphQLClient(second.url, secret)
        try:
            for client in (on_first, on_second):  # now cached on both
                assert (await client.post(VIEWER)).json()["data"] == {"viewer": {"name": "roaming"}}
            hidden_client = GraphQLClient(first.url, hidden)
            assert (await hidden_client.post(VIEWER)).status_code == 200
            # the first gateway answers from its cache: a revocation behind every gateway's back goes unseen
            engine = Database(database.url or "", schema=database.schema)
            try:
                async with engine.transaction() as session:
                    await session.execute(update(ApiTokenRow).where(ApiTokenRow.id == int_id(hidden_id)).values(revoked_at=utcnow()))
            finally:
                await engine.dispose()
            assert (await hidden_client.post(VIEWER)).status_code == 200
            await hidden_client.close()
            revoked = (await second.client.execute(REVOKE_TOKEN, {"id": token_id}))["revokeApiToken"]
            assert revoked["userErrors"] == [] and revoked["token"]["active"] is False
            refused = await on_first.post(VIEWER)  # the very next request, on the other gateway
            assert refused.status_code == 401 and refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert (await on_second.post(VIEWER)).status_code == 401
            # other tokens stay cached and valid on both
            _, other = await issue(second.client, "staying")
            assert (await GraphQLClient(first.url, other).post(VIEWER)).status_code == 200
        finally:
            await on_first.close()
            await on_second.close()
    finally:
        await second.stop()
        await first.stop()


def int_id(global_id: str) -> int:
    from resolvers.common.ids import int_key

    key = int_key(global_id, "ApiToken")
    assert key is not None
    return key


async def test_a_cached_token_still_expires_to_the_second(gateway: Gateway) -> None:
    _, secret, client = await new_account(gateway, "brief", expiresInDays=1)
    expires = utcnow() + timedelta(seconds=1.5)
    async with gateway.runtime.db.transaction() as session:  # before the first use: the cache holds this expiry
        await session.execute(update(ApiTokenRow).where(ApiTokenRow.token_hash == hash_secret(secret)).values(expires_at=expires))
    answers: list[tuple[Any, int]] = []

    async def refused() -> bool:
        sent = utcnow()
        status = (await client.post(VIEWER)).status_code
        answers.append((sent, status))
        return status == 401

    await eventually(refused, "the token is refused once it expired", timeout=5, interval=0.05)
    assert answers[0][1] == 200 and len(gateway.runtime.access.cache or ()) >= 1
    # accepted by no request sent once it expired, however long a busy machine took to send the next one
    assert all(sent < expires for sent, status in answers if status == 200)
    first_refusal = next(sent for sent, status in answers if status == 401)
    assert expires - timedelta(milliseconds=100) <= first_refusal  # and not refused before its time


async def test_requests_read_no_token_once_it_is_cached(gateway: Gateway) -> None:
    _, _, client = await new_account(gateway, "frequent")
    assert (await client.post(VIEWER)).status_code == 200
    with statements_of(gateway, selects_only=False, tokens_too=True) as statements:
        for _ in range(3):
            assert (await client.post(VIEWER, headers=COUNTED)).status_code == 200
    assert not [statement for statement in statements if "api_tokens" in statement]


async def test_a_revocation_in_process_is_refused_on_the_next_request(gateway: Gateway) -> None:
    _, secret, client = await new_account(gateway, "leaving")
    token_id = (await client.execute("{ viewer { tokens { id } } }"))["viewer"]["tokens"][0]["id"]
    assert (await client.post(VIEWER)).status_code == 200
    await gateway.admin.execute(REVOKE_TOKEN, {"id": token_id})
    assert (await client.post(VIEWER)).status_code == 401
    assert await gateway.runtime.access.authenticate(secret) is None


def test_the_cache_is_bounded_by_size_and_age() -> None:
    now = [0.0]
    cache = TokenCache(size=2, ttl=10.0, clock=lambda: now[0])
    for number in range(3):
        cache.put(f"hash{number}", Viewer.for_token(1, number, frozenset({"read"})), None, epoch=0)
    assert len(cache) == 2 and cache.get("hash0", 0) is None  # the least recently used left
    assert cache.get("hash1", 0) is not None
    assert cache.get("hash2", 1) is None  # read under another bus epoch: news may have been lost since
    now[0] = 10.0
    assert cache.get("hash1", 0) is None  # older than the ttl
    cache.put("hash4", Viewer.for_token(1, 4, frozenset({"read"})), None, epoch=0)
    cache.forget(4)
    assert cache.get("hash4", 0) is None and len(cache) == 0
