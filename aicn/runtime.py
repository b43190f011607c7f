"""The composition root: builds the store, bus, connectors and services from settings."""

from __future__ import annotations

import logging
from decimal import Decimal

from aicn.settings import CenterConfig, Settings
from connectors.base import Connector
from connectors.catalog import Catalog
from connectors.local import LocalConnector
from resolvers.billing import BillingService
from resolvers.bills import BillBook, BillingPolicy
from resolvers.budgets import BudgetAlertStream
from resolvers.centers import Center, CenterRegistry, DeviceOffer
from resolvers.data import DataService
from resolvers.jobs import JobService
from resolvers.ledger import JobLedger
from resolvers.metering import Meter
from resolvers.periods import Calendar
from resolvers.reconciler import Reconciler
from resolvers.streams import JobStreams
from resolvers.viewer import Viewer
from store import accounts as account_store
from store import centers as center_store
from store.bus import InMemoryBus, RedisBus
from store.db import Database

log = logging.getLogger("aicn")


def build_connector(config: CenterConfig, settings: Settings) -> Connector:
    if config.kind == "LOCAL":
        devices = {device.accelerator: device.count for device in config.devices}
        return LocalConnector(config.name, settings.data_dir / "centers" / config.name, devices or {"cpu-core": 1})
    if config.kind == "SLURM":
        from connectors.slurm_factory import build_slurm_connector

        return build_slurm_connector(config)
    raise ValueError(f"unknown center kind {config.kind}")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.resolved_database_url, schema=settings.database_schema)
        self.bus: InMemoryBus = RedisBus(settings.bus_url) if settings.bus_url else InMemoryBus()
        self.catalog = Catalog.with_overrides(settings.catalog)
        self.registry = CenterRegistry([], self.catalog, settings.currency)
        policy = BillingPolicy(settings.currency, settings.default_account_balance, Calendar(settings.billing_timezone))
        book = BillBook(policy)
        self.billing = BillingService(self.db, self.bus, book, self.catalog)
        self.budget_alerts = BudgetAlertStream(self.db, self.bus)
        self.ledger = JobLedger(self.db, self.bus, meter=Meter(book))
        self.jobs = JobService(self.db, self.registry, self.ledger, billing=self.billing)
        self.data = DataService(self.db)
        self.streams = JobStreams(self.db, self.bus)
        self.reconcilers: list[Reconciler] = []
        self.default_viewer: Viewer | None = None

    async def start(self, *, reconcile: bool = True) -> None:
        await self.db.migrate()
        await self.bus.start()
        async with self.db.transaction() as session:
            account = await account_store.ensure_account(session, self.settings.account_name)
            rows = await center_store.sync_centers(
                session,
                [(c.name, c.kind, c.display_name or c.name, c.region) for c in self.settings.centers],
            )
        self.default_viewer = Viewer(account_id=account.id, is_admin=False)
        centers: list[Center] = []
        for config, row in zip(self.settings.centers, rows):
            connector = build_connector(config, self.settings)
            await connector.start()
            centers.append(
                Center(
                    id=row.id,
                    name=config.name,
                    kind=config.kind,
                    display_name=config.display_name or config.name,
                    region=config.region,
                    connector=connector,
                    offers=[DeviceOffer(d.accelerator, Decimal(d.price_per_unit_hour), d.partition) for d in config.devices],
                    deadline_seconds=config.deadline_seconds,
                    poll_interval_seconds=config.poll_interval_seconds,
                )
            )
        self.registry.replace(centers)
        if reconcile:
            for center in centers:
                reconciler = Reconciler(self.db, self.registry, self.ledger, self.jobs, center)
                reconciler.start()
                self.reconcilers.append(reconciler)
        log.info("aicn started: %d center(s), database %s", len(centers), self.db.dialect)

    async def stop(self) -> None:
        for reconciler in self.reconcilers:
            await reconciler.stop()
        self.reconcilers.clear()
        for center in self.registry.all():
            await center.connector.close()
        await self.bus.close()
        await self.db.dispose()
