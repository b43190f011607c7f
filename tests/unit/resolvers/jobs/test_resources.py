"""What placement reads from a resource request: the models that may serve it and how many devices."""

from __future__ import annotations

from connectors.catalog import CPU_CORE, DEFAULT_CATALOG
from resolvers.jobs.offers import candidate_models, devices_of
from resolvers.jobs.resources import ResourceRequest

A100 = "nvidia-a100-40gb"  # 3.12 standard units a device


def test_the_models_that_may_serve() -> None:
    assert candidate_models(ResourceRequest(5, accelerator=A100)) == (A100,)
    assert candidate_models(ResourceRequest(5, devices=2)) == (CPU_CORE,)
    assert candidate_models(ResourceRequest(5, cpus=4)) == (CPU_CORE,)
    assert candidate_models(ResourceRequest(5, standard_units=3.0)) is None


def test_how_many_devices() -> None:
    assert devices_of(ResourceRequest(5, devices=3), DEFAULT_CATALOG, A100) == 3
    assert devices_of(ResourceRequest(5, standard_units=6.24), DEFAULT_CATALOG, A100) == 2
    assert devices_of(ResourceRequest(5, standard_units=6.25), DEFAULT_CATALOG, A100) == 3
    assert devices_of(ResourceRequest(5, cpus=4), DEFAULT_CATALOG, CPU_CORE) == 4
    assert devices_of(ResourceRequest(5, cpus=4), DEFAULT_CATALOG, A100) == 1


def test_a_placed_request_is_weighed_as_asked() -> None:
    placed = ResourceRequest(5, standard_units=6.24).placed(A100, 2)
    assert candidate_models(placed.as_asked()) is None
    assert devices_of(placed.as_asked(), DEFAULT_CATALOG, "nvidia-h100-80gb") == 1
