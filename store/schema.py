"""Every table, registered on one metadata: what migrations and their checks compare against."""

from __future__ import annotations

import store.auth_tables
import store.billing_tables
import store.count_journal
import store.gateway
import store.leases
import store.operations
import store.service_tables
import store.webhook_tables  # noqa: F401
from store.tables import Base

__all__ = ["Base"]
