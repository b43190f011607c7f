"""Ray resources and catalog models, both ways: a cluster's capacity, and a job's request.

The operator maps Ray resource names to catalog models (``resource_models``):

* ``"GPU"``: the GPUs of nodes that carry no mapped accelerator type;
* ``"accelerator_type:A100"``: the GPUs of nodes that carry this resource (Ray sets it from
  the GPU model it detects, or from ``--resources``);
* any other name, a custom resource counted by itself (``"NPU"``, ``"MLU"``).

CPUs are always the catalog's ``cpu-core``. Resources nobody mapped are not reported and
cannot be asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connectors.base import DeviceCapacity
from connectors.catalog import CPU_CORE
from connectors.ray.api import ACCELERATOR_TYPE_SHARE, NodeResources, Resources

ACCELERATOR_TYPE = "accelerator_type:"


class Unsatisfiable(ValueError):
    """The cluster cannot run the request on any node: the message says why."""


@dataclass(frozen=True)
class _Devices:
    """How one node's devices of a model are counted: the resource that counts them, and a marker."""

    counted_by: str
    marker: str | None = None


class DeviceMap:
    def __init__(self, resource_models: Mapping[str, str]) -> None:
        self.resource_models = dict(resource_models)
        self._types = {key: model for key, model in self.resource_models.items() if key.startswith(ACCELERATOR_TYPE)}

    def models_on(self, node: NodeResources) -> dict[str, _Devices]:
        """The catalog models a node offers, and how each is counted there."""
        found: dict[str, _Devices] = {CPU_CORE: _Devices("CPU")} if node.has("CPU") else {}
        typed = [key for key in self._types if node.has(key)]
        if node.has("GPU"):
            if typed:
                found[self._types[typed[0]]] = _Devices("GPU", typed[0])
            elif "GPU" in self.resource_models:
                found[self.resource_models["GPU"]] = _Devices("GPU")
        for key, model in self.resource_models.items():
            if key != "GPU" and key not in self._types and key != "CPU" and node.has(key):
                found[model] = _Devices(key)
        return found

    def capacity(self, nodes: Sequence[NodeResources], held: Mapping[str, int] | None = None) -> list[DeviceCapacity]:
        """Devices per model; ``held`` (devices the gateway's running jobs hold) bounds the free
        figure, since the cluster's own usage comes from the autoscaler loop and lags seconds behind."""
        totals: dict[str, int] = {}
        free: dict[str, int] = {}
        for node in nodes:
            for model, devices in self.models_on(node).items():
                totals[model] = totals.get(model, 0) + int(node.total(devices.counted_by))
                free[model] = free.get(model, 0) + int(node.free(devices.counted_by))
        ordered = sorted(totals, key=lambda model: (model != CPU_CORE, model))
        held = held or {}
        return [DeviceCapacity(model, totals[model], max(0, min(free[model], totals[model] - held.get(model, 0)))) for model in ordered]

    def request(self, nodes: Sequence[NodeResources], model: str, devices: int, cpus: int | None, memory_gb: float | None) -> Resources:
        """The entrypoint resources of ``devices`` of ``model``, when one node of the cluster has them."""
        if devices < 1:
            raise Unsatisfiable("a job needs at least one device")
        offers = [(node, found[model]) for node in nodes if model in (found := self.models_on(node))]
        if not offers:
            raise Unsatisfiable(f"this center has no {model} devices")
        largest = max(int(node.total(counted.counted_by)) for node, counted in offers)
        if devices > largest:
            raise Unsatisfiable(f"the job asks for {devices} {model} devices on one node; the largest node of this center has {largest}")
        memory = math.ceil(memory_gb * 1024**3) if memory_gb else None
        # Ray would queue a job no node can hold until RAY_JOB_START_TIMEOUT_SECONDS: refuse it now
        offers = [(node, counted) for node, counted in offers if int(node.total(counted.counted_by)) >= devices]
        if memory is not None and not any(node.total("memory") >= memory for node, _ in offers):
            raise Unsatisfiable(f"the job asks for {memory_gb:g} GB of memory; no node of this center has that much")
        if cpus and model != CPU_CORE and not any(node.total("CPU") >= cpus for node, _ in offers):
            raise Unsatisfiable(f"the job asks for {cpus} CPUs beside its {model} devices; no node of this center has that many")
        if model == CPU_CORE:
            return Resources(num_cpus=devices, memory_bytes=memory)
        counted = max(offers, key=lambda offer: offer[0].total(offer[1].counted_by))[1]
        num_cpus = float(cpus) if cpus else None
        if counted.counted_by == "GPU":
            custom = {counted.marker: ACCELERATOR_TYPE_SHARE} if counted.marker else {}
            return Resources(num_cpus=num_cpus, num_gpus=devices, memory_bytes=memory, custom=custom)
        return Resources(num_cpus=num_cpus, memory_bytes=memory, custom={counted.counted_by: devices})
