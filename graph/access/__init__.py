"""Accounts, API tokens and the audit log in the graph."""
