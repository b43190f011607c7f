"""The audit log of mutations, masked internal errors, and logs without secrets."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.jobs_helpers import SUBMIT, python_job
from tests.test_auth import CREATE_ACCOUNT, CREATE_TOKEN

AUDIT = """
query($first: Int, $account: ID) {
  auditLog(first: $first, accountId: $account) {
    totalCount
    edges { node { id at operation input outcome codes requestId tokenId account { name } } }
  }
}
"""


@pytest.mark.both_databases  # the audit log is a table, paged and filtered by the queries
async def test_every_mutation_is_recorded_without_secrets(gateway: Gateway) -> None:
    job = python_job("print(1)", environment={"API_KEY": "s3cret-value"})
    submitted = await gateway.client.post(SUBMIT, {"input": job})
    assert submitted.json()["data"]["submitJob"]["userErrors"] == []
    refused = await gateway.client.post(SUBMIT, {"input": python_job("print(1)", request={"maxDurationMinutes": 0})})
    forbidden = await gateway.client.post(CREATE_ACCOUNT, {"input": {"name": "nope"}})
    assert forbidden.status_code == 403
    account = (await gateway.admin.execute(CREATE_ACCOUNT, {"input": {"name": "audited"}}))["createAccount"]["account"]
    issued = await gateway.admin.execute(CREATE_TOKEN, {"input": {"accountId": account["id"], "name": "t", "scopes": ["READ"]}})
    secret = issued["createApiToken"]["secret"]

    log = (await gateway.admin.execute(AUDIT, {"first": 10}))["auditLog"]
    entries = [edge["node"] for edge in log["edges"]]
    assert log["totalCount"] == 5
    assert [(entry["operation"], entry["outcome"], entry["codes"][:1]) for entry in entries] == [
        ("createApiToken", "OK", []),
        ("createAccount", "OK", []),
        ("createAccount", "ERROR", ["FORBIDDEN"]),
        ("submitJob", "USER_ERRORS", ["INVALID_DURATION"]),
        ("submitJob", "OK", []),
    ]
    first = entries[-1]
    assert first["requestId"] == submitted.headers["x-request-id"]
    assert first["account"] == {"name": "default"} and first["tokenId"]
    assert first["input"]["input"]["environment"] == ["API_KEY"]  # names, never values
    assert first["input"]["input"]["request"]["maxDurationMinutes"] == 1.0  # camelCase, as the client wrote it
    assert entries[3]["requestId"] == refused.headers["x-request-id"]
    text = str(entries)
    assert "s3cret-value" not in text and secret not in text and gateway.client.token not in text
    only_audited = (await gateway.admin.execute(AUDIT, {"account": account["id"]}))["auditLog"]
    assert only_audited["totalCount"] == 0  # the admin acted, not the new account
    mine = await gateway.admin.execute(AUDIT, {"account": (await gateway.client.execute("{ viewer { id } }"))["viewer"]["id"]})
    assert mine["auditLog"]["totalCount"] == 5  # the admin token belongs to the default account too
    assert len({entry["tokenId"] for entry in entries}) == 2


async def test_internal_errors_are_masked_and_logged_with_the_request_id_but_no_token(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = gateway.client.token
    assert token is not None

    class Exploding:
        def __iter__(self) -> Any:
            raise RuntimeError(f"catalog broke while serving Bearer {token}")

    gateway.runtime.registry.catalog = Exploding()  # type: ignore[assignment]
    with caplog.at_level(logging.INFO):
        response = await gateway.client.post("{ acceleratorCatalog { model } }")
    body = response.json()
    request_id = response.headers["x-request-id"]
    assert response.status_code == 200 and body["data"] is None
    assert body["errors"][0]["message"] == "Internal server error"
    assert body["errors"][0]["extensions"] == {"code": "INTERNAL", "requestId": request_id}
    assert "catalog broke" not in response.text and "Traceback" not in response.text
    logged = caplog.text
    assert "catalog broke" in logged and request_id in logged
    assert token not in logged and "[REDACTED]" in logged
    assert any(getattr(record, "request_id", None) == request_id for record in caplog.records)


def test_the_log_filter_removes_tokens_from_any_record(caplog: pytest.LogCaptureFixture) -> None:
    from graph.http import logs

    logs.install()
    secret = "aicn_" + "A1b2C3d4" * 5
    logger = logging.getLogger("aicn.test")
    with caplog.at_level(logging.INFO):
        logger.info("header Authorization: Bearer %s", secret)
        logger.info("payload %s", {"token": "opaque-secret-value-123456"})
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            logger.exception("failed")
    assert secret not in caplog.text and "opaque-secret-value-123456" not in caplog.text
    assert caplog.text.count("[REDACTED]") >= 3
    assert all(hasattr(record, "request_id") for record in caplog.records)


async def test_an_access_log_line_with_a_token_in_the_url_is_logged_redacted(gateway: Gateway) -> None:
    """uvicorn's access formatter unpacks the record's five arguments: redaction must keep them."""
    from uvicorn.logging import AccessFormatter

    secret = "aicn_" + "Z9y8X7w6" * 5
    response = await gateway.client.http.get(f"/graphql?query=%7B__typename%7D&token={secret}")
    assert response.status_code < 500
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", f"/graphql?token={secret}", "1.1", 200),
        None,
    )
    line = AccessFormatter(fmt="%(client_addr)s %(request_line)s %(status_code)s", use_colors=False).format(record)
    assert secret not in line and "[REDACTED]" in line and "GET /graphql?token=" in line and "200" in line
