"""Compute: centers, their compute units, the accelerator catalog, capacity."""

from __future__ import annotations

import enum
import functools
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from connectors.catalog import AcceleratorModel
from graph.core.context import Context
from graph.core.errors import center_error
from graph.core.money import Money
from graph.core.relay import Connection, Node
from resolvers.centers.registry import Center, ComputeUnitInfo
from resolvers.common.errors import CenterFault

if TYPE_CHECKING:
    from graph.jobs.inputs import JobFilter
    from graph.jobs.types import Job


@strawberry.enum
class CenterKind(enum.Enum):
    LOCAL = "LOCAL"
    SLURM = "SLURM"
    RAY = "RAY"
    PEER = "PEER"


@strawberry.enum
class CenterState(enum.Enum):
    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


@strawberry.enum
class DeviceKind(enum.Enum):
    CPU = "CPU"
    GPU = "GPU"
    NPU = "NPU"
    MLU = "MLU"
    DCU = "DCU"
    OTHER = "OTHER"


@strawberry.type(description="A device model of the catalog and what one device is worth in standard compute units.")
class AcceleratorType:
    model: str
    vendor: str
    kind: DeviceKind
    memory_gb: float | None
    fp16_tflops: float | None = strawberry.field(description="Dense FP16/BF16 tensor TFLOPS from the vendor's data sheet.")
    standard_units: float = strawberry.field(description="Standard compute units per device (1 unit = 100 dense FP16 TFLOPS).")

    @classmethod
    def from_model(cls, model: AcceleratorModel) -> AcceleratorType:
        return _accelerator_type(model)

    @classmethod
    def _build(cls, model: AcceleratorModel) -> AcceleratorType:
        kind = DeviceKind[model.kind] if model.kind in DeviceKind.__members__ else DeviceKind.OTHER
        return cls(
            model=model.model,
            vendor=model.vendor,
            kind=kind,
            memory_gb=model.memory_gb,
            fp16_tflops=model.fp16_tflops,
            standard_units=model.standard_units,
        )


@functools.lru_cache(maxsize=1024)
def _accelerator_type(model: AcceleratorModel) -> AcceleratorType:
    """One node per catalog model (a model is frozen, and so is what the node says of it)."""
    return AcceleratorType._build(model)


@strawberry.type
class CenterStatus:
    state: CenterState
    latency_ms: float | None
    checked_at: datetime | None
    message: str | None


@strawberry.type(description="What one center offers of one device type.")
class ComputeUnit(Node):
    id: strawberry.ID
    accelerator: AcceleratorType
    partition: str | None
    devices_total: int
    devices_available: int
    standard_units_total: float
    standard_units_available: float
    price_per_unit_hour: Money = strawberry.field(description="Price per standard compute unit per hour.")
    center: ComputeCenter
    info: strawberry.Private[ComputeUnitInfo]

    @classmethod
    def from_info(cls, info: ComputeUnitInfo, currency: str) -> ComputeUnit:
        # the registry hands out the same info while a center's answer stays the same: so is its node
        cached = _UNIT_NODES.get(id(info))
        if cached is not None and cached[0] is info and cached[1] == currency:
            return cached[2]
        node = cls._build(info, currency)
        if len(_UNIT_NODES) >= 4096:
            _UNIT_NODES.clear()
        _UNIT_NODES[id(info)] = (info, currency, node)
        return node

    @classmethod
    def _build(cls, info: ComputeUnitInfo, currency: str) -> ComputeUnit:
        return cls(
            id=strawberry.ID(info.global_id),
            center=ComputeCenter.from_center(info.center),
            accelerator=AcceleratorType.from_model(info.accelerator),
            partition=info.partition,
            devices_total=info.devices_total,
            devices_available=info.devices_available,
            standard_units_total=info.standard_units_total,
            standard_units_available=info.standard_units_available,
            price_per_unit_hour=Money(amount=info.price_per_unit_hour, currency=currency),
            info=info,
        )


@strawberry.type(description="Standard compute units in total and free, with the compute units they come from.")
class Capacity:
    standard_units_total: float
    standard_units_available: float
    by_accelerator: list[ComputeUnit]

    @classmethod
    def from_units(cls, units: list[ComputeUnit]) -> Capacity:
        return cls(
            standard_units_total=round(sum(unit.standard_units_total for unit in units), 4),
            standard_units_available=round(sum(unit.standard_units_available for unit in units), 4),
            by_accelerator=units,
        )


