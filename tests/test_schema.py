"""schema.graphql is generated from the code; this fails when the two drift apart."""

from __future__ import annotations

from pathlib import Path

from aicn.cli import export_schema_text

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_checked_in_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == export_schema_text(), "schema.graphql is stale: run `aicn export-schema` and commit the result"


def test_the_sketch_operations_clients_code_against_exist() -> None:
    text = SCHEMA_FILE.read_text()
    for operation in (
        "node(id: ID!): Node",
        "nodes(ids: [ID!]!): [Node]!",
        "viewer: Account!",
        "submitJob(input: SubmitJobInput!): SubmitJobPayload!",
        "cancelJob(input: CancelJobInput!): CancelJobPayload!",
        "registerDataset(input: RegisterDatasetInput!): RegisterDatasetPayload!",
        "registerModel(input: RegisterModelInput!): RegisterModelPayload!",
        "jobEvents(jobId: ID!, after: Int = null): JobEvent!",
        "jobUpdates(filter: JobFilter = null): Job!",
        "acceleratorCatalog: [AcceleratorType!]!",
    ):
        assert operation in text, operation
