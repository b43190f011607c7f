"""The services the face calls, one typed bundle the composition root builds and every request carries."""

from __future__ import annotations

from dataclasses import dataclass, field

from graph.core.fanout import FanoutGroups
from graph.core.sharing import SharedResults
from resolvers.access.audit import AuditLog
from resolvers.access.quotas import QuotaService
from resolvers.access.reads import AccountReads
from resolvers.access.service import AccessService
from resolvers.access.throttle import Throttle
from resolvers.billing.budgets import BudgetAlertStream
from resolvers.billing.reads import BillingReads
from resolvers.billing.service import BillingService
from resolvers.billing.settlement import PeerSettlements
from resolvers.centers.registry import CenterRegistry
from resolvers.data.downloads import Downloads
from resolvers.data.reads import DataReads
from resolvers.data.service import DataService
from resolvers.data.transfers import TransferService
from resolvers.data.uploads import ArtifactStore
from resolvers.jobs.logs import JobLogStream
from resolvers.jobs.reads import JobReads
from resolvers.jobs.service import JobService
from resolvers.jobs.streams import JobStreams
from resolvers.monitoring.snapshot import Monitoring
from resolvers.operations.service import PersistedOperations
from resolvers.services.reads import ServiceReads
from resolvers.services.service import ServiceService
from resolvers.services.streams import ServiceStreams
from resolvers.webhooks.service import WebhookService


@dataclass(frozen=True)
class Services:
    centers: CenterRegistry
    jobs: JobService
    job_reads: JobReads
    job_streams: JobStreams
    job_logs: JobLogStream
    data: DataService
    data_reads: DataReads
    billing: BillingService
    billing_reads: BillingReads
    budget_alerts: BudgetAlertStream
    access: AccessService
    quotas: QuotaService
    account_reads: AccountReads
    audit: AuditLog
    throttle: Throttle
    operations: PersistedOperations
    services: ServiceService
    service_reads: ServiceReads
    service_streams: ServiceStreams
    settlements: PeerSettlements
    webhooks: WebhookService
    monitoring: Monitoring
    transfers: TransferService | None = None
    downloads: Downloads | None = None
    uploads: ArtifactStore | None = None
    #: subscription results that subscribers of one gateway share (graph/core/sharing.py)
    shared_results: SharedResults = field(default_factory=SharedResults)
    #: the streams that groups of such subscribers share (graph/core/fanout.py)
    fanout: FanoutGroups = field(default_factory=FanoutGroups)
