"""Persistence: tables, repositories, migrations and the event bus. Knows nothing of GraphQL."""
