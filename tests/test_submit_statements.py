"""What one `submitJob` costs in SQL: a fixed number of statements, however many jobs exist and
however many inputs the job reads (batched inserts, one transaction to create it placed)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Gateway
from tests.data_helpers import file_at, register
from tests.jobs_helpers import SUBMIT, python_job
from tests.statements import COUNTED, statements_of

#: busy devices, the account's quota, the billing lock (3), the job, its first events, the
#: center's answer (lock, event, update) and the audit entry
TRIVIAL_SUBMIT = 11


async def counted_submit(gateway: Gateway, **fields: Any) -> list[str]:
    with statements_of(gateway, selects_only=False, tokens_too=True) as statements:
        response = await gateway.client.post(SUBMIT, {"input": python_job("print(1)", **fields)}, headers=COUNTED)
    body = response.json()
    assert response.status_code == 200 and body["data"]["submitJob"]["userErrors"] == [], body
    return statements


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_a_trivial_submit_costs_a_fixed_number_of_statements(gateway: Gateway) -> None:
    await counted_submit(gateway)  # the account's billing row is created on its first job
    assert len(await counted_submit(gateway)) == TRIVIAL_SUBMIT
    for _ in range(5):
        await counted_submit(gateway)
    statements = await counted_submit(gateway)
    assert len(statements) == TRIVIAL_SUBMIT, statements
    assert not [statement for statement in statements if "api_tokens" in statement]  # the token came from the cache


async def test_a_jobs_inputs_are_read_and_written_in_one_statement_each(gateway: Gateway) -> None:
    """(Staging the inputs runs in the background after the answer, one transfer per input.)"""
    datasets = [await register(gateway.client, name=f"input-{n}", uri=file_at(gateway, "local", f"in-{n}.txt")) for n in range(3)]
    await counted_submit(gateway)
    statements = await counted_submit(gateway, inputDatasetIds=[dataset["id"] for dataset in datasets])
    assert sum(statement.startswith("INSERT INTO job_inputs") for statement in statements) == 1
    assert sum(statement.startswith("INSERT INTO jobs ") for statement in statements) == 1
    assert sum("FROM datasets \nWHERE datasets.id IN" in statement for statement in statements) == 1
