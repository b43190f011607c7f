"""Progress reports read from Ray job logs, each line parsed once.

Ray 2.60's REST API returns a job's whole log (``GET /api/jobs/{id}/logs``, no offset
parameter); the only incremental form is a WebSocket tail. A ``LogCursor`` keeps, per job,
how far the log has been parsed and the reports found so far, so each poll parses only
the text after that offset. The ordinals count the job's ``AICN_PROGRESS`` lines from the
start of its log, so a cursor rebuilt after a restart numbers them the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.base import ProgressReport
from connectors.progress import parse_progress_line


@dataclass
class LogCursor:
    offset: int = 0
    reports: list[ProgressReport] = field(default_factory=list)

    def feed(self, log: str) -> None:
        """Parse the complete lines of ``log`` after the offset (a half-written last line waits)."""
        if len(log) < self.offset:  # not the log this cursor read: start again
            self.offset, self.reports = 0, []
        end = log.rfind("\n", self.offset) + 1
        if end <= self.offset:
            return
        at = datetime.now(UTC)
        for line in log[self.offset : end].splitlines():
            report = parse_progress_line(line, len(self.reports) + 1, at)
            if report is not None:
                self.reports.append(report)
        self.offset = end

    def after(self, ordinal: int) -> tuple[ProgressReport, ...]:
        return tuple(self.reports[max(0, ordinal) :])


class Cursors:
    """The cursors of the jobs being followed, the least recently used dropped beyond ``limit``."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._cursors: OrderedDict[str, LogCursor] = OrderedDict()

    def of(self, submission_id: str) -> LogCursor:
        cursor = self._cursors.pop(submission_id, None) or LogCursor()
        self._cursors[submission_id] = cursor
        while len(self._cursors) > self.limit:
            self._cursors.popitem(last=False)
        return cursor

    def drop(self, submission_id: str) -> None:
        self._cursors.pop(submission_id, None)

    def __len__(self) -> int:
        return len(self._cursors)
