"""Accounts and API tokens: bearer auth over HTTP and WebSocket, scopes, revocation, expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
import websockets
from sqlalchemy import select, update

from resolvers.access.service import hash_secret
from store.auth_tables import ApiTokenRow
from store.types import utcnow
from tests.client import GraphQLClient
from tests.conftest import Gateway
from tests.jobs_helpers import SUBMIT, python_job
from tests.waiting import eventually

CREATE_ACCOUNT = """
mutation($input: CreateAccountInput!) {
  createAccount(input: $input) { account { id name members { name role } } userErrors { code field message } }
}
"""
CREATE_TOKEN = """
mutation($input: CreateApiTokenInput!) {
  createApiToken(input: $input) { secret token { id name prefix scopes active expiresAt } userErrors { code field } }
}
"""
REVOKE_TOKEN = """
mutation($id: ID!) { revokeApiToken(input: {tokenId: $id}) { token { id active revokedAt } userErrors { code } } }
"""


async def new_account(gateway: Gateway, name: str, scopes: list[str] | None = None, **token: Any) -> tuple[str, str, GraphQLClient]:
    """An account made through the graph by the admin, with a token: (account id, secret, client)."""
    created = (await gateway.admin.execute(CREATE_ACCOUNT, {"input": {"name": name, "members": [f"{name}@example.com"]}}))["createAccount"]
    assert created["userErrors"] == [], created
    account_id = created["account"]["id"]
    issued = (
        await gateway.admin.execute(
            CREATE_TOKEN, {"input": {"accountId": account_id, "name": f"{name}-token", "scopes": scopes or ["READ", "SUBMIT"], **token}}
        )
    )["createApiToken"]
    assert issued["userErrors"] == [], issued
    return account_id, issued["secret"], gateway.connect(issued["secret"])


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def test_without_a_token_only_introspection_answers(gateway: Gateway) -> None:
    anonymous = gateway.connect()
    response = await anonymous.post("{ viewer { name } }")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert codes(body) == ["UNAUTHENTICATED"] and "data" not in body
    assert "Authorization: Bearer" in body["errors"][0]["message"]
    schema = await anonymous.post("{ __schema { queryType { name } } }")
    assert schema.status_code == 200 and schema.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    page = await anonymous.http.get("/graphql", headers={"accept": "text/html"})  # GraphiQL itself needs no token
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_a_bad_token_is_refused_before_anything_runs(gateway: Gateway) -> None:
    for header in ("Bearer aicn_not-a-real-token-at-all-000000", "Bearer", "Basic dXNlcjpwYXNz", "aicn_no-scheme"):
        response = await gateway.client.http.post("/graphql", json={"query": "{ __typename }"}, headers={"authorization": header})
        assert response.status_code == 401, header
        assert codes(response.json()) == ["UNAUTHENTICATED"]


async def test_admin_creates_an_account_and_a_token_shown_once(gateway: Gateway) -> None:
    account_id, secret, client = await new_account(gateway, "acme")
    assert secret.startswith("aicn_") and len(secret) == 45
    viewer = await client.execute("{ viewer { id name members { name role } tokens { name prefix scopes active } } }")
    assert viewer["viewer"]["id"] == account_id and viewer["viewer"]["name"] == "acme"
    assert viewer["viewer"]["members"] == [{"name": "acme@example.com", "role": "owner"}]
    assert viewer["viewer"]["tokens"] == [{"name": "acme-token", "prefix": secret[:12], "scopes": ["READ", "SUBMIT"], "active": True}]
    async with gateway.runtime.db.read() as session:
        rows = list(await session.scalars(select(ApiTokenRow)))
    assert any(row.token_hash == hash_secret(secret) for row in rows)
    stored = json.dumps([{column: str(getattr(row, column)) for column in ("name", "prefix", "token_hash", "scopes")} for row in rows])
    assert secret not in stored  # only the hash is kept
    again = (await gateway.admin.execute(CREATE_ACCOUNT, {"input": {"name": "acme"}}))["createAccount"]
    assert [error["code"] for error in again["userErrors"]] == ["ALREADY_EXISTS"]
    listing = await gateway.admin.execute("{ accounts { totalCount edges { node { name } } } }")
    assert {edge["node"]["name"] for edge in listing["accounts"]["edges"]} == {"default", "acme"}


async def test_bad_token_requests_are_user_errors(gateway: Gateway) -> None:
    viewer = await gateway.admin.execute("{ viewer { id } }")
    account_id = viewer["viewer"]["id"]
    cases = [
        ({"accountId": "QWNjb3VudDo5OTk", "name": "x", "scopes": ["READ"]}, ["ACCOUNT_NOT_FOUND"]),
        ({"accountId": account_id, "name": "", "scopes": ["READ"]}, ["INVALID_NAME"]),
        ({"accountId": account_id, "name": "x", "scopes": []}, ["INVALID_SCOPES"]),
        ({"accountId": account_id, "name": "x", "scopes": ["READ"], "expiresInDays": 0}, ["INVALID_EXPIRY"]),
    ]
    for payload, expected in cases:
        answer = (await gateway.admin.execute(CREATE_TOKEN, {"input": payload}))["createApiToken"]
        assert answer["secret"] is None and [error["code"] for error in answer["userErrors"]] == expected, payload
    missing = (await gateway.admin.execute(REVOKE_TOKEN, {"id": "QXBpVG9rZW46OTk5"}))["revokeApiToken"]
    assert [error["code"] for error in missing["userErrors"]] == ["TOKEN_NOT_FOUND"]


async def test_scopes_decide_what_a_token_may_do(gateway: Gateway) -> None:
    _, _, reader = await new_account(gateway, "reader", ["READ"])
    assert (await reader.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0
    submit = await reader.post(SUBMIT, {"input": python_job("print(1)")})
    assert submit.status_code == 403 and codes(submit.json()) == ["FORBIDDEN"] and "data" not in submit.json()
    assert submit.json()["errors"][0]["extensions"]["requiredScopes"] == ["submit"]
    for client in (reader, gateway.client):  # the test client holds read+submit, not admin
        forbidden = await client.post(CREATE_ACCOUNT, {"input": {"name": "sneaky"}})
        assert forbidden.status_code == 403 and codes(forbidden.json()) == ["FORBIDDEN"]
        audit = await client.post("{ auditLog { totalCount } }")
        assert audit.status_code == 403
    # a document with one forbidden root field runs none of its fields
    mixed = await gateway.client.post("{ jobs { totalCount } accounts { totalCount } }")
    assert mixed.status_code == 403 and "data" not in mixed.json()
    _, _, submitter = await new_account(gateway, "submitter", ["SUBMIT"])
    no_read = await submitter.post("{ jobs { totalCount } }")
    assert no_read.status_code == 403


async def test_revocation_counts_from_the_next_request(gateway: Gateway) -> None:
    _, _secret, client = await new_account(gateway, "leaver")
    tokens = (await gateway.admin.execute("{ accounts { edges { node { name tokens { id } } } } }"))["accounts"]["edges"]
    token_id = next(edge["node"]["tokens"][0]["id"] for edge in tokens if edge["node"]["name"] == "leaver")
    assert (await client.post("{ viewer { name } }")).status_code == 200
    revoked = (await gateway.admin.execute(REVOKE_TOKEN, {"id": token_id}))["revokeApiToken"]
    assert revoked["token"]["active"] is False and revoked["token"]["revokedAt"]
    after = await client.post("{ viewer { name } }")
    assert after.status_code == 401 and codes(after.json()) == ["UNAUTHENTICATED"]
    twice = (await gateway.admin.execute(REVOKE_TOKEN, {"id": token_id}))["revokeApiToken"]
    assert twice["userErrors"] == [] and twice["token"]["revokedAt"] == revoked["token"]["revokedAt"]


async def test_an_expired_token_is_refused(gateway: Gateway) -> None:
    """(An expiry reached while the token is cached: tests/test_token_cache.py.)"""
    _, secret, client = await new_account(gateway, "temp", expiresInDays=1)
    async with gateway.runtime.db.transaction() as session:
        await session.execute(
            update(ApiTokenRow).where(ApiTokenRow.token_hash == hash_secret(secret)).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await client.post("{ viewer { name } }")).status_code == 401


async def ws_handshake(gateway: Gateway, payload: dict[str, Any] | None, *, init: bool = True) -> tuple[Any, Any]:
    """(first message or None, close code or None) for one connection attempt."""
    async with websockets.connect(gateway.client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        if init:
            await socket.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        else:
            await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "subscription { jobUpdates { id } }"}}))
        try:
            return json.loads(await socket.recv()), None
        except websockets.ConnectionClosed as closed:
            return None, closed.rcvd.code if closed.rcvd else None


async def test_websocket_takes_the_token_in_connection_init(gateway: Gateway) -> None:
    secret = gateway.client.token
    for payload in ({"authorization": f"Bearer {secret}"}, {"Authorization": f"Bearer {secret}"}, {"token": secret}):
        message, code = await ws_handshake(gateway, payload)
        assert message == {"type": "connection_ack"} and code is None, payload
    for payload in ({}, {"authorization": "Bearer aicn_wrong-wrong-wrong-wrong-wrong"}, {"token": 7}):
        message, code = await ws_handshake(gateway, payload)
        assert message is None and code == 4403, payload
    message, code = await ws_handshake(gateway, None, init=False)
    assert message is None and code == 4401


async def test_a_revoked_token_cannot_start_new_operations_on_an_open_socket(gateway: Gateway) -> None:
    """Revoked where no bus tells the gateway (`aicn tokens revoke` in another process)."""
    _, secret, _client = await new_account(gateway, "socket")
    async with websockets.connect(gateway.client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": secret}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(json.dumps({"id": "a", "type": "subscribe", "payload": {"query": "{ viewer { name } }"}}))
        assert json.loads(await socket.recv())["payload"]["data"] == {"viewer": {"name": "socket"}}
        async with gateway.runtime.db.transaction() as session:
            await session.execute(update(ApiTokenRow).where(ApiTokenRow.token_hash == hash_secret(secret)).values(revoked_at=utcnow()))
        await socket.send(json.dumps({"id": "b", "type": "subscribe", "payload": {"query": "{ viewer { name } }"}}))
        answer = json.loads(await socket.recv())
        while answer["type"] == "complete":
            answer = json.loads(await socket.recv())
        assert answer["type"] == "error" and answer["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_first_start_prints_an_admin_token_once(database: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from aicn.runtime import Runtime
    from aicn.settings import Settings
    from tests.conftest import local_center

    settings = Settings(data_dir=tmp_path / "data", database_url=database.url, database_schema=database.schema, centers=[local_center()])
    runtime = Runtime(settings)
    await runtime.start(reconcile=False)
    try:
        printed = capsys.readouterr().out
        secret = next(line.strip() for line in printed.splitlines() if line.strip().startswith("aicn_"))
        assert '{"Authorization": "Bearer <token>"}' in printed
        viewer = await runtime.access.authenticate(secret)
        assert viewer is not None and viewer.is_admin and viewer.scopes == frozenset({"read", "submit", "admin"})
    finally:
        await runtime.stop()
    again = Runtime(settings)  # the database has a token now: nothing new, nothing printed
    await again.start(reconcile=False)
    await again.stop()
    assert "aicn_" not in capsys.readouterr().out


async def test_dev_mode_lets_this_host_in_as_the_default_account(gateway_factory: Any) -> None:
    from aicn.security_settings import AuthSettings

    gateway: Gateway = await gateway_factory(auth=AuthSettings(mode="dev"))
    anonymous = gateway.connect()
    response = await anonymous.post("{ viewer { name } }")
    assert response.status_code == 200 and response.json()["data"]["viewer"]["name"] == "default"
    job = await anonymous.post(SUBMIT, {"input": python_job("print(1)")})
    assert job.status_code == 200 and job.json()["data"]["submitJob"]["userErrors"] == []
    assert (await anonymous.post("{ accounts { totalCount } }")).status_code == 403  # not an admin
    bad = await anonymous.http.post("/graphql", json={"query": "{ viewer { name } }"}, headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401  # a wrong token is never "no token"
    message, _code = await ws_handshake(gateway, {})
    assert message == {"type": "connection_ack"}


def test_the_cli_creates_lists_and_revokes(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from aicn.cli import main
    from resolvers.access.service import AccessService
    from store.db import Database

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("AICN_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    assert main(["accounts", "create", "lab", "--member", "ana@example.com"]) == 0
    assert main(["accounts", "create", "lab"]) == 1
    assert "ALREADY_EXISTS" in capsys.readouterr().err
    assert main(["tokens", "create", "--account", "lab", "--scopes", "read,submit", "--expires-in-days", "30"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("aicn_")
    assert main(["tokens", "create", "--account", "lab", "--scopes", "read,root"]) == 1
    assert main(["tokens", "create", "--account", "nobody"]) == 1
    capsys.readouterr()
    assert main(["tokens", "list", "--account", "lab"]) == 0
    listing = capsys.readouterr().out
    assert secret[:12] in listing and secret not in listing

    async def check() -> tuple[Any, Any]:
        db = Database(url)
        try:
            return await AccessService(db).authenticate(secret), db
        finally:
            await db.dispose()

    viewer, _ = asyncio.run(check())
    assert viewer is not None and viewer.scopes == frozenset({"read", "submit"}) and not viewer.is_admin
    token_id = listing.split("\t", 1)[0]
    assert main(["tokens", "revoke", token_id]) == 0
    viewer, _ = asyncio.run(check())
    assert viewer is None


async def test_revoking_a_token_closes_its_open_subscriptions(gateway: Gateway) -> None:
    _, secret, client = await new_account(gateway, "watcher")
    token_id = (await client.execute("{ viewer { tokens { id } } }"))["viewer"]["tokens"][0]["id"]
    async with websockets.connect(client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": secret}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        before = gateway.runtime.bus.subscribers("jobs")
        await socket.send(json.dumps({"id": "live", "type": "subscribe", "payload": {"query": "subscription { jobUpdates { id } }"}}))
        await eventually(lambda: gateway.runtime.bus.subscribers("jobs") > before, "the jobUpdates subscription is registered")
        await gateway.admin.execute(REVOKE_TOKEN, {"id": token_id})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:  # whatever was in flight, then the close
                await asyncio.wait_for(socket.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_token_that_expires_closes_its_open_subscriptions_at_expiry(gateway: Gateway) -> None:
    _, secret, client = await new_account(gateway, "ephemeral", expiresInDays=1)
    async with gateway.runtime.db.transaction() as session:
        await session.execute(
            update(ApiTokenRow).where(ApiTokenRow.token_hash == hash_secret(secret)).values(expires_at=utcnow() + timedelta(seconds=2))
        )
    async with websockets.connect(client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": secret}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(json.dumps({"id": "live", "type": "subscribe", "payload": {"query": "subscription { jobUpdates { id } }"}}))
        opened = utcnow()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:  # nothing happens on the account: only the expiry can close it
                await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403 and "expired" in closed.value.rcvd.reason
        assert (utcnow() - opened).total_seconds() < 8
