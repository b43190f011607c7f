"""What people read (rich tables) and what scripts read (--json), from the gateway's answers."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=False)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def money(value: Mapping[str, Any] | None) -> str:
    return f"{value['amount']} {value['currency']}" if value else "-"


def percent(progress: Mapping[str, Any] | None) -> str:
    if not progress or progress.get("fraction") is None:
        return "-"
    return f"{float(progress['fraction']) * 100:.0f}%"


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    view = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        view.add_column(column, overflow="fold")
    for row in rows:
        view.add_row(*("-" if cell is None else str(cell) for cell in row))
    out.print(view)


def jobs_table(jobs: Sequence[Mapping[str, Any]]) -> None:
    table(
        None,
        ["ID", "NAME", "STATE", "CENTER", "PROGRESS", "SUBMITTED", "EXIT"],
        [
            [
                job["id"],
                job["name"],
                job["state"],
                (job.get("center") or {}).get("name"),
                percent(job.get("progress")),
                str(job["submittedAt"])[:19].replace("T", " "),
                job.get("exitCode"),
            ]
            for job in jobs
        ],
    )


def job_detail(job: Mapping[str, Any]) -> None:
    request = job.get("request") or {}
    facts = [
        ("id", job["id"]),
        ("name", job["name"]),
        ("state", job["state"]),
        ("center", (job.get("center") or {}).get("name")),
        ("request", f"{request.get('devices')} x {request.get('accelerator')}, at most {request.get('maxDurationMinutes')} min"),
        ("progress", percent(job.get("progress"))),
        ("exit code", job.get("exitCode")),
        ("reason", job.get("failureReason")),
    ]
    view = Table(show_header=False, box=None)
    view.add_column(style="bold")
    view.add_column()
    for key, value in facts:
        if value is not None:
            view.add_row(key, str(value))
    out.print(view)
