"""The composition root: builds the store, bus, connectors and services from settings."""

from __future__ import annotations

import logging
from decimal import Decimal

from aicn.access_cli import announce_admin_token
from aicn.settings import CenterConfig, Settings
from connectors.base import Connector
from connectors.catalog import Catalog
from connectors.local import LocalConnector
from resolvers.audit import AuditLog
from resolvers.auth import AccessService
from resolvers.centers import Center, CenterRegistry, DeviceOffer
from resolvers.data import DataService
from resolvers.jobs import JobService
from resolvers.ledger import JobLedger
from resolvers.reconciler import Reconciler
from resolvers.streams import JobStreams
from resolvers.throttle import Throttle
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
        self.ledger = JobLedger(self.db, self.bus)
        self.jobs = JobService(self.db, self.registry, self.ledger)
        self.data = DataService(self.db)
        self.streams = JobStreams(self.db, self.bus)
        self.access = AccessService(self.db, self.bus)
        self.audit = AuditLog(self.db)
        self.throttle = Throttle(settings.limits.bucket_size, settings.limits.restore_rate)
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
        admin_token = self.settings.admin_token.get_secret_value() if self.settings.admin_token else None
        issued = await self.access.bootstrap(account.id, admin_token)
        if issued is not None:
            announce_admin_token(issued, self.settings.account_name)
            log.warning("first start: an admin token was created and printed to stdout (prefix %s)", issued[:12])
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
