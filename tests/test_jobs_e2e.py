"""Jobs end to end through HTTP and WebSocket, on a real gateway with a LOCAL center."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.client import GraphQLClient
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import (
    CANCEL,
    PROGRESS_SCRIPT,
    SUBMIT,
    collect_events,
    job_state,
    python_job,
    submit,
    wait_for_state,
)
from tests.processes import group_alive
from tests.waiting import eventually, subscribed


def states_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["state"] for event in events if event["kind"] == "STATE"]


async def missed_since(gql: GraphQLClient, job_id: str, seq: int) -> bool:
    """True once the job's log holds at least two events after ``seq``."""
    events = (await job_state(gql, job_id))["events"]["edges"]
    return len(events) >= seq + 2


@pytest.mark.both_databases  # the ledger numbers and stores each event
async def test_submit_run_progress_succeed_over_the_subscription(gateway: Gateway) -> None:
    gql = gateway.client
    job = await submit(gql, python_job(PROGRESS_SCRIPT, name="progress"))
    assert job["center"]["name"] == "local"
    assert job["request"] == {"accelerator": "cpu-core", "devices": 1, "maxDurationMinutes": 1.0}
    events = await collect_events(gql, job["id"])
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert states_of(events) == ["PENDING", "STARTING", "RUNNING", "SUCCEEDED"]
    progress = [event["progress"] for event in events if event["kind"] == "PROGRESS"]
    assert [report["step"] for report in progress] == [1, 2, 3]
    assert progress[-1] == {"fraction": 1.0, "step": 3, "totalSteps": 3, "message": "step 3", "metrics": {"loss": 1 / 3}}
    final = await job_state(gql, job["id"])
    assert final["state"] == "SUCCEEDED" and final["exitCode"] == 0
    assert final["progress"]["fraction"] == 1.0
    assert final["startedAt"] and final["finishedAt"]
    logs = await gql.execute("query($id: ID!) { node(id: $id) { ... on Job { logs(tailLines: 1) } } }", {"id": job["id"]})
    assert logs["node"]["logs"] == "done\n"


async def test_a_failing_job_ends_failed_with_its_exit_code(gateway: Gateway) -> None:
    gql = gateway.client
    job = await submit(gql, python_job("import sys; sys.exit(7)"))
    events = await collect_events(gql, job["id"])
    assert states_of(events)[-1] == "FAILED"
    final = await job_state(gql, job["id"])
    assert final["exitCode"] == 7
    assert "7" in final["failureReason"]


async def test_every_failure_reason_starts_with_its_code(gateway: Gateway) -> None:
    gql = gateway.client
    cases = {
        "COMMAND_NOT_FOUND": {"name": "missing", "command": ["/no/such/program"], "request": {"maxDurationMinutes": 1, "devices": 1}},
        "SIGNAL": python_job("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"),
        "EXIT_CODE": python_job("import sys; sys.exit(3)"),
    }
    for code, job in cases.items():
        submitted = await submit(gql, job)
        await collect_events(gql, submitted["id"])
        final = await job_state(gql, submitted["id"])
        assert final["state"] == "FAILED" and final["failureReason"].startswith(code + ": "), (code, final)


async def test_cancel_stops_the_job_and_its_process_tree(gateway: Gateway) -> None:
    gql = gateway.client
    script = "import subprocess, time; subprocess.Popen(['sleep', '300']); print('started', flush=True); time.sleep(300)"
    job = await submit(gql, python_job(script))
    await wait_for_state(gql, job["id"], {"RUNNING"})
    center_root = gateway.runtime.settings.data_dir / "centers" / "local" / "jobs"
    child = json.loads(next(center_root.glob("*/child.json")).read_text())
    payload = (await gql.execute(CANCEL, {"id": job["id"]}))["cancelJob"]
    assert payload["userErrors"] == [] and payload["clientMutationId"] == "c1"
    assert payload["job"]["state"] in {"CANCELLING", "CANCELLED"}
    final = await wait_for_state(gql, job["id"], {"CANCELLED", "FAILED", "SUCCEEDED"})
    assert final["state"] == "CANCELLED"
    assert not group_alive(child["pid"])
    again = (await gql.execute(CANCEL, {"id": job["id"]}))["cancelJob"]
    assert [error["code"] for error in again["userErrors"]] == ["JOB_ALREADY_FINISHED"]


