"""Metering and billing: quotes, holds, usage records, bills, budgets and the FOCUS export."""