@strawberry.type(description="The link to a PEER center: another aicn gateway, reached with a token of an account there.")
class PeerLink:
    url: str
    account: str | None = strawberry.field(description="The account at the peer that the peer bills for this gateway's jobs.")
    version: str | None = strawberry.field(description="The peer gateway's version.")
    gateway_id: str | None = strawberry.field(description="The peer gateway's stable id (a job's path of gateways lists these).")
    latency_ms: float | None = strawberry.field(description="How long the peer took to answer the last call, in milliseconds.")

    @classmethod
    def of(cls, center: Center) -> PeerLink:
        detail = center.description.detail if center.description is not None else {}
        url = getattr(center.connector, "url", None) or detail.get("url") or ""
        latency = center.health.latency_ms
        return cls(
            url=str(url),
            account=detail.get("account"),
            version=center.description.version if center.description is not None else None,
            gateway_id=detail.get("gatewayId"),
            latency_ms=round(latency, 3) if latency is not None else None,
        )


@strawberry.type(description="One compute center of the network, reached through one connector.")
class ComputeCenter(Node):
    id: strawberry.ID
    name: str
    display_name: str
    region: str | None
    kind: CenterKind
    key: strawberry.Private[int]

    @classmethod
    def from_center(cls, center: Center) -> ComputeCenter:
        cached = _CENTER_NODES.get(id(center))
        if cached is not None and cached[0] is center:
            return cached[1]
        node = cls._build(center)
        if len(_CENTER_NODES) >= 4096:
            _CENTER_NODES.clear()
        _CENTER_NODES[id(center)] = (center, node)
        return node

    @classmethod
    def _build(cls, center: Center) -> ComputeCenter:
        return cls(
            id=strawberry.ID(center.global_id),
            name=center.name,
            display_name=center.display_name,
            region=center.region,
            kind=CenterKind[center.kind] if center.kind in CenterKind.__members__ else CenterKind.PEER,
            key=center.id,
        )

    @strawberry.field(description="The center's health as its background probe and recent calls saw it.")
    def status(self, info: Info[Context, None]) -> CenterStatus:
        center = info.context.services.centers.get(self.key)
        assert center is not None
        health = center.health
        return CenterStatus(
            state=CenterState[health.state],
            latency_ms=round(health.latency_ms, 3) if health.latency_ms is not None else None,
            checked_at=health.checked_at,
            message=health.message,
        )

    @strawberry.field(description="On a PEER center: the link to the other gateway (never its token). Null on other kinds.")
    def peer(self, info: Info[Context, None]) -> PeerLink | None:
        center = info.context.services.centers.get(self.key)
        if center is None or center.kind != "PEER":
            return None
        return PeerLink.of(center)

    @strawberry.field(description="What the center offers, asked now. Null (with an error naming the center) when it does not answer.")
    async def compute_units(self, info: Info[Context, None]) -> list[ComputeUnit] | None:
        currency = info.context.services.centers.currency
        return [ComputeUnit.from_info(unit, currency) for unit in await info.context.loaders.capacity.load(self.key)]

    @strawberry.field(description="The center's capacity in standard units. Null (with an error) when it does not answer.")
    async def capacity(self, info: Info[Context, None]) -> Capacity | None:
        units = await self.compute_units(info)
        return Capacity.from_units(units or [])

    @strawberry.field(description="How many jobs the network placed here wait for the center to start them (PENDING, QUEUED, STARTING).")
    async def queue_length(self, info: Info[Context, None]) -> int:
        return await info.context.loaders.queue_length.load(self.key)

    @strawberry.field(description="Jobs placed on this center, newest first.")
    async def jobs(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[JobFilter, strawberry.lazy("graph.jobs.inputs")] | None = None,
    ) -> Connection[Annotated[Job, strawberry.lazy("graph.jobs.types")]]:
        return await info.context.loaders.jobs(info, first=first, after=after, filter=filter, center_key=self.key)


#: one node per center: what it reads of the center is set when the gateway starts, and a center of
#: a new configuration is a new object (every compute unit of every answer names its center)
_CENTER_NODES: dict[int, tuple[Center, ComputeCenter]] = {}
#: one node per unit the registry handed out (with the currency it was priced in)
_UNIT_NODES: dict[int, tuple[ComputeUnitInfo, str, ComputeUnit]] = {}


async def all_compute_units(info: Info[Context, None], accelerator: str | None) -> list[ComputeUnit]:
    """Every center's compute units, asked concurrently; a silent center adds an error, not a failure."""
    registry = info.context.services.centers
    centers = registry.all()
    answers = await info.context.loaders.capacity.load_all([center.id for center in centers])
    units: list[ComputeUnit] = []
    for answer in answers:
        if isinstance(answer, CenterFault):
            info.context.partial_errors.append(center_error(answer, list(info.path.as_list())))
            continue
        if isinstance(answer, BaseException):
            raise answer
        units.extend(
            ComputeUnit.from_info(unit, registry.currency)
            for unit in answer
            if accelerator is None or unit.accelerator.model == accelerator
        )
    return units
