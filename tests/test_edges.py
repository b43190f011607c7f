"""Hostile edges through the real HTTP face: text that only looks like what it should be."""

from __future__ import annotations

import base64
from typing import Any

from tests.conftest import Gateway

#: characters that `str.isdigit` accepts: superscripts, Arabic-Indic and full-width digits
LOOKALIKE_DIGITS = ("²", "٣", "\uff13", "1²", "٣٣", "⁹9")


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def codes(body: dict[str, Any]) -> list[str]:
    return [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]


async def test_ids_and_cursors_with_lookalike_digits_answer_like_unknown_ones(gateway: Gateway) -> None:
    for digits in LOOKALIKE_DIGITS:
        for key in (f"Job:{digits}", f"Dataset:{digits}", f"ComputeCenter:{digits}", f"ComputeUnit:{digits}/cpu", f"Bill:{digits}"):
            response = await gateway.client.post("query($id: ID!) { node(id: $id) { id } }", {"id": b64(key)})
            assert response.status_code == 200, (key, response.text)
            assert response.json() == {"data": {"node": None}, "extensions": response.json().get("extensions")}, key
        cancel = await gateway.client.execute(
            "mutation($id: ID!) { cancelJob(input: {jobId: $id}) { userErrors { code } } }", {"id": b64(f"Job:{digits}")}
        )
        assert [e["code"] for e in cancel["cancelJob"]["userErrors"]] == ["JOB_NOT_FOUND"], digits
        page = await gateway.client.post("query($after: String) { jobs(after: $after) { totalCount } }", {"after": b64(f"cursor:{digits}")})
        assert codes(page.json()) == ["BAD_USER_INPUT"], (digits, page.text)
        size = await gateway.client.post(
            'mutation($s: BigInt) { registerDataset(input: {name: "d", uri: "s3://b/k", sizeBytes: $s}) { userErrors { code } } }',
            {"s": digits},
        )
        assert size.status_code < 500 and "INTERNAL" not in codes(size.json()), (digits, size.text)
