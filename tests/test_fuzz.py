"""Fuzzing the live gateway with operations generated from its own schema (hypothesis-graphql).

Valid and invalid queries and mutations go to the real `/graphql`; whatever comes back
must not be a 5xx, must not take longer than the per-request timeout, and must not carry
an `INTERNAL` error. The center has no capacity, so submitted jobs wait and no generated
command ever runs.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from aicn.security_settings import LimitSettings
from tests.conftest import Gateway, local_center
from tests.isolation_probe import fetch_schema

pytestmark = pytest.mark.both_databases  # generated input reaches each database's columns and types

POSITIVE = 700
NEGATIVE = 400
REQUEST_TIMEOUT = 10.0
#: the default limits, with a bucket that never runs dry: the fuzzer sends as fast as it can
FUZZ_LIMITS = LimitSettings(bucket_size=10_000_000, restore_rate=1_000_000.0)

_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_JSON_LEAF = st.one_of(st.text(max_size=20).map(nodes.String), st.integers(-(2**40), 2**40).map(nodes.Int))
CUSTOM_SCALARS = {
    "Decimal": st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=6).map(lambda d: nodes.String(str(d))),
        st.text(max_size=12).map(nodes.String),
    ),
    "BigInt": st.one_of(st.integers(-(2**70), 2**70).map(nodes.Int), st.text(max_size=25).map(nodes.String)),
    "JSON": st.one_of(
        _JSON_LEAF,
        st.lists(_JSON_LEAF, max_size=4).map(nodes.List),
        st.dictionaries(_NAME, _JSON_LEAF, max_size=4).map(
            lambda fields: nodes.Object([graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v) for k, v in fields.items()])
        ),
    ),
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda moment: nodes.String(moment.isoformat())),
}


def fuzz(url: str, token: str, schema: graphql.GraphQLSchema) -> list[str]:
    """Run both phases in this (worker) thread; return what was sent, for the count."""
    sent: list[str] = []
    client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT)
    derandomize = os.environ.get("AICN_FUZZ_RANDOM") != "1"

    def check(query: str) -> None:
        sent.append(query)
        response = client.post("/graphql", json={"query": query})
        assert response.status_code < 500, (response.status_code, query, response.text[:500])
        body = response.json()
        codes = [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]
        assert "INTERNAL" not in codes, (query, body)
        assert all(codes), (query, body)  # every error carries a code

    def run(mode: Mode, examples: int) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=derandomize,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(query=from_schema(schema, custom_scalars=CUSTOM_SCALARS, mode=mode))
        def case(query: str) -> None:
            check(query)

        case()

    try:
        run(Mode.POSITIVE, POSITIVE)
        run(Mode.NEGATIVE, NEGATIVE)
    finally:
        client.close()
    return sent


async def test_generated_operations_never_break_the_gateway(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(cores=0)], limits=FUZZ_LIMITS)
    schema = await fetch_schema(gateway.admin)
    assert gateway.admin.token is not None
    sent = await asyncio.to_thread(fuzz, gateway.url, gateway.admin.token, schema)
    assert len(sent) >= 1_000, len(sent)
    assert (await gateway.client.post("{ viewer { name } }")).status_code == 200  # and it still serves
