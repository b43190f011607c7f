"""The billing operations and fields of the sketch that clients code against exist."""

from __future__ import annotations

from tests.test_schema import SCHEMA_FILE


def test_the_billing_contract_exists() -> None:
    text = SCHEMA_FILE.read_text()
    for line in (
        "bills(first: Int = null, after: String = null): BillConnection!",
        "balance: Money!",
        "usage: UsageRecord",
        "lines(first: Int = null, after: String = null): BillLineConnection!",
        "finalizeBill(input: FinalizeBillInput!): FinalizeBillPayload!",
        "addBillAdjustment(input: AddBillAdjustmentInput!): AddBillAdjustmentPayload!",
        "setBudget(input: SetBudgetInput!): SetBudgetPayload!",
        "budgetAlerts(after: Int = null): BudgetAlert!",
        "type UsageRecord implements Node",
        "type Bill implements Node",
        "enum BillStatus",
        "standardUnitHours: Decimal!",
        "csvUrl: String!",
    ):
        assert line in text, line
