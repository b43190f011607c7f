"""Tenant isolation, tested from the schema itself (see tests/isolation_probe.py).

A victim account owns a job, a dataset, a model and a token; an attacker account with
read and submit tries every entry point of the schema with the victim's ids and must
learn nothing: each answer equals the answer for an id that does not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from aicn.security_settings import LimitSettings
from aicn.watch_settings import WebhookSettings
from resolvers.common.ids import to_global_id
from tests.client import GraphQLClient
from tests.conftest import Gateway
from tests.isolation_probe import entry_points, fetch_schema, probe, sweep
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.test_auth import new_account

pytestmark = pytest.mark.both_databases  # tenant isolation is in the queries

#: the probes select deeply: the limits must not be what keeps data in
#: the victim's webhook endpoint may point at loopback (where nothing listens)
LOOPBACK_ONLY = WebhookSettings(allowed_networks=["127.0.0.0/8"])
PROBE_LIMITS = LimitSettings(
    max_depth=50,
    max_aliases=100_000,
    max_tokens=1_000_000,
    max_query_length=10_000_000,
    max_root_fields=100,
    max_cost=10_000_000,
    bucket_size=10_000_000,
    restore_rate=1_000_000.0,
)
MISSING = 987_654_321


@dataclass
class Tenants:
    victim: GraphQLClient
    attacker: GraphQLClient
    victim_ids: dict[str, str]
    marker: str


async def two_tenants(gateway: Gateway) -> Tenants:
    marker = f"victim{uuid.uuid4().hex[:10]}"
    account_id, _, victim = await new_account(gateway, marker)
    _, _, attacker = await new_account(gateway, f"attacker{uuid.uuid4().hex[:6]}")
    # nothing listens on loopback port 9: the job's end is attempted there, and only there
    endpoint = (
        await victim.execute(
            'mutation($d: String!) { createWebhookEndpoint(input: {url: "https://127.0.0.1:9/hook", eventKinds: [JOB_ENDED], description: $d}) { endpoint { id } } }',
            {"d": f"{marker}-hook"},
        )
    )["createWebhookEndpoint"]["endpoint"]
    dataset = (
        await victim.execute(
            'mutation($n: String!) { registerDataset(input: {name: $n, uri: "s3://victim/data"}) { dataset { id } } }',
            {"n": f"{marker}-data"},
        )
    )["registerDataset"]["dataset"]
    job = await submit(victim, python_job("print('victim')", name=f"{marker}-job", inputDatasetIds=[dataset["id"]], idempotencyKey=marker))
    await wait_for_state(victim, job["id"], {"SUCCEEDED"})
    model = (
        await victim.execute(
            'mutation($n: String!, $j: ID!) { registerModel(input: {name: $n, uri: "s3://victim/model", trainedByJobId: $j}) { model { id } } }',
            {"n": f"{marker}-model", "j": job["id"]},
        )
    )["registerModel"]["model"]
    token_id = (await victim.execute("{ viewer { tokens { id } } }"))["viewer"]["tokens"][0]["id"]
    ids = {
        "Job": job["id"],
        "Dataset": dataset["id"],
        "Model": model["id"],
        "Account": account_id,
        "ApiToken": token_id,
        "WebhookEndpoint": endpoint["id"],
    }
    return Tenants(victim=victim, attacker=attacker, victim_ids=ids, marker=marker)


def missing_ids() -> dict[str, str]:
    return {
        type_name: to_global_id(type_name, MISSING) for type_name in ("Job", "Dataset", "Model", "Account", "ApiToken", "WebhookEndpoint")
    }


async def test_no_entry_point_answers_another_accounts_ids_differently(gateway_factory: object) -> None:
    gateway: Gateway = await gateway_factory(limits=PROBE_LIMITS, webhooks=LOOPBACK_ONLY)  # type: ignore[operator]
    tenants = await two_tenants(gateway)
    schema = await fetch_schema(tenants.attacker)
    entries = entry_points(schema)
    named = {str(entry) for entry in entries}
    # the walk finds the known entry points (and any new one by itself)
    for expected in (
        "query node(id)",
        "query nodes(ids)",
        "mutation cancelJob(input.jobId)",
        "mutation submitJob(input.inputDatasetIds)",
        "mutation registerModel(input.trainedByJobId)",
        "subscription jobEvents(jobId)",
        "query jobs(filter.centerIds)",
        "mutation deleteWebhookEndpoint(input.endpointId)",
    ):
        assert expected in named, (expected, sorted(named))
    leaks, calls = await probe(tenants.attacker, schema, tenants.victim_ids, missing_ids(), [tenants.marker])
    assert not leaks, "\n\n".join(f"{leak.entry} with the victim's {leak.id_type}: {leak.reason}" for leak in leaks)
    assert calls >= 2 * len(entries) * len(tenants.victim_ids)
    # and the victim still sees all of it: the probes asked the right questions
    assert (await tenants.victim.execute("query($id: ID!) { node(id: $id) { id } }", {"id": tenants.victim_ids["Job"]}))["node"]


async def test_lists_and_linked_fields_show_only_the_callers_data(gateway_factory: object) -> None:
    gateway: Gateway = await gateway_factory(limits=PROBE_LIMITS, webhooks=LOOPBACK_ONLY)  # type: ignore[operator]
    tenants = await two_tenants(gateway)
    schema = await fetch_schema(tenants.attacker)
    seen_by_attacker = await sweep(tenants.attacker, schema)
    leaked = [value for value in (tenants.marker, *tenants.victim_ids.values()) if value in seen_by_attacker]
    assert not leaked, leaked
    seen_by_victim = await sweep(tenants.victim, schema)
    assert tenants.marker in seen_by_victim and tenants.victim_ids["Job"] in seen_by_victim
    seen_by_admin = await sweep(gateway.admin, schema)  # admins see every account
    assert tenants.marker in seen_by_admin


async def test_the_probe_finds_a_leak_when_there_is_one(gateway_factory: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from store import jobs as job_store

    gateway: Gateway = await gateway_factory(limits=PROBE_LIMITS, webhooks=LOOPBACK_ONLY)  # type: ignore[operator]
    tenants = await two_tenants(gateway)
    schema = await fetch_schema(tenants.attacker)
    unscoped = job_store.jobs_by_ids
    monkeypatch.setattr(job_store, "jobs_by_ids", lambda session, ids, owner_id=None: unscoped(session, ids))
    victim_job = {"Job": tenants.victim_ids["Job"]}
    leaks, _ = await probe(tenants.attacker, schema, victim_job, missing_ids(), [tenants.marker])
    assert {str(leak.entry) for leak in leaks} >= {"query node(id)", "query nodes(ids)", "mutation cancelJob(input.jobId)"}
