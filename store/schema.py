"""Every table, registered on one metadata: what migrations and their checks compare against."""

from __future__ import annotations

import store.auth_tables
import store.billing_tables  # noqa: F401  (registers its tables on Base.metadata)
from store.tables import Base

__all__ = ["Base"]
