"""Metering and billing in the graph: usage records, bills, balances, budgets."""
