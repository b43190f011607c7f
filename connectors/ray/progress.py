"""Progress reports read from a Ray job's log as it streams in, each line parsed once.

A ``LogCursor`` is fed the log's text in the chunks Ray's WebSocket tail sends (see tail.py)
and keeps the reports found since the caller last asked (``ProgressBacklog``). A line is parsed when its newline arrives; a line longer
than ``MAX_PROGRESS_LINE`` cannot be a valid report and is skipped without being kept. The
ordinals count the job's ``AICN_PROGRESS`` lines from the start of its log, so a cursor
rebuilt after a restart (the tail streams from the first byte) numbers them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.base import ProgressReport
from connectors.progress import ProgressBacklog, parse_progress_line

#: a progress line is a short JSON object; anything longer is some other output
MAX_PROGRESS_LINE = 64 * 1024


@dataclass
class LogCursor:
    reports: ProgressBacklog = field(default_factory=ProgressBacklog)
    _partial: list[str] = field(default_factory=list)
    _partial_length: int = 0

    def feed(self, text: str) -> None:
        """Parse the lines ``text`` completes; a half-written last line waits for the rest."""
        at = datetime.now(UTC)
        pieces = text.split("\n")
        for piece in pieces[:-1]:
            line = self._take_partial(piece)
            if line is not None:
                report = parse_progress_line(line, self.reports.next_ordinal(), at)
                if report is not None:
                    self.reports.add(report)
        self._keep_partial(pieces[-1])

    def _take_partial(self, piece: str) -> str | None:
        too_long = self._partial_length + len(piece) > MAX_PROGRESS_LINE
        line = None if too_long else "".join(self._partial) + piece
        self._partial.clear()
        self._partial_length = 0
        return line

    def _keep_partial(self, piece: str) -> None:
        if not piece:
            return
        if self._partial_length <= MAX_PROGRESS_LINE:  # past it the line is known not to be a report
            self._partial.append(piece[: MAX_PROGRESS_LINE + 1])
        self._partial_length += len(piece)

    def after(self, ordinal: int) -> tuple[ProgressReport, ...]:
        """The reports after ``ordinal`` (those up to it are forgotten: ``ProgressBacklog``)."""
        return self.reports.after(ordinal)
