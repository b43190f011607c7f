"""Centers as the database knows them: stable ids for the centers in the configuration."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.tables import CenterRow


async def sync_centers(session: AsyncSession, centers: Sequence[tuple[str, str, str, str | None]]) -> list[CenterRow]:
    """Insert or update (name, kind, display name, region) rows; ids of known names never change."""
    existing = {row.name: row for row in await session.scalars(select(CenterRow))}
    synced: list[CenterRow] = []
    for name, kind, display_name, region in centers:
        row = existing.get(name)
        if row is None:
            row = CenterRow(name=name, kind=kind, display_name=display_name, region=region)
            session.add(row)
        else:
            row.kind, row.display_name, row.region = kind, display_name, region
        synced.append(row)
    await session.flush()
    return synced
