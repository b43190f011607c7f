"""Placement: rank every center's offer by the job's policy, and explain each rank.

CHEAPEST orders by price per hour, EARLIEST_START by estimated start, DATA_LOCAL by how
many of the job's input datasets have a verified replica at the center (then by price).
When the operator prices moving data (``transfer_price_per_gb``), DATA_LOCAL weighs it
instead: each center by the most the job can cost there (price x requested duration)
plus moving the inputs it lacks (their GB x that price), cheapest total first. Centers
that can start the job now come first; a center that could run it later (busy now)
follows; centers that cannot run it at all are listed with their reason, unranked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from resolvers.jobs.offers import OfferData


@dataclass(frozen=True)
class Candidate:
    offer: OfferData
    score: float | None
    reason: str

    @property
    def center_id(self) -> int:
        return self.offer.center.id


def rank(
    offers: Sequence[OfferData],
    policy: str,
    now: datetime,
    local_inputs: Mapping[int, int] | None = None,
    move_costs: Mapping[int, Decimal] | None = None,
) -> list[Candidate]:
    """Candidates best first: startable now by policy score, then later ones, then the rest.
    ``move_costs``: what moving the job's missing inputs to each center costs (DATA_LOCAL weighs it)."""
    local_inputs = local_inputs or {}
    runnable = [offer for offer in offers if offer.could_run]
    others = [offer for offer in offers if not offer.could_run]

    def key(offer: OfferData) -> tuple[Any, ...]:
        price = float(offer.price_per_hour or 0)
        wait = (offer.estimated_start - now).total_seconds() if offer.estimated_start else float("inf")
        if policy == "EARLIEST_START":
            return (wait, price, offer.center.id)
        if policy == "DATA_LOCAL" and move_costs is not None:
            total = (offer.max_cost or Decimal(0)) + move_costs.get(offer.center.id, Decimal(0))
            return (total, -local_inputs.get(offer.center.id, 0), wait, offer.center.id)
        if policy == "DATA_LOCAL":
            return (-local_inputs.get(offer.center.id, 0), price, wait, offer.center.id)
        return (price, wait, offer.center.id)

    ordered = sorted((o for o in runnable if o.feasible), key=key) + sorted((o for o in runnable if not o.feasible), key=key)
    candidates = [
        Candidate(offer, _score(offer, policy, now, local_inputs), _explain(offer, policy, local_inputs, move_costs)) for offer in ordered
    ]
    candidates += [Candidate(offer, None, offer.reason or "cannot run here") for offer in others]
    return candidates


def _score(offer: OfferData, policy: str, now: datetime, local_inputs: Mapping[int, int]) -> float:
    if policy == "EARLIEST_START":
        return round((offer.estimated_start - now).total_seconds(), 3) if offer.estimated_start else float("inf")
    if policy == "DATA_LOCAL":
        return float(local_inputs.get(offer.center.id, 0))
    return float(offer.price_per_hour or 0)


def _explain(offer: OfferData, policy: str, local_inputs: Mapping[int, int], move_costs: Mapping[int, Decimal] | None = None) -> str:
    parts = [f"{offer.price_per_hour} per hour for {offer.devices} x {offer.unit.accelerator.model if offer.unit else '?'}"]
    if policy == "DATA_LOCAL":
        parts.append(f"{local_inputs.get(offer.center.id, 0)} input dataset(s) held here")
        if move_costs is not None:
            parts.append(f"moving the other inputs here costs {move_costs.get(offer.center.id, Decimal(0))}")
    if offer.feasible:
        parts.append("can start now")
    else:
        parts.append(offer.reason or "busy")
    return "; ".join(parts)


def placement_document(
    policy: str | None,
    candidates: Sequence[Candidate],
    chosen: int | None,
    waiting: str | None = None,
    terms: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What Job.placement shows: the policy, every candidate with score and reason, and why it
    waits; ``terms`` keeps each center's price as quoted at submission, for whichever is chosen."""
    return {
        "policy": policy,
        "waiting": waiting,
        "terms": dict(terms or {}),
        "candidates": [
            {
                "centerId": candidate.center_id,
                "score": candidate.score if candidate.score != float("inf") else None,
                "chosen": candidate.center_id == chosen,
                "reason": candidate.reason,
            }
            for candidate in candidates
        ],
    }
