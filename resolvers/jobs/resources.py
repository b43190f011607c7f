"""A job's resource request as the services and the graph use it (defined in store.resources, kept in jobs.request)."""

from __future__ import annotations

from store.resources import AskedDevices, ResourceRequest

__all__ = ["AskedDevices", "ResourceRequest"]
