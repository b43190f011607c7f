"""``aicn job watch``: a live progress bar over the jobEvents subscription, ending with the job."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from aicn.client.render import out

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


def describe(state: str, progress: Mapping[str, Any] | None) -> str:
    parts = [state]
    if progress:
        if progress.get("step") is not None and progress.get("totalSteps") is not None:
            parts.append(f"step {progress['step']}/{progress['totalSteps']}")
        if progress.get("message"):
            parts.append(str(progress["message"]))
    return " · ".join(parts)


async def show(name: str, events: AsyncIterator[dict[str, Any]]) -> str | None:
    """Draw the bar while events come; the last state seen."""
    state: str | None = None
    progress: dict[str, Any] | None = None
    columns = (
        TextColumn("[bold]{task.fields[name]}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task("waiting for the first event", total=None, name=name)
        async for data in events:
            event = data["jobEvents"]
            state = event.get("state") or state
            progress = event.get("progress") or progress
            fraction = (progress or {}).get("fraction")
            if state == "SUCCEEDED":
                fraction = 1.0
            bar.update(
                task,
                total=1.0 if fraction is not None else None,
                completed=float(fraction) if fraction is not None else 0,
                description=describe(state or "?", progress),
            )
    return state
