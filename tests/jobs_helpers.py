"""Shared GraphQL snippets and helpers for the end-to-end job tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.client import GraphQLClient
from tests.processes import JOB_PYTHON

PYTHON = JOB_PYTHON

SUBMIT = """
mutation Submit($input: SubmitJobInput!) {
  submitJob(input: $input) {
    job { id name state center { id name } request { accelerator devices maxDurationMinutes } }
    userErrors { field message code }
  }
}
"""

JOB = """
query Job($id: ID!) {
  node(id: $id) {
    ... on Job {
      id name state exitCode failureReason startedAt finishedAt
      progress { fraction step totalSteps message metrics }
      events(first: 100) { edges { node { seq kind state message progress { fraction } } } }
    }
  }
}
"""

EVENTS = """
subscription Events($jobId: ID!, $after: Int) {
  jobEvents(jobId: $jobId, after: $after) { seq kind state message progress { fraction step totalSteps message metrics } }
}
"""

CANCEL = """
mutation Cancel($id: ID!) {
  cancelJob(input: {jobId: $id, clientMutationId: "c1"}) { job { id state } userErrors { code message field } clientMutationId }
}
"""

PROGRESS_SCRIPT = """
import json, time
for step in range(1, 4):
    print("AICN_PROGRESS " + json.dumps({"fraction": step / 3, "step": step, "totalSteps": 3, "message": f"step {step}", "metrics": {"loss": 1.0 / step}}), flush=True)
    time.sleep(0.2)
print("done", flush=True)
"""


def python_job(script: str, name: str = "test-job", minutes: float = 1.0, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"name": name, "command": [PYTHON, "-c", script], "request": {"maxDurationMinutes": minutes, "devices": 1}}
    job.update(extra)
    return job


async def submit(gql: GraphQLClient, job: dict[str, Any]) -> dict[str, Any]:
    payload = (await gql.execute(SUBMIT, {"input": job}))["submitJob"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["job"]


async def job_state(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await gql.execute(JOB, {"id": job_id}))["node"]


async def wait_for_state(gql: GraphQLClient, job_id: str, states: set[str], timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = await job_state(gql, job_id)
        if job["state"] in states:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {job.get('state')} (wanted {states}): {job.get('failureReason')}")


async def collect_events(gql: GraphQLClient, job_id: str, after: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async for data in gql.subscribe(EVENTS, {"jobId": job_id, "after": after}):
        events.append(data["jobEvents"])
        if limit is not None and len(events) >= limit:
            break
    return events
