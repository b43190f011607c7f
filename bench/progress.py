"""What a connector holds of a job's progress while the job prints, and what each status ask costs.

Run: python bench/progress.py [--reports N] [--every K]   (default 100,000 reports, an ask every 100)

A job prints N progress reports; the gateway asks for its status every K of them, with the
ordinal it has recorded (``StatusQuery.progress_after``), as a reconciler round does. Measured
side by side in one run: ``ProgressBacklog`` (what LOCAL, RAY and PEER connectors hold: the
reports since the last ask) against the baseline that keeps every report for the job's life and
filters them all at each ask (what they held before). Printed: the time of the N reports and
their asks, and the memory held at the end (tracemalloc), with the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.base import ProgressReport  # noqa: E402
from connectors.progress import ProgressBacklog  # noqa: E402

AT = datetime.now(UTC)


class EveryReport:
    """The baseline: every report kept; an ask filters them all."""

    def __init__(self) -> None:
        self.reports: list[ProgressReport] = []

    def next_ordinal(self) -> int:
        return len(self.reports) + 1

    def add(self, report: ProgressReport) -> None:
        self.reports.append(report)

    def after(self, ordinal: int) -> tuple[ProgressReport, ...]:
        return tuple(report for report in self.reports if report.ordinal > ordinal)


def run(make: Callable[[], ProgressBacklog | EveryReport], reports: int, every: int) -> tuple[float, int]:
    """Seconds for ``reports`` reports asked about every ``every``, and the bytes held at the end."""
    tracemalloc.start()
    try:
        held = make()
        started = time.perf_counter()
        for step in range(1, reports + 1):
            held.add(ProgressReport(ordinal=held.next_ordinal(), at=AT, step=step))
            if step % every == 0:
                answer = held.after(step - every)
                assert len(answer) == every
        seconds = time.perf_counter() - started
        return seconds, tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=100_000, help="progress reports the job prints (default 100,000)")
    parser.add_argument("--every", type=int, default=100, help="reports between two status asks (default 100)")
    args = parser.parse_args()
    backlog_seconds, backlog_bytes = run(ProgressBacklog, args.reports, args.every)
    baseline_seconds, baseline_bytes = run(EveryReport, args.reports, args.every)
    print(f"a job printing {args.reports:,} progress reports, its status asked every {args.every}:")
    print(f"  every report kept (baseline)  {baseline_seconds:8.3f} s  {baseline_bytes / 1e6:9.3f} MB held")
    print(f"  ProgressBacklog               {backlog_seconds:8.3f} s  {backlog_bytes / 1e6:9.3f} MB held")
    print(
        f"  ratio: time {backlog_seconds / baseline_seconds:.3f}x the baseline's, "
        f"memory {backlog_bytes / max(1, baseline_bytes):.4f}x the baseline's"
    )


if __name__ == "__main__":
    main()
