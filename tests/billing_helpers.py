"""Shared GraphQL snippets and helpers for the billing tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.client import GraphQLClient
from tests.conftest import Gateway

#: a price that makes a CPU core cost 0.032 per second (0.0032 units x 36000 / 3600)
PRICE = "36000.00"
CORE_SECOND = Decimal("0.032")

USAGE_FIELDS = """
  id seconds accelerator devices standardUnitsPerDevice standardUnitHours startedAt endedAt
  unitPrice { amount currency } amount { amount currency }
  job { id } center { name } computeUnit { accelerator { model } } bill { id status period }
"""

JOB_USAGE = (
    """
query($id: ID!) { node(id: $id) { ... on Job { id state startedAt finishedAt usage { """
    + USAGE_FIELDS
    + """ } } } }
"""
)

VIEWER_MONEY = """
{ viewer { balance { amount currency } holds { amount } available { amount } } }
"""

BILL = """
query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Bill {
  id period status periodStart periodEnd total { amount currency } finalizedAt csvUrl account { name }
  lines(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor }
    edges { node { kind description amount { amount } usage { id job { id } } corrects { id } bill { id } } } }
} } }
"""

BILLS = """
{ bills(first: 50) { totalCount edges { node { id period status total { amount } } } } }
"""

FINALIZE = """
mutation($id: ID!) { finalizeBill(input: {billId: $id}) { bill { id status finalizedAt } userErrors { code message field } } }
"""

ADJUST = """
mutation($id: ID!, $amount: Decimal!, $description: String!) {
  addBillAdjustment(input: {billId: $id, amount: $amount, description: $description, clientMutationId: "a"}) {
    bill { id period status total { amount } } line { kind amount { amount } description corrects { id } }
    userErrors { code message field } clientMutationId
  }
}
"""

SET_BUDGET = """
mutation($amount: Decimal) { setBudget(input: {amount: $amount}) {
  account { budget { amount { amount } period spent { amount } alerts { seq threshold } } }
  userErrors { code message field } } }
"""

BUDGET_ALERTS = """
subscription($after: Int) { budgetAlerts(after: $after) { seq period threshold budget { amount } spent { amount currency } account { name } } }
"""


def make_admin(gateway: Gateway) -> GraphQLClient:
    """Ask as the administrator from now on: the admin token belongs to the default account too."""
    gateway.client = gateway.admin
    return gateway.admin


async def money(gql: GraphQLClient) -> dict[str, Decimal]:
    viewer = (await gql.execute(VIEWER_MONEY))["viewer"]
    return {key: Decimal(viewer[key]["amount"]) for key in ("balance", "holds", "available")}


async def job_usage(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await gql.execute(JOB_USAGE, {"id": job_id}))["node"]


async def bill(gql: GraphQLClient, bill_id: str, first: int = 100, after: str | None = None) -> dict[str, Any]:
    return (await gql.execute(BILL, {"id": bill_id, "first": first, "after": after}))["node"]


async def adjust(gql: GraphQLClient, bill_id: str, amount: str, description: str = "correction") -> dict[str, Any]:
    return (await gql.execute(ADJUST, {"id": bill_id, "amount": amount, "description": description}))["addBillAdjustment"]
