"""What one `submitJob` costs in SQL: a fixed number of statements, however many jobs exist and
however many inputs the job reads (batched inserts, one transaction to create it placed). The
account (its quota) comes from the cache with the token; running jobs are read only when a center
lacks free devices (to estimate when it could start the job)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Gateway, local_center
from tests.data_helpers import file_at, register
from tests.jobs_helpers import SUBMIT, python_job
from tests.statements import COUNTED, statements_of

#: the billing lock (one UPDATE ... RETURNING, which reads what the account holds), the job, its first events, the center's
#: answer (one guarded UPDATE ... RETURNING its next sequence number, no read of the row, and its event: on PostgreSQL one
#: statement, the UPDATE in a CTE) and the audit entry
TRIVIAL_SUBMIT = {"sqlite": 6, "postgres": 5}


async def counted_submit(gateway: Gateway, **fields: Any) -> list[str]:
    with statements_of(gateway, selects_only=False, tokens_too=True) as statements:
        response = await gateway.client.post(SUBMIT, {"input": python_job("print(1)", **fields)}, headers=COUNTED)
    body = response.json()
    assert response.status_code == 200 and body["data"]["submitJob"]["userErrors"] == [], body
    return statements


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_a_trivial_submit_costs_a_fixed_number_of_statements(
    gateway_factory: Callable[..., Any], request: pytest.FixtureRequest
) -> None:
    expected = TRIVIAL_SUBMIT[request.node.callspec.params["database"]]
    gateway = await gateway_factory([local_center(cores=64)])  # room for every job: each is handed over at once
    await counted_submit(gateway)  # the account's billing row is created on its first job
    assert len(await counted_submit(gateway)) == expected
    for _ in range(5):
        await counted_submit(gateway)
    statements = await counted_submit(gateway)
    assert len(statements) == expected, statements
    assert not [statement for statement in statements if "api_tokens" in statement]  # the token came from the cache
    assert not [statement for statement in statements if "FROM accounts" in statement]  # and the account with it


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_a_busy_center_costs_one_read_of_the_running_jobs(gateway_factory: Callable[..., Any]) -> None:
    gateway = await gateway_factory([local_center(cores=1)])
    await counted_submit(gateway, command=["sleep", "60"])
    statements = await counted_submit(gateway)  # waits QUEUED: the center's one core is taken
    running = [statement for statement in statements if "jobs.started_at" in statement and "jobs.external_id IS NOT NULL" in statement]
    # and the wait is written against the locked row, on either database: two statements more than SQLite's hand-over
    assert len(running) == 1 and len(statements) == TRIVIAL_SUBMIT["sqlite"] + 2, statements


async def test_a_jobs_inputs_are_read_and_written_in_one_statement_each(gateway: Gateway) -> None:
    """(Staging the inputs runs in the background after the answer, one transfer per input.)"""
    datasets = [await register(gateway.client, name=f"input-{n}", uri=file_at(gateway, "local", f"in-{n}.txt")) for n in range(3)]
    await counted_submit(gateway)
    statements = await counted_submit(gateway, inputDatasetIds=[dataset["id"] for dataset in datasets])
    assert sum(statement.startswith("INSERT INTO job_inputs") for statement in statements) == 1
    assert sum(statement.startswith("INSERT INTO jobs ") for statement in statements) == 1
    assert sum("FROM datasets \nWHERE datasets.id IN" in statement for statement in statements) == 1