async def test_the_time_limit_stops_the_job(gateway: Gateway) -> None:
    gql = gateway.client
    job = await submit(gql, python_job("import time; time.sleep(300)", minutes=0.02))
    final = await wait_for_state(gql, job["id"], {"FAILED", "SUCCEEDED", "CANCELLED"}, timeout=20)
    assert final["state"] == "FAILED"
    assert final["failureReason"].startswith("TIME_LIMIT")


@pytest.mark.both_databases  # the queue is in the database
async def test_jobs_beyond_capacity_wait_queued_then_run(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(cores=1)])
    gql = gateway.client
    first = await submit(gql, python_job("import time; time.sleep(300)", name="first"))
    second = await submit(gql, python_job("print('second')", name="second"))
    assert second["state"] == "QUEUED"
    await wait_for_state(gql, first["id"], {"RUNNING"})
    assert (await job_state(gql, second["id"]))["state"] == "QUEUED"
    await gql.execute(CANCEL, {"id": first["id"]})
    final = await wait_for_state(gql, second["id"], {"SUCCEEDED", "FAILED"})
    assert final["state"] == "SUCCEEDED"
    assert states_of([edge["node"] for edge in final["events"]["edges"]]) == ["PENDING", "QUEUED", "STARTING", "RUNNING", "SUCCEEDED"]


@pytest.mark.both_databases  # the replay reads the event log
async def test_reconnecting_with_after_replays_exactly_the_missed_events(gateway: Gateway) -> None:
    gql = gateway.client
    script = (
        "import json, time\nfor i in range(1, 9):\n    print('AICN_PROGRESS ' + json.dumps({'step': i}), flush=True)\n    time.sleep(0.15)"
    )
    job = await submit(gql, python_job(script))
    head = await collect_events(gql, job["id"], limit=4)
    assert [event["seq"] for event in head] == [1, 2, 3, 4]
    # events keep coming while the client is away
    await eventually(lambda: missed_since(gql, job["id"], head[-1]["seq"]), "events while the client is away")
    tail = await collect_events(gql, job["id"], after=head[-1]["seq"])
    seqs = [event["seq"] for event in head + tail]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert states_of(tail)[-1] == "SUCCEEDED"
    steps = [event["progress"]["step"] for event in head + tail if event["kind"] == "PROGRESS"]
    assert steps == list(range(1, 9))
    # after the end, a replay from any point returns the rest and completes
    replay = await collect_events(gql, job["id"], after=len(seqs) - 2)
    assert [event["seq"] for event in replay] == [len(seqs) - 1, len(seqs)]


async def test_job_updates_streams_changes_to_many_jobs(gateway: Gateway) -> None:
    gql = gateway.client
    query = 'subscription { jobUpdates(filter: {states: [SUCCEEDED], nameContains: "dash"}) { id name state } }'
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async for data in gql.subscribe(query):
            seen.append(data["jobUpdates"])
            if len(seen) == 2:
                return

    watcher = await subscribed(gateway.runtime.bus, "jobs", watch())
    ids = {(await submit(gql, python_job("print(1)", name=f"dash-{n}")))["id"] for n in range(2)}
    await submit(gql, python_job("print(1)", name="other"))
    await asyncio.wait_for(watcher, 20)
    assert {job["id"] for job in seen} == ids
    assert all(job["state"] == "SUCCEEDED" for job in seen)


