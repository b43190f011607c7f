"""The resource request: a typed value whose stored JSON document is exactly today's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from store.resources import AskedDevices, ResourceRequest
from store.tables import JobRow
from store.types import RequestDocument

#: a submission's document, key for key as the gateway has always written it
SUBMITTED = {"accelerator": None, "devices": 2, "standardUnits": None, "cpus": None, "memoryGb": 8.0, "maxDurationMinutes": 30.0}
#: the same job once placed: the center's choice over accelerator and devices, the ask kept
PLACED = {
    "accelerator": "cpu-core",
    "devices": 2,
    "standardUnits": None,
    "cpus": None,
    "memoryGb": 8.0,
    "maxDurationMinutes": 30.0,
    "askedAccelerator": None,
    "askedDevices": 2,
}


def test_a_submitted_request_round_trips_key_for_key() -> None:
    request = ResourceRequest.from_document(SUBMITTED)
    assert request == ResourceRequest(max_duration_minutes=30.0, devices=2, memory_gb=8.0)
    assert list(request.to_document().items()) == list(SUBMITTED.items())


def test_a_placed_request_round_trips_with_its_ask() -> None:
    request = ResourceRequest.from_document(PLACED)
    assert request.asked == AskedDevices(accelerator=None, devices=2)
    assert list(request.to_document().items()) == list(PLACED.items())


def test_placing_writes_the_choice_and_keeps_the_first_ask() -> None:
    submitted = ResourceRequest.from_document(SUBMITTED)
    placed = submitted.placed("cpu-core", 2)
    assert placed.to_document() == PLACED
    replaced = placed.placed("gpu-a100", 1)  # a second placement, after a center failed the hand-over
    assert (replaced.accelerator, replaced.devices, replaced.asked) == ("gpu-a100", 1, AskedDevices(None, 2))
    assert replaced.as_asked() == submitted == submitted.as_asked()
    assert replaced.allocation() == ("gpu-a100", 1)


@pytest.mark.parametrize(
    "document",
    [
        {"accelerator": "x", "devices": 3, "maxDurationMinutes": 60},  # written before every key was
        {"maxDurationMinutes": 1.5, "standardUnits": 4.0},
        {**PLACED, "askedAccelerator": "gpu-a100"},
        {"accelerator": "gpu-a100", "devices": 4, "askedDevices": None, "maxDurationMinutes": 5},
    ],
)
def test_the_ask_is_what_the_old_dictionary_reads_gave(document: dict[str, Any]) -> None:
    request = ResourceRequest.from_document(document).as_asked()
    assert request.max_duration_minutes == document["maxDurationMinutes"]
    assert request.accelerator == document.get("askedAccelerator", document.get("accelerator"))
    assert request.devices == document.get("askedDevices", document.get("devices"))
    assert (request.standard_units, request.cpus, request.memory_gb) == (
        document.get("standardUnits"),
        document.get("cpus"),
        document.get("memoryGb"),
    )


def test_numbers_come_back_as_stored() -> None:
    request = ResourceRequest.from_document({"accelerator": "x", "devices": 1, "maxDurationMinutes": 60})
    assert request.to_document()["maxDurationMinutes"] == 60 and type(request.to_document()["maxDurationMinutes"]) is int


def test_an_unplaced_request_has_no_allocation() -> None:
    with pytest.raises(ValueError, match="never placed"):
        ResourceRequest(max_duration_minutes=5, standard_units=2.0).allocation()


def test_the_request_is_frozen() -> None:
    request = ResourceRequest(max_duration_minutes=5)
    with pytest.raises(AttributeError):
        request.devices = 2  # type: ignore[misc]


def test_jobs_request_is_the_typed_column() -> None:
    assert isinstance(JobRow.__table__.c.request.type, RequestDocument)


async def test_the_column_stores_the_document_and_reads_the_value(tmp_path: Path) -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("request", RequestDocument))
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'requests.db'}")
    placed = ResourceRequest.from_document(PLACED)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(insert(table), [{"id": 1, "request": placed}])
            await connection.execute(text("INSERT INTO t (id, request) VALUES (2, :document)"), {"document": json.dumps(SUBMITTED)})
            raw = (await connection.execute(text("SELECT request FROM t WHERE id = 1"))).scalar_one()
            typed = (await connection.execute(select(table.c.request).order_by(table.c.id))).scalars().all()
    finally:
        await engine.dispose()
    assert json.loads(raw) == PLACED
    assert typed == [placed, ResourceRequest.from_document(SUBMITTED)]
