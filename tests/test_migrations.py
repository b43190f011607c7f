"""The migrations build exactly the tables the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from store.db import Database
from store.schema import Base
from tests.conftest import DatabaseChoice

pytestmark = pytest.mark.both_databases  # migrations are per dialect


async def test_migrations_match_the_declared_tables(database: DatabaseChoice) -> None:
    db = Database(database.url or "", schema=database.schema)
    await db.migrate()

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return compare_metadata(context, Base.metadata)

    try:
        async with db.engine.connect() as connection:
            found = await connection.run_sync(differences)
    finally:
        await db.dispose()
    assert found == []
