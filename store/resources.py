"""A job's resource request: one typed value from the submission to the usage record.

The ``jobs.request`` column keeps it as the camelCase JSON document it has always been::

    {"accelerator", "devices", "standardUnits", "cpus", "memoryGb", "maxDurationMinutes"}

plus ``askedAccelerator`` and ``askedDevices`` once the job is placed: placement writes the
center's choice over ``accelerator`` and ``devices`` and keeps what was asked, which a
re-placement (after a center failed the hand-over) starts from again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class AskedDevices:
    """The accelerator and device count as the user asked them, before placement chose."""

    accelerator: str | None
    devices: int | None


@dataclass(frozen=True)
class ResourceRequest:
    """What a job needs. Before placement the fields are as asked; after it, ``accelerator``
    and ``devices`` are what the center gives, and ``asked`` holds what was asked."""

    max_duration_minutes: float
    accelerator: str | None = None
    devices: int | None = None
    standard_units: float | None = None
    cpus: int | None = None
    memory_gb: float | None = None
    asked: AskedDevices | None = None
    #: what the request accepts: a price cap per hour and the centers it may or may not run at
    max_price_per_hour: Decimal | None = None
    center_ids: tuple[int, ...] | None = None
    exclude_center_ids: tuple[int, ...] = ()

    def admits_center(self, center_id: int) -> str | None:
        """Why the request leaves this center out (a reason with its code), or None."""
        if self.center_ids is not None and center_id not in self.center_ids:
            return "CENTER_NOT_SELECTED: the request's centerIds do not include this center"
        if center_id in self.exclude_center_ids:
            return "CENTER_EXCLUDED: the request's excludeCenterIds name this center"
        return None

    def as_asked(self) -> ResourceRequest:
        """The request as the user gave it: what placement weighs centers against."""
        if self.asked is None:
            return self
        return replace(self, accelerator=self.asked.accelerator, devices=self.asked.devices, asked=None)

    def placed(self, accelerator: str | None, devices: int) -> ResourceRequest:
        """The request once a center was chosen; a second placement keeps the first ask."""
        asked = self.asked or AskedDevices(self.accelerator, self.devices)
        return replace(self, accelerator=accelerator, devices=devices, asked=asked)

    def allocation(self) -> tuple[str, int]:
        """The accelerator model and device count a placed job holds at its center."""
        if self.accelerator is None or self.devices is None:
            raise ValueError("the request names no accelerator and device count: the job was never placed")
        return self.accelerator, self.devices

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "accelerator": self.accelerator,
            "devices": self.devices,
            "standardUnits": self.standard_units,
            "cpus": self.cpus,
            "memoryGb": self.memory_gb,
            "maxDurationMinutes": self.max_duration_minutes,
        }
        if self.asked is not None:
            document["askedAccelerator"] = self.asked.accelerator
            document["askedDevices"] = self.asked.devices
        # written only when given, so the documents of requests without them stay as they were
        if self.max_price_per_hour is not None:
            document["maxPricePerHour"] = str(self.max_price_per_hour)
        if self.center_ids is not None:
            document["centerIds"] = list(self.center_ids)
        if self.exclude_center_ids:
            document["excludeCenterIds"] = list(self.exclude_center_ids)
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ResourceRequest:
        """Read a stored request; keys it lacks are None (a placed job may predate ``asked…``)."""
        asked = None
        if "askedAccelerator" in document or "askedDevices" in document:
            asked = AskedDevices(
                document.get("askedAccelerator", document.get("accelerator")), document.get("askedDevices", document.get("devices"))
            )
        return cls(
            max_duration_minutes=document["maxDurationMinutes"],
            accelerator=document.get("accelerator"),
            devices=document.get("devices"),
            standard_units=document.get("standardUnits"),
            cpus=document.get("cpus"),
            memory_gb=document.get("memoryGb"),
            asked=asked,
            max_price_per_hour=Decimal(document["maxPricePerHour"]) if document.get("maxPricePerHour") is not None else None,
            center_ids=tuple(document["centerIds"]) if document.get("centerIds") is not None else None,
            exclude_center_ids=tuple(document.get("excludeCenterIds") or ()),
        )
