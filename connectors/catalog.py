"""The accelerator catalog: device models and the standard compute unit.

One standard compute unit (SCU) is 100 dense FP16/BF16 TFLOPS, the throughput that
dominates AI training and inference; a device's units are its dense FP16/BF16 tensor
TFLOPS (no sparsity) divided by 100, rounded to four decimals. Figures are from the
vendors' data sheets (NVIDIA A100/H100/H800/H20/L40S/RTX 4090 data sheets, Huawei
Ascend 910B, Cambricon MLU370-X8, Hygon DCU K100) and the CPU core is a conservative
AVX-512 server core at 2.5 GHz (2 FMA units x 32 FP16 lanes x 2 FLOP = 0.32 TFLOPS).

Operators extend or override entries in the config (``[[catalog]]`` tables); the
catalog a gateway runs with is this table plus those entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

CATALOG_VERSION = "2026.11"
TFLOPS_PER_STANDARD_UNIT = Decimal(100)
CPU_CORE = "cpu-core"


@dataclass(frozen=True)
class AcceleratorModel:
    model: str
    vendor: str
    kind: str  # CPU GPU NPU MLU DCU OTHER
    memory_gb: float | None
    fp16_tflops: float
    standard_units_override: float | None = None

    @cached_property  # read for every compute unit of every answer; the model never changes
    def standard_units(self) -> float:
        """Standard compute units per device, by the catalog's one rule."""
        if self.standard_units_override is not None:
            return self.standard_units_override
        units = (Decimal(str(self.fp16_tflops)) / TFLOPS_PER_STANDARD_UNIT).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        return float(units)


BUILTIN_MODELS: tuple[AcceleratorModel, ...] = (
    AcceleratorModel("nvidia-a100-40gb", "NVIDIA", "GPU", 40, 312.0),
    AcceleratorModel("nvidia-a100-80gb", "NVIDIA", "GPU", 80, 312.0),
    AcceleratorModel("nvidia-h100-80gb", "NVIDIA", "GPU", 80, 989.4),
    AcceleratorModel("nvidia-h800-80gb", "NVIDIA", "GPU", 80, 989.4),
    AcceleratorModel("nvidia-h20-96gb", "NVIDIA", "GPU", 96, 148.0),
    AcceleratorModel("nvidia-l40s-48gb", "NVIDIA", "GPU", 48, 362.05),
    AcceleratorModel("nvidia-rtx-4090-24gb", "NVIDIA", "GPU", 24, 165.2),
    AcceleratorModel("huawei-ascend-910b", "Huawei", "NPU", 64, 320.0),
    AcceleratorModel("cambricon-mlu370-x8", "Cambricon", "MLU", 48, 96.0),
    AcceleratorModel("hygon-dcu-k100", "Hygon", "DCU", 64, 100.0),
    AcceleratorModel(CPU_CORE, "generic", "CPU", None, 0.32),
)


class Catalog:
    """The models a gateway knows, by key."""

    def __init__(self, models: Iterable[AcceleratorModel], version: str = CATALOG_VERSION) -> None:
        self.version = version
        self._models: dict[str, AcceleratorModel] = {model.model: model for model in models}

    @classmethod
    def with_overrides(cls, overrides: Iterable[Mapping[str, object]] = ()) -> Catalog:
        """The built-in table, with entries added or replaced from configuration."""
        models = {model.model: model for model in BUILTIN_MODELS}
        overrides = list(overrides)
        for entry in overrides:
            key = str(entry["model"])
            base = models.get(key)
            fields = {name: value for name, value in entry.items() if name != "model"}
            if base is not None:
                models[key] = replace(base, **fields)  # type: ignore[arg-type]
            else:
                models[key] = AcceleratorModel(model=key, **fields)  # type: ignore[arg-type]
        return cls(models.values(), CATALOG_VERSION + ("+local" if overrides else ""))

    def get(self, model: str) -> AcceleratorModel | None:
        return self._models.get(model)

    def __contains__(self, model: object) -> bool:
        return model in self._models

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


DEFAULT_CATALOG = Catalog(BUILTIN_MODELS)
