"""The composition root: builds the store, bus, connectors and services from settings."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from aicn.first_start import announce_admin_token
from aicn.settings import CenterConfig, LocalConfig, RayConfig, Settings, SlurmConfig, data_root_of
from aicn.storage_settings import StorageSettings
from aicn.telemetry import flush_tracing
from aicn.watch_settings import WebhookSettings
from connectors.base import Connector
from connectors.catalog import Catalog
from connectors.errors import ConnectorError
from connectors.local.connector import LocalConnector, default_work_root, prepare_work_root
from connectors.local.identity import JobUser, UidRange, falls_back_to_the_gateway_user, resolve_job_user
from connectors.serving.runner_check import ANY_JOB_UID, gateway_python, runnable_by_anyone, runner_refusal
from graph.core.services import Services
from resolvers.access.audit import AuditLog
from resolvers.access.cache import BusCache
from resolvers.access.directory import AccountDirectory
from resolvers.access.quotas import QuotaService
from resolvers.access.reads import AccountReads
from resolvers.access.service import AccessService
from resolvers.access.throttle import Throttle
from resolvers.access.token_cache import TokenCache
from resolvers.access.viewer import Viewer
from resolvers.billing.bills import BillBook, BillingPolicy
from resolvers.billing.budgets import BudgetAlertStream
from resolvers.billing.metering import Meter
from resolvers.billing.periods import Calendar
from resolvers.billing.reads import BillingReads
from resolvers.billing.service import BillingService
from resolvers.billing.settlement import PeerSettlements
from resolvers.centers.health import CircuitBreaker
from resolvers.centers.monitor import HealthMonitor
from resolvers.centers.registry import Center, CenterRegistry, DeviceOffer
from resolvers.common.background import stop_task
from resolvers.common.leases import Leases, replica_id
from resolvers.data.downloads import Downloads
from resolvers.data.objects import ObjectStore, S3Location
from resolvers.data.outputs import OutputCatcher
from resolvers.data.reads import DataReads
from resolvers.data.service import DataService
from resolvers.data.transfers import TransferService
from resolvers.data.uploads import ARTIFACTS_FOLDER, ArtifactStore
from resolvers.jobs.dispatch import Dispatcher
from resolvers.jobs.ledger import JobLedger
from resolvers.jobs.logs import JobLogStream
from resolvers.jobs.reads import JobReads
from resolvers.jobs.reconciler import Reconciler
from resolvers.jobs.service import JobService
from resolvers.jobs.streams import JobStreams
from resolvers.monitoring.snapshot import Monitoring
from resolvers.operations.service import PersistedOperations
from resolvers.services.controller import ServiceController
from resolvers.services.ledger import ServiceLedger
from resolvers.services.policy import ServingPolicy
from resolvers.services.proxy import Proxy
from resolvers.services.reads import ServiceReads
from resolvers.services.service import ServiceService
from resolvers.services.streams import ServiceStreams
from resolvers.services.tally import COUNTS_FOLDER
from resolvers.services.tokens import TokenMeter
from resolvers.webhooks.delivery import RetryPolicy, WebhookDeliverer
from resolvers.webhooks.destinations import DestinationPolicy
from resolvers.webhooks.service import WebhookService
from store import accounts as account_store
from store import centers as center_store
from store import gateway as gateway_store
from store.buckets import RedisBuckets
from store.bus import InMemoryBus, RedisBus
from store.db import Database
from store.jobs import JobGlance
from store.tables import AccountRow

log = logging.getLogger("aicn")

NETWORK_QUEUE = "network-queue"
SERVICES = "services"
#: a replica that handed a job over tells the one reconciling that center to look now
WAKE_CHANNEL = "reconcile-wake"


def center_lease(name: str) -> str:
    return f"center:{name}"


async def _nothing() -> None:
    return None


def build_connector(config: CenterConfig, settings: Settings, gateway_id: str = "") -> Connector:
    if config.kind == "LOCAL":
        devices = {device.accelerator: device.count for device in config.devices}
        local = config.local or LocalConfig()
        return LocalConnector(
            config.name,
            settings.data_dir / "centers" / config.name,
            devices or {"cpu-core": 1},
            run_as=local.run_as,
            work_root=local.work_dir,
            job_uid_range=local.job_uid_range,
        )
    if config.kind == "SLURM":
        from connectors.slurm.connector import SlurmConnector

        slurm = config.slurm or SlurmConfig()
        token = slurm.resolved_token()
        return SlurmConnector(
            config.name,
            slurm.url,
            slurm.user_name,
            token=token,
            jwt_key_file=None if token else slurm.jwt_key_file,
            partition=slurm.partition,
            output_dir=slurm.output_dir,
            working_dir=slurm.working_dir,
            gres_models=slurm.gres_models,
            request_timeout=slurm.request_timeout,
            progress_interval=slurm.progress_interval,
        )
    if config.kind == "RAY":
        from connectors.ray.connector import RayConnector

        ray = config.ray or RayConfig()
        from connectors.ray.serve import ServeOptions

        return RayConnector(
            config.name,
            ray.url,
            token=ray.resolved_token(),
            resource_models=ray.resource_models,
            request_timeout=ray.request_timeout,
            serve=ServeOptions(ray.serve_host, ray.serve_port, ray.serve_replica_cpus),
        )
    if config.kind == "PEER":
        from connectors.peer.connector import PeerConnector

        assert config.peer is not None  # the settings refuse a PEER center without its section
        peer = config.peer
        return PeerConnector(
            config.name,
            peer.url,
            peer.resolved_token(),
            gateway_id=gateway_id,
            markup=peer.markup,
            request_timeout=peer.request_timeout,
            reconnect_seconds=peer.reconnect_seconds,
        )
    raise ValueError(f"unknown center kind {config.kind}")


def object_store(settings: StorageSettings) -> ObjectStore | None:
    """The S3-compatible artifact store ``[storage]`` names (None: the folder under the data dir)."""
    if settings.kind != "s3":
        return None
    assert settings.bucket is not None
    location = S3Location(
        bucket=settings.bucket,
        endpoint=settings.endpoint,
        region=settings.region,
        prefix=settings.prefix,
        access_key_id=settings.access_key_id,
        secret_access_key=settings.resolved_secret(),
        addressing_style=settings.addressing_style,
        part_bytes=settings.part_bytes,
    )
    return ObjectStore(location)


def webhook_policies(settings: WebhookSettings) -> tuple[DestinationPolicy, RetryPolicy]:
    destinations = DestinationPolicy(
        allowed_networks=tuple(ipaddress.ip_network(network, strict=False) for network in settings.allowed_networks),
        allow_http_on_loopback=settings.allow_http_on_loopback,
    )
    retry = RetryPolicy(
        max_attempts=settings.max_attempts,
        base_seconds=settings.retry_base_seconds,
        max_seconds=settings.retry_max_seconds,
        timeout_seconds=settings.timeout_seconds,
        poll_seconds=settings.poll_interval_seconds,
    )
    return destinations, retry


class Runtime:
    def __init__(self, settings: Settings, connectors: Mapping[str, Connector] | None = None) -> None:
        """``connectors`` replaces the connector of the named centers (fault injection, benchmarks)."""
        self.settings = settings
        self.connector_overrides = dict(connectors or {})
        self.db = Database(settings.resolved_database_url, schema=settings.database_schema)
        self.bus: InMemoryBus = RedisBus(settings.bus_url, settings.bus_prefix) if settings.bus_url else InMemoryBus()
        self.catalog = Catalog.with_overrides(settings.catalog)
        self.registry = CenterRegistry([], self.catalog, settings.currency)
        policy = BillingPolicy(settings.currency, settings.default_account_balance, Calendar(settings.billing_timezone))
        book = BillBook(policy)
        self.billing = BillingService(self.db, self.bus, book, self.catalog)
        self.billing.storage_price_per_gb_month = settings.storage_price_per_gb_month
        self.budget_alerts = BudgetAlertStream(self.db, self.bus)
        auth = settings.auth
        caching = bool(auth.token_cache_size and auth.token_cache_seconds)
        account_cache: BusCache[int, AccountRow] | None = BusCache(auth.token_cache_size, auth.token_cache_seconds) if caching else None
        self.accounts = AccountDirectory(self.db, self.bus, account_cache)
        self.ledger = JobLedger(self.db, self.bus, meter=Meter(book), outputs=OutputCatcher(self.registry))
        self.dispatcher = Dispatcher(self.db, self.registry, self.ledger, self.catalog, billing=self.billing, accounts=self.accounts)
        self.jobs = JobService(self.db, self.registry, self.ledger, self.dispatcher, quota_mode=settings.quota_mode, billing=self.billing)
        self.data = DataService(self.db, self.registry, settings.data_import_roots, directory=self.accounts)
        self.objects = object_store(settings.storage)
        self.uploads = ArtifactStore(self.db, settings.data_dir / ARTIFACTS_FOLDER, settings.upload_max_bytes, self.objects)
        self.transfers = TransferService(self.db, self.registry, bytes_per_second=settings.transfer_bytes_per_second, objects=self.objects)
        self.dispatcher.transfers = self.transfers
        self.dispatcher.transfer_price_per_gb = settings.transfer_price_per_gb
        self.streams = JobStreams(self.db, self.bus)
        cache = TokenCache(auth.token_cache_size, auth.token_cache_seconds) if caching else None
        self.access = AccessService(self.db, self.bus, cache)
        self.quotas = QuotaService(self.db, settings.quota_mode, self.accounts)
        self.audit = AuditLog(self.db)
        self.throttle = Throttle(settings.limits.bucket_size, settings.limits.restore_rate)
        self.reconcilers: list[Reconciler] = []
        replicas = settings.replicas
        # its own connections: a replica whose heartbeat waits behind a drained pool would give its centers up
        self.lease_db = self.db.dedicated()
        self.leases = Leases(
            self.lease_db,
            replica_id(replicas.name),
            ttl_seconds=replicas.lease_seconds,
            heartbeat_seconds=replicas.heartbeat_seconds,
            reclaim_dead_local=replicas.reclaim_dead_local_holders,
        )
        self._wake_listener: asyncio.Task[None] | None = None
        self._buckets: RedisBuckets | None = None
        self.monitor = HealthMonitor(self.registry, self.bus)
        destinations, retry = webhook_policies(settings.webhooks)
        self.webhooks = WebhookService(self.db, self.bus, destinations)
        self.deliverer = WebhookDeliverer(self.db, self.bus, destinations, retry)
        self.default_viewer: Viewer | None = None
        serving = settings.services
        serving_policy = ServingPolicy(
            tick_seconds=serving.tick_seconds,
            scale_up_after_seconds=serving.scale_up_after_seconds,
            cool_down_seconds=serving.cool_down_seconds,
            cold_start_seconds=serving.cold_start_seconds,
            health_interval_seconds=serving.health_interval_seconds,
            health_failures=serving.health_failures,
            startup_seconds=serving.startup_seconds,
            max_payload_bytes=serving.max_payload_bytes,
            price_per_million_tokens=serving.price_per_million_tokens,
            token_billing_seconds=serving.token_billing_seconds,
            runner_python=str(serving.python) if serving.python is not None else None,
        )
        service_ledger = ServiceLedger(self.db, self.bus)
        self.service_controller = ServiceController(
            self.db, self.registry, self.jobs, service_ledger, serving_policy, settings.data_dir / COUNTS_FOLDER
        )
        self.service_controller.tokens = TokenMeter(self.db, self.bus, book, serving.token_billing_seconds)
        self.proxy = Proxy()
        self.inference = ServiceService(
            self.db, self.registry, self.jobs, service_ledger, self.service_controller, self.proxy, serving_policy
        )
        self.gateway_id = ""
        self._warned_unisolated = False
        self._isolated_local_centers: list[str] = []
        self._runner_python_checked = False
        self.services = Services(
            centers=self.registry,
            jobs=self.jobs,
            job_reads=JobReads(self.db),
            job_streams=self.streams,
            job_logs=JobLogStream(self.db, self.bus, self.registry, lines_per_second=settings.limits.log_lines_per_second),
            data=self.data,
            data_reads=DataReads(self.db),
            billing=self.billing,
            billing_reads=BillingReads(self.db, self.billing),
            budget_alerts=self.budget_alerts,
            access=self.access,
            quotas=self.quotas,
            account_reads=AccountReads(self.db, self.accounts),
            audit=self.audit,
            throttle=self.throttle,
            operations=PersistedOperations(self.db),
            transfers=self.transfers,
            downloads=Downloads(self.db, self.objects),
            uploads=self.uploads,
            services=self.inference,
            service_reads=ServiceReads(self.db),
            service_streams=ServiceStreams(self.db, self.bus),
            settlements=PeerSettlements(self.db, self.registry, policy.calendar),
            webhooks=self.webhooks,
            monitoring=Monitoring(self.db, self.registry),
        )

    async def database_answers(self) -> bool:
        return await self.db.answers()

    def preflight(self) -> None:
        """What must hold before anything is created (an admin token above all): LOCAL jobs' users exist
        or can be made, and this process may switch to them. Raises ConnectorError naming the setting.
        A LOCAL center left at ``run_as = "auto"`` on a gateway that cannot switch users is warned about
        in one line, once."""
        local = [(config.name, config.local or LocalConfig()) for config in self.settings.centers if config.kind == "LOCAL"]
        users = {name: resolve_job_user(options.run_as, options.job_uid_range) for name, options in local}
        isolated = [name for name, user in users.items() if user is not None]
        for name, options in local:
            if name in isolated:
                prepare_work_root(options.work_dir or default_work_root(name))
        unisolated = [name for name, options in local if falls_back_to_the_gateway_user(options.run_as)]
        if unisolated and not self._warned_unisolated:
            self._warned_unisolated = True
            log.warning(
                "LOCAL center(s) %s: jobs run as the gateway's own user and can reach its data and tokens "
                '(switching users needs root; set [centers.local] run_as = "none" to accept this, see README "Isolation")',
                ", ".join(unisolated),
            )
        self._isolated_local_centers = isolated
        self._check_runner_python([user for user in users.values() if user is not None])

    def _check_runner_python(self, job_users: list[JobUser | UidRange]) -> None:
        """``[services] python`` must run the built-in ONNX runner as the LOCAL jobs' users (one line naming
        the setting if not); left unset, a gateway Python they cannot run is warned about, once."""
        if self._runner_python_checked:
            return
        self._runner_python_checked = True
        python = self.settings.services.python
        if python is None:
            if job_users and not runnable_by_anyone(gateway_python()):
                log.warning(
                    "services.python is not set and LOCAL jobs' users cannot run the gateway's Python %s: replicas of the "
                    'built-in ONNX runner will not start on isolated LOCAL centers (see README "Isolation of LOCAL jobs")',
                    gateway_python(),
                )
            return
        identities = sorted({(user.uid, user.gid) if isinstance(user, JobUser) else (ANY_JOB_UID, ANY_JOB_UID) for user in job_users})
        refusal = runner_refusal(python, identities)
        if refusal is not None:
            raise ConnectorError(f"services.python = {str(python)!r}: cannot run the built-in ONNX runner: {refusal}")

    def _data_root(self, config: CenterConfig) -> Path:
        isolated = config.name in self._isolated_local_centers
        root = data_root_of(config, self.settings.data_dir, isolated)
        if isolated and config.data_root is None:  # the default outside the private data dir: its jobs traverse it
            root.mkdir(parents=True, exist_ok=True)
            root.parent.chmod(0o755)
            root.chmod(0o755)
        return root

    async def start(self, *, reconcile: bool = True) -> None:
        self.preflight()
        if self._isolated_local_centers:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.settings.data_dir.chmod(0o700)  # the database and every job's folder: out of the jobs' reach
        await self.db.migrate()
        await asyncio.to_thread(self.uploads.sweep)
        await self.bus.start()
        async with self.db.transaction() as session:
            account = await account_store.ensure_account(session, self.settings.account_name)
            self.gateway_id = await gateway_store.ensure_gateway_id(session)
            rows = await center_store.sync_centers(
                session,
                [(c.name, c.kind, c.display_name or c.name, c.region) for c in self.settings.centers],
            )
        self.dispatcher.gateway_id = self.gateway_id
        if self.settings.bus_url and self.settings.bus_url.startswith(("redis://", "rediss://", "unix://")):
            # the replicas of one database share a gateway id: it names their buckets in Redis
            limits = self.settings.limits
            self._buckets = RedisBuckets(self.settings.bus_url, self.gateway_id, limits.bucket_size, limits.restore_rate)
            await self._buckets.start()
            self.throttle.shared = self._buckets
        self.default_viewer = Viewer(account_id=account.id, is_admin=False)
        admin_token = self.settings.admin_token.get_secret_value() if self.settings.admin_token else None
        issued = await self.access.bootstrap(account.id, admin_token)
        if issued is not None:
            announce_admin_token(issued, self.settings.account_name)
            log.warning("first start: an admin token was created and printed to stdout (prefix %s)", issued[:12])
        centers: list[Center] = []
        for config, row in zip(self.settings.centers, rows, strict=True):
            connector = self.connector_overrides.get(config.name) or build_connector(config, self.settings, self.gateway_id)
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
                    probe_interval_seconds=config.probe_interval_seconds,
                    max_duration_minutes=config.max_duration_minutes,
                    breaker=CircuitBreaker(config.failure_threshold),
                    data_root=self._data_root(config),
                    storage_bytes=config.storage_bytes,
                    reads_gateway_files=config.reads_gateway_files,
                    markup=config.peer.markup if config.peer is not None else Decimal(0),
                )
            )
        self.registry.replace(centers)
        self.monitor.start()
        if reconcile:
            await self._start_loops(centers)
        log.info("aicn started: %d center(s), database %s", len(centers), self.db.dialect)

    async def _start_loops(self, centers: list[Center]) -> None:
        """The background loops: those that must run on one replica at a time under a lease
        (README "Running several gateways"), the others on every replica."""
        self.deliverer.start()  # every replica: each delivery is leased on its own row
        self.leases.add("transfers", self.transfers.start, _nothing)  # the copies a dead holder left open
        self.dispatcher.queue_fence = self.leases.fence(NETWORK_QUEUE)
        self.leases.add(NETWORK_QUEUE, self.dispatcher.start, self.dispatcher.stop_queue)
        for center in centers:
            grace = timedelta(seconds=self.settings.vanished_grace_seconds)
            reconciler = Reconciler(self.db, self.registry, self.ledger, self.jobs, center, vanished_grace=grace)
            reconciler.fence = self.leases.fence(center_lease(center.name))
            self.leases.add(center_lease(center.name), reconciler.start, reconciler.stop, drain=reconciler.drain, spread=True)
            self.reconcilers.append(reconciler)
        by_center = {reconciler.center.id: reconciler for reconciler in self.reconcilers}
        for reconciler in self.reconcilers:  # a center that tells of changes unasked is looked at at once
            reconciler.center.connector.on_activity = reconciler.wake
            reconciler.center.connector.on_jobs_changed = reconciler.told
        self.dispatcher.on_hand_over = self._handed_over
        self.service_controller.leading = lambda: self.leases.holds(SERVICES)
        self.leases.add(SERVICES, self.service_controller.wake, _nothing)  # the new holder looks at once
        await self.service_controller.flush_counts()  # what a gateway killed here counted, before any request
        self.service_controller.start()  # every replica records its proxied requests; the holder scales
        self._wake_listener = asyncio.create_task(self._wake_on_hand_overs(by_center), name="reconciler-wake")
        await self.leases.start()

    def _handed_over(self, center_id: int, external_id: str, glance: JobGlance | None) -> None:
        """A job was just handed to a center: its reconciler looks at it at once, on whichever replica runs it
        (this one's with the glance the hand-over wrote, so with no read of its own)."""
        reconciler = next((r for r in self.reconcilers if r.center.id == center_id), None)
        if reconciler is not None and self.leases.holds(center_lease(reconciler.center.name)):
            reconciler.handed(external_id, glance)
        else:
            message = {"center_id": center_id, "external_id": external_id}
            asyncio.get_running_loop().create_task(self.bus.publish(WAKE_CHANNEL, message))

    async def _wake_on_hand_overs(self, by_center: Mapping[int, Reconciler]) -> None:
        async with self.bus.subscribe(WAKE_CHANNEL) as live:
            while True:
                message = await live.get()
                reconciler = by_center.get(int((message or {}).get("center_id", 0)))
                external_id = (message or {}).get("external_id")
                if reconciler is not None and isinstance(external_id, str):
                    reconciler.handed(external_id)
                elif reconciler is not None:  # from a replica older than this one
                    reconciler.wake()

    def replica_report(self) -> dict[str, object]:
        """For /readyz: this replica's holder id, the leases it holds now (none is still ready), and every
        live replica with the leases it holds, as of this replica's last heartbeat."""
        return {"replica": self.leases.holder, "leases": sorted(self.leases.held()), "replicas": self.leases.view}

    async def stop(self) -> None:
        await stop_task(self._wake_listener)
        await self.leases.stop()  # released at once: another replica takes them on its next beat
        await self.service_controller.stop()
        await self.proxy.close()
        for reconciler in self.reconcilers:
            await reconciler.stop()
        self.reconcilers.clear()
        await self.deliverer.stop()
        await self.dispatcher.stop()
        await self.transfers.stop()
        await self.monitor.stop()
        for center in self.registry.all():
            await center.connector.close()
        await self.bus.close()
        if self._buckets is not None:
            await self._buckets.close()
        await self.db.dispose()
        await self.lease_db.dispose()
        await asyncio.to_thread(flush_tracing)
