"""Live logs' pure parts: lines out of bytes, each bounded, and the per-subscription line rate."""

from __future__ import annotations

from aicn.security_settings import LimitSettings
from resolvers.jobs.logs import LineRate, LineSplitter


def test_the_splitter_keeps_the_head_of_a_long_line_and_counts_the_rest() -> None:
    splitter = LineSplitter(limit=8)
    lines, cut = splitter.feed(b"short\n0123456789")
    assert lines == ["short"] and not cut
    lines, cut = splitter.feed(b"abcdef\nnext")
    assert cut and lines[0].startswith("01234567 […]") and "8 more bytes" in lines[0]
    assert splitter.flush() == ("next", False)
    assert splitter.flush() == (None, False)


def test_the_rate_admits_a_second_of_burst() -> None:
    rate = LineRate(10)
    kept, dropped = rate.admit([str(i) for i in range(25)])
    assert len(kept) == 10 and dropped == 15
    assert LimitSettings().log_lines_per_second == 200