@pytest.mark.both_databases  # a unique constraint
async def test_the_same_idempotency_key_makes_one_job(gateway: Gateway) -> None:
    gql = gateway.client
    first = await submit(gql, python_job("print(1)", idempotencyKey="key-1"))
    second = await submit(gql, python_job("print(1)", idempotencyKey="key-1"))
    assert first["id"] == second["id"]
    listing = await gql.execute("{ jobs { totalCount } }")
    assert listing["jobs"]["totalCount"] == 1
    for changed in (
        python_job("print(2)", idempotencyKey="key-1"),
        python_job("print(1)", name="other", idempotencyKey="key-1"),
        python_job("print(1)", minutes=2, idempotencyKey="key-1"),
        python_job("print(1)", idempotencyKey="key-1", environment={"A": "1"}),
    ):
        payload = (await gql.execute(SUBMIT, {"input": changed}))["submitJob"]
        assert payload["job"] is None, changed
        assert [(error["code"], error["field"]) for error in payload["userErrors"]] == [("IDEMPOTENCY_KEY_REUSED", ["idempotencyKey"])]
    assert (await gql.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 1
    assert (await submit(gql, python_job("print(1)", idempotencyKey="key-1")))["id"] == first["id"]


BAD_INPUTS = [
    ({"command": []}, "EMPTY_COMMAND", ["command"]),
    ({"command": [""]}, "EMPTY_COMMAND", ["command"]),
    ({"name": " "}, "INVALID_NAME", ["name"]),
    ({"request": {"maxDurationMinutes": 0, "devices": 1}}, "INVALID_DURATION", ["request", "maxDurationMinutes"]),
    ({"request": {"maxDurationMinutes": -5, "devices": 1}}, "INVALID_DURATION", ["request", "maxDurationMinutes"]),
    ({"request": {"maxDurationMinutes": 5}}, "NO_RESOURCES", ["request"]),
    ({"request": {"maxDurationMinutes": 5, "standardUnits": -1}}, "INVALID_UNITS", ["request", "standardUnits"]),
    ({"request": {"maxDurationMinutes": 5, "devices": 64}}, "NO_FEASIBLE_CENTER", ["request"]),
    ({"request": {"maxDurationMinutes": 1, "devices": 0}}, "INVALID_DEVICES", ["request", "devices"]),
    ({"request": {"maxDurationMinutes": 1, "accelerator": "tpu-v9"}}, "UNKNOWN_ACCELERATOR", ["request", "accelerator"]),
    ({"centerId": "Q29tcHV0ZUNlbnRlcjo5OTk"}, "CENTER_NOT_FOUND", ["centerId"]),
    ({"centerId": "not-an-id"}, "CENTER_NOT_FOUND", ["centerId"]),
    ({"inputDatasetIds": ["RGF0YXNldDo0Mg"]}, "DATASET_NOT_FOUND", ["inputDatasetIds", "0"]),
    ({"environment": ["not", "an", "object"]}, "INVALID_ENVIRONMENT", ["environment"]),
    ({"environment": {"EPOCHS": 3}}, "INVALID_ENVIRONMENT", ["environment"]),
    ({"environment": {"RATE": 0.5}}, "INVALID_ENVIRONMENT", ["environment"]),
    ({"environment": {"DEBUG": True}}, "INVALID_ENVIRONMENT", ["environment"]),
    ({"environment": {"NESTED": {"a": "b"}}}, "INVALID_ENVIRONMENT", ["environment"]),
    ({"request": {"maxDurationMinutes": 5, "devices": 1, "standardUnits": 1}}, "CONFLICTING_RESOURCES", ["request", "standardUnits"]),
    ({"request": {"maxDurationMinutes": 5, "cpus": 1, "standardUnits": 1}}, "CONFLICTING_RESOURCES", ["request", "standardUnits"]),
]


async def test_bad_input_is_a_user_error_and_creates_nothing(gateway: Gateway) -> None:
    gql = gateway.client
    for override, code, field in BAD_INPUTS:
        job = python_job("print(1)")
        job.update(override)
        payload = (await gql.execute(SUBMIT, {"input": job}))["submitJob"]
        assert payload["job"] is None, override
        assert [(error["code"], error["field"]) for error in payload["userErrors"]] == [(code, field)], override
        assert all(error["message"] for error in payload["userErrors"])
    assert (await gql.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0
    missing = (await gql.execute(CANCEL, {"id": "Sm9iOjk5OTk"}))["cancelJob"]
    assert [error["code"] for error in missing["userErrors"]] == ["JOB_NOT_FOUND"]
    # a missing required field is a GraphQL validation error (400), and the server keeps serving
    response = await gql.post(SUBMIT, {"input": {"name": "x", "command": ["true"]}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert (await gql.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0


@pytest.mark.both_databases  # what a restart finds is in the database
async def test_a_gateway_restart_reattaches_running_jobs(gateway_factory: Any) -> None:
    first: Gateway = await gateway_factory()
    gql = first.client
    job = await submit(gql, python_job("import time; time.sleep(2); print('survived')"))
    await wait_for_state(gql, job["id"], {"RUNNING"})
    await first.stop()  # the gateway goes away; the job does not
    second: Gateway = await gateway_factory()
    final = await wait_for_state(second.client, job["id"], {"SUCCEEDED", "FAILED"})
    assert final["state"] == "SUCCEEDED"
    assert states_of([edge["node"] for edge in final["events"]["edges"]]) == ["PENDING", "STARTING", "RUNNING", "SUCCEEDED"]


@pytest.mark.both_databases  # what a restart finds is in the database
async def test_a_job_lost_while_the_gateway_was_down_ends_failed(gateway_factory: Any) -> None:
    first: Gateway = await gateway_factory()
    gql = first.client
    job = await submit(gql, python_job("import time; time.sleep(300)"))
    await wait_for_state(gql, job["id"], {"RUNNING"})
    await first.stop()
    jobs_dir = first.runtime.settings.data_dir / "centers" / "local" / "jobs"
    job_dir = next(jobs_dir.iterdir())
    import os
    import signal

    os.kill(int((job_dir / "runner.pid").read_text().split()[0]), signal.SIGKILL)
    os.killpg(json.loads((job_dir / "child.json").read_text())["pid"], signal.SIGKILL)
    second: Gateway = await gateway_factory()
    final = await wait_for_state(second.client, job["id"], {"SUCCEEDED", "FAILED"})
    assert final["state"] == "FAILED"
    assert final["failureReason"].startswith("LOST")


@pytest.mark.both_databases  # PostgreSQL's JSON refuses NaN; the event log must still take the line
async def test_metrics_that_are_not_finite_numbers_reach_the_graph_as_null(gateway: Gateway) -> None:
    gql = gateway.client
    script = 'print(\'AICN_PROGRESS {"step": 1, "metrics": {"loss": NaN, "grad": [Infinity, 1.5], "lr": 0.1}}\', flush=True)'
    job = await submit(gql, python_job(script))
    final = await wait_for_state(gql, job["id"], {"SUCCEEDED", "FAILED"})
    assert final["state"] == "SUCCEEDED"
    data = await gql.execute(
        "query($id: ID!) { node(id: $id) { ... on Job { progress { step metrics } events { edges { node { kind progress { metrics } } } } } } }",
        {"id": job["id"]},
    )
    assert data["node"]["progress"] == {"step": 1, "metrics": {"loss": None, "grad": [None, 1.5], "lr": 0.1}}
    progress = [edge["node"]["progress"] for edge in data["node"]["events"]["edges"] if edge["node"]["kind"] == "PROGRESS"]
    assert progress == [{"metrics": {"loss": None, "grad": [None, 1.5], "lr": 0.1}}]
