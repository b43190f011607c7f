"""Centers: the registry of connectors, calls under a deadline, and compute units.

Every call to a center goes through ``CenterRegistry.call``: it applies the center's
deadline, records the center's health, and turns connector errors into ``CenterFault``
(``CENTER_TIMEOUT`` / ``CENTER_UNAVAILABLE``) so one center's trouble stays its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from connectors.base import CenterDescription, CenterQuote, Connector, DeviceCapacity, QuoteRequest
from connectors.catalog import AcceleratorModel, Catalog
from connectors.errors import CenterTimeout, CenterUnreachable, ConnectorError
from resolvers.centers.health import CenterHealth, CircuitBreaker
from resolvers.common import metrics
from resolvers.common.errors import CenterFault
from resolvers.common.ids import to_global_id
from resolvers.common.tracing import active as tracing_active
from resolvers.common.tracing import span

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceOffer:
    """What the operator configured for one device type of a center: price, and count for LOCAL."""

    accelerator: str
    price_per_unit_hour: Decimal
    partition: str | None = None


@dataclass
class Center:
    id: int
    name: str
    kind: str
    display_name: str
    region: str | None
    connector: Connector
    offers: Sequence[DeviceOffer]
    deadline_seconds: float
    poll_interval_seconds: float
    default_price_per_unit_hour: Decimal = Decimal("1.00")
    probe_interval_seconds: float = 2.0
    max_duration_minutes: float | None = None
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    #: the folder holding the center's job areas and replicas (None: the center keeps no data)
    data_root: Path | None = None
    #: bytes the data root may hold (None: its filesystem's free space)
    storage_bytes: int | None = None
    #: False: models are copied into the data root before this center serves them
    reads_gateway_files: bool = True
    #: what the center last said about itself (its probe's answer)
    description: CenterDescription | None = None
    #: on a PEER center: what this gateway adds to the peer's price per standard-unit-hour
    markup: Decimal = Decimal(0)

    @property
    def health(self) -> CenterHealth:
        return self.breaker.health

    @property
    def global_id(self) -> str:
        return to_global_id("ComputeCenter", self.id)

    def price_for(self, accelerator: str) -> Decimal:
        for offer in self.offers:
            if offer.accelerator == accelerator:
                return offer.price_per_unit_hour
        return self.default_price_per_unit_hour


@dataclass(frozen=True)
class ComputeUnitInfo:
    """One device type at one center, on the standard-unit scale."""

    center: Center
    accelerator: AcceleratorModel
    partition: str | None
    devices_total: int
    devices_available: int
    price_per_unit_hour: Decimal

    @property
    def key(self) -> str:
        return f"{self.center.id}/{self.accelerator.model}/{self.partition or ''}"

    @property
    def global_id(self) -> str:
        return to_global_id("ComputeUnit", self.key)

    @property
    def standard_units_total(self) -> float:
        return round(self.devices_total * self.accelerator.standard_units, 4)

    @property
    def standard_units_available(self) -> float:
        return round(self.devices_available * self.accelerator.standard_units, 4)


class CenterRegistry:
    def __init__(self, centers: Sequence[Center], catalog: Catalog, currency: str) -> None:
        self.catalog = catalog
        self.currency = currency
        self.replace(centers)

    def replace(self, centers: Sequence[Center]) -> None:
        self._by_id = {center.id: center for center in centers}
        #: each center's last capacity answer and its units: the same answer gives the same unit objects
        self._last_units: dict[int, tuple[Center, tuple[DeviceCapacity, ...], list[ComputeUnitInfo]]] = {}
        self._sorted = sorted(self._by_id.values(), key=lambda center: center.id)

    def all(self) -> list[Center]:
        return list(self._sorted)

    @staticmethod
    @functools.cache
    def _meters(name: str) -> tuple[Any, Any]:
        """A center's call counter and call-time histogram (``labels()`` takes a lock and a lookup on every call)."""
        return metrics.connector_calls.labels(name), metrics.connector_seconds.labels(name)

    def get(self, center_id: int) -> Center | None:
        return self._by_id.get(center_id)

    async def call(self, center: Center, operation: Callable[[Connector], Awaitable[T]], *, probing: bool = False) -> T:
        """Run one connector call under the center's deadline; failures become CenterFault.

        A DOWN center is skipped at once, unless this is the probe that may bring it back.
        """
        if center.breaker.is_open and not probing:
            raise CenterFault(
                "CENTER_UNAVAILABLE",
                center.global_id,
                center.name,
                f"center {center.name} is DOWN ({center.health.message}); skipped until it answers again",
            )
        if not tracing_active():  # a fan-out over many centers pays no span machinery per call
            return await self._measured_call(center, operation)
        with span("connector call", {"aicn.center": center.name, "aicn.center.kind": center.kind}):
            return await self._measured_call(center, operation)

    async def _measured_call(self, center: Center, operation: Callable[[Connector], Awaitable[T]]) -> T:
        calls, seconds = self._meters(center.name)
        calls.inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(center.deadline_seconds):
                result = await operation(center.connector)
        except (TimeoutError, CenterTimeout):
            metrics.connector_errors.labels(center.name, "CENTER_TIMEOUT").inc()
            center.breaker.record_failure(f"no answer within {center.deadline_seconds:g}s")
            raise CenterFault(
                "CENTER_TIMEOUT", center.global_id, center.name, f"center {center.name} did not answer within {center.deadline_seconds:g}s"
            ) from None
        except CenterUnreachable as error:
            metrics.connector_errors.labels(center.name, "CENTER_UNAVAILABLE").inc()
            center.breaker.record_failure(error.message)
            # CENTER_UNAVAILABLE, or a finer code of the same kind (CENTER_UNAUTHORIZED: credentials refused)
            raise CenterFault(error.code, center.global_id, center.name, f"center {center.name} is unavailable: {error.message}") from None
        except ConnectorError:
            metrics.connector_errors.labels(center.name, "REFUSED").inc()
            center.breaker.record_success((time.perf_counter() - started) * 1000)
            raise  # the center answered: it refused, or does not know the job
        except Exception as error:  # a connector bug must not take the whole answer down
            log.exception("connector of center %s failed", center.name)
            metrics.connector_errors.labels(center.name, "CONNECTOR_BUG").inc()
            center.breaker.record_failure(f"connector error: {type(error).__name__}")
            raise CenterFault(
                "CENTER_UNAVAILABLE", center.global_id, center.name, f"center {center.name} is unavailable: connector error"
            ) from None
        finally:
            seconds.observe(time.perf_counter() - started)
        center.breaker.record_success((time.perf_counter() - started) * 1000)
        return result

    async def probe(self, center: Center) -> CenterHealth:
        """Ask the center who it is; the answer (or its absence) is its health."""
        try:
            center.description = await self.call(center, lambda connector: connector.describe(), probing=True)
        except (CenterFault, ConnectorError):
            pass
        return center.health

    def compute_units(self, center: Center, capacity: Sequence[DeviceCapacity]) -> list[ComputeUnitInfo]:
        answer = tuple(capacity)
        last = self._last_units.get(center.id)
        if last is not None and last[0] is center and last[1] == answer:
            return list(last[2])
        units = self._units_of(center, answer)
        self._last_units[center.id] = (center, answer, units)
        return list(units)

    def _units_of(self, center: Center, capacity: Sequence[DeviceCapacity]) -> list[ComputeUnitInfo]:
        units: list[ComputeUnitInfo] = []
        for entry in capacity:
            model = self.catalog.get(entry.accelerator)
            if model is None:
                continue
            units.append(
                ComputeUnitInfo(
                    center=center,
                    accelerator=model,
                    partition=entry.partition,
                    devices_total=entry.devices_total,
                    devices_available=entry.devices_free,
                    price_per_unit_hour=entry.price_per_unit_hour
                    if entry.price_per_unit_hour is not None
                    else center.price_for(entry.accelerator),
                )
            )
        return units

    async def capacity_of(self, center: Center) -> list[ComputeUnitInfo]:
        capacity = await self.call(center, lambda connector: connector.capacity())
        return self.compute_units(center, capacity)

    async def quote_of(self, center: Center, request: QuoteRequest) -> CenterQuote | None:
        """The center's own offer for a request (a PEER's), or None when it leaves pricing to the gateway."""
        return await self.call(center, lambda connector: connector.quote(request))

    def units_of_quote(self, center: Center, quote: CenterQuote) -> list[ComputeUnitInfo]:
        """The compute unit a center's own offer is on, as the gateway's offers read units."""
        if quote.price_per_unit_hour is None:
            return []
        capacity = DeviceCapacity(quote.accelerator, quote.devices_total, quote.devices_free, None, quote.price_per_unit_hour)
        return self.compute_units(center, [capacity])
