"""A token's scopes bound every field it reads, through every operation (graph/core/permissions.py).

The sweep is generated from the served schema, like the isolation suite: for every field
reachable from every mutation's payload, one mutation that selects it by the shortest path.
A ``submit``-only token may read what the mutation answers (the payload's fields and the
scalars of the objects it holds) and nothing beyond; a ``read``+``submit`` token reads it all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema, get_named_type, is_interface_type, is_leaf_type, is_object_type

from tests.conftest import Gateway
from tests.isolation_probe import fetch_schema
from tests.test_auth import new_account

ADMIN_MUTATIONS = {"createAccount", "createApiToken", "revokeApiToken", "setStorageQuota", "topUp", "setLowBalanceThreshold", "setQuota"}


def codes(body: dict[str, Any]) -> list[str]:
    return [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]


def payload_paths(schema: GraphQLSchema) -> Iterator[tuple[str, tuple[str, ...], bool]]:
    """(mutation, field path below its payload, whether the path reaches beyond what the mutation answers)."""
    mutation = schema.mutation_type
    assert mutation is not None
    for name, root in sorted(mutation.fields.items()):
        if name in ADMIN_MUTATIONS:
            continue
        seen: set[str] = set()
        queue: deque[tuple[GraphQLObjectType, tuple[str, ...]]] = deque([(get_named_type(root.type), ())])  # type: ignore[list-item]
        while queue:
            parent, path = queue.popleft()
            for field_name, field in sorted(parent.fields.items()):
                coordinate = f"{parent.name}.{field_name}"
                target = get_named_type(field.type)
                here = (*path, field_name)
                beyond = len(here) >= 3 or (len(here) == 2 and not is_leaf_type(target) and target.name != "UserError")
                if coordinate in seen:
                    continue
                seen.add(coordinate)
                yield name, here, beyond
                if (is_object_type(target) or is_interface_type(target)) and len(here) < 6:
                    queue.append((target, here))  # type: ignore[arg-type]


def document(schema: GraphQLSchema, mutation: str, path: tuple[str, ...]) -> str:
    """``mutation { m { a { b { __typename } } } }``: arguments left out, the scope check comes first."""
    selection = "__typename"
    parent: Any = get_named_type(schema.mutation_type.fields[mutation].type)  # type: ignore[union-attr]
    types = []
    for name in path:
        target = get_named_type(parent.fields[name].type)
        types.append(target)
        parent = target
    for name, target in reversed(list(zip(path, types, strict=True))):
        selection = name if is_leaf_type(target) and selection == "__typename" else f"{name} {{ {selection} }}"
    return f"mutation {{ {mutation} {{ {selection} }} }}"


async def test_a_submit_token_reads_nothing_through_a_mutation_payload(gateway: Gateway) -> None:
    _, _, submitter = await new_account(gateway, "submitter", ["SUBMIT"])
    attack = """mutation { registerDataset(input: {name: "d", uri: "s3://b/k"}) {
      dataset { id name owner { name tokens { prefix } bills { totalCount } jobs { edges { node { id logs } } } } } } }"""
    refused = await submitter.post(attack)
    assert refused.status_code == 403 and codes(refused.json()) == ["FORBIDDEN"] and "data" not in refused.json()
    assert refused.json()["errors"][0]["extensions"]["requiredScopes"] == ["read"]
    assert "Dataset.owner" in refused.json()["errors"][0]["extensions"]["fields"]
    made = await submitter.execute(
        'mutation { registerDataset(input: {name: "d", uri: "s3://b/k"}) { dataset { id name } userErrors { code } } }'
    )
    assert made["registerDataset"]["userErrors"] == [] and made["registerDataset"]["dataset"]["name"] == "d"  # the refused one made nothing


async def test_the_scope_rule_holds_for_every_field_reachable_from_every_mutation_payload(gateway: Gateway) -> None:
    schema = await fetch_schema(gateway.admin)
    _, _, submitter = await new_account(gateway, "submitter", ["SUBMIT"])
    _, _, member = await new_account(gateway, "member", ["READ", "SUBMIT"])
    paths = list(payload_paths(schema))
    assert sum(beyond for *_, beyond in paths) >= 50 and sum(not beyond for *_, beyond in paths) >= 20, len(paths)
    wrong = []
    for mutation, path, beyond in paths:
        query = document(schema, mutation, path)
        as_submitter = (await submitter.post(query)).json()
        refused = codes(as_submitter) == ["FORBIDDEN"] and as_submitter["errors"][0]["extensions"]["requiredScopes"] == ["read"]
        if refused != beyond:
            wrong.append((query, as_submitter.get("errors")))
        if "FORBIDDEN" in codes((await member.post(query)).json()):
            wrong.append((query, "refused for read+submit"))
    assert wrong == [], wrong[:5]
