"""Persisted operations through real HTTP: APQ hits and misses, a hash that lies, GET caching, the safelist."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aicn.security_settings import GraphSettings
from tests.conftest import DatabaseChoice, Gateway

ROOT = Path(__file__).resolve().parent.parent
QUERY = "query Viewer { viewer { name } }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str | None, digest: str) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    if text is not None:
        body["query"] = text
    return body


async def test_a_miss_then_the_text_then_a_hit_on_another_replica(gateway_factory: Any) -> None:
    first: Gateway = await gateway_factory()
    miss = await first.client.http.post("/graphql", json=persisted(None, sha256(QUERY)))
    assert miss.status_code == 200
    assert miss.json()["errors"][0] == {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    registered = await first.client.http.post("/graphql", json=persisted(QUERY, sha256(QUERY)))
    assert registered.json() == {"data": {"viewer": {"name": "default"}}, "extensions": registered.json().get("extensions")}
    hit = await first.client.http.post("/graphql", json=persisted(None, sha256(QUERY)))
    assert hit.json()["data"] == {"viewer": {"name": "default"}}
    second: Gateway = await gateway_factory()  # another replica on the same database
    shared = await second.client.http.post("/graphql", json=persisted(None, sha256(QUERY)))
    assert shared.json()["data"] == {"viewer": {"name": "default"}}


async def test_a_hash_that_does_not_match_its_text_is_refused(gateway: Gateway) -> None:
    lying = await gateway.client.http.post("/graphql", json=persisted(QUERY, sha256("{ viewer { id } }")))
    assert lying.status_code == 400
    assert lying.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    still_missing = await gateway.client.http.post("/graphql", json=persisted(None, sha256("{ viewer { id } }")))
    assert still_missing.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    bad_version = await gateway.client.http.post("/graphql", json={"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "x"}}})
    assert bad_version.status_code == 400


async def test_get_answers_carry_cache_headers(gateway: Gateway) -> None:
    await gateway.client.http.post("/graphql", json=persisted(QUERY, sha256(QUERY)))
    extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": sha256(QUERY)}})
    answer = await gateway.client.http.get("/graphql", params={"extensions": extensions, "operationName": "Viewer"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {"viewer": {"name": "default"}}
    assert answer.headers["cache-control"] == "private, max-age=5"  # one token's answer: never in a shared cache
    assert "Authorization" in answer.headers["vary"]
    anonymous = gateway.connect()
    public = await anonymous.http.get("/graphql", params={"query": "{ __typename }"}, headers={"graphql-require-preflight": "1"})
    assert public.status_code == 200, public.text
    assert public.headers["cache-control"] == "public, max-age=5"
    refused = await anonymous.http.get("/graphql", params={"query": QUERY}, headers={"graphql-require-preflight": "1"})
    assert refused.status_code == 401
    assert refused.headers["cache-control"] == "no-store"
    posted = await gateway.client.post(QUERY)
    assert posted.headers["cache-control"] == "no-store"


async def test_safelist_mode_runs_only_pushed_operations(gateway_factory: Any, database: DatabaseChoice, tmp_path: Path) -> None:
    gateway: Gateway = await gateway_factory(graph=GraphSettings(persisted_queries="safelist"))
    unknown = await gateway.client.post("{ viewer { id } }")
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["extensions"]["code"] == "OPERATION_NOT_SAFELISTED"
    registering = await gateway.client.http.post("/graphql", json=persisted(QUERY, sha256(QUERY)))
    assert registering.json()["errors"][0]["extensions"]["code"] == "OPERATION_NOT_SAFELISTED"

    operations = tmp_path / "ops.graphql"
    operations.write_text(
        "query Viewer {\n  viewer {\n    ...Who\n  }\n}\n\nfragment Who on Account {\n  name\n}\n\nquery Centers { centers(first: 5) { edges { node { name } } } }\n"
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AICN_")}
    environment.update(AICN_DATABASE_URL=database.url or "", PYTHONPATH=str(ROOT), AICN_DATA_DIR=str(tmp_path / "data"))
    if database.schema:
        environment["AICN_DATABASE_SCHEMA"] = database.schema
    pushed = subprocess.run(
        [sys.executable, "-m", "aicn.cli", "operations", "push", str(operations)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pushed.returncode == 0, pushed.stderr
    lines = [line.split() for line in pushed.stdout.splitlines() if not line.startswith("aicn:")]
    by_name = {fields[1]: (fields[0], int(fields[3])) for fields in lines}
    assert set(by_name) == {"Viewer", "Centers"}
    digest, cost = by_name["Centers"]
    assert cost == 1 + 5 * 1  # the connection, and five nodes

    ran = await gateway.client.http.post("/graphql", json=persisted(None, digest))
    assert ran.status_code == 200, ran.text
    assert ran.json()["data"]["centers"]["edges"][0]["node"]["name"] == "local"
    viewer_digest = by_name["Viewer"][0]
    listed = subprocess.run(
        [sys.executable, "-m", "aicn.cli", "operations", "list"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert viewer_digest in listed.stdout and "safelisted" in listed.stdout
    text_too = await gateway.client.post("query Viewer {\n  viewer {\n    ...Who\n  }\n}\n\nfragment Who on Account {\n  name\n}")
    assert text_too.status_code == 200, text_too.text  # the same text as pushed runs by its text, too
    assert (await gateway.admin.post("{ viewer { id } }")).status_code == 200  # admins are exempt
