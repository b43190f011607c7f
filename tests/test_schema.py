"""schema.graphql is generated from the code; this fails when the two drift apart."""

from __future__ import annotations

from pathlib import Path

from aicn.cli import export_schema_text

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"
FEDERATION_SCHEMA_FILE = SCHEMA_FILE.with_name("schema.federation.graphql")


def test_checked_in_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == export_schema_text(), "schema.graphql is stale: run `aicn export-schema` and commit the result"


def test_checked_in_federation_schema_matches_the_code() -> None:
    assert FEDERATION_SCHEMA_FILE.read_text() == export_schema_text(federation=True), (
        "schema.federation.graphql is stale: run `aicn export-schema --federation -o schema.federation.graphql` and commit the result"
    )


def test_the_plain_schema_carries_no_federation_directive() -> None:
    export_schema_text(federation=True)  # the directives are attached only while the subgraph schema prints
    text = export_schema_text()
    assert "@key" not in text and "@cost" not in text and "_entities" not in text


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
        "jobUpdates(filter: JobFilter = null, snapshot: Boolean! = false, since: DateTime = null): Job!",
        # schema-sketch-2: money in, limits out
        "topUp(input: TopUpInput!): TopUpPayload!",
        "setQuota(input: SetQuotaInput!): SetQuotaPayload!",
        "enum QuotaMode {",
        "maxPricePerHour: Decimal",
        "centerIds: [ID!]",
        "excludeCenterIds: [ID!]",
        "costSoFar: Money",
        "hold: Money",
        "queuePosition: Int",
        "acceleratorCatalog: [AcceleratorType!]!",
    ):
        assert operation in text, operation
