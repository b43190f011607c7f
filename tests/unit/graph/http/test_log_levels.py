"""The gateway's log shows its own lines; httpx's line per outgoing request only when debugging."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from graph.http import logs


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    saved = (root.level, list(root.handlers), httpx.level)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    httpx.setLevel(saved[2])


@pytest.mark.parametrize(("level", "httpx_tells_requests"), [("info", False), ("warning", False), ("debug", True)])
def test_outgoing_requests_are_logged_only_when_debugging(restored_logging: None, level: str, httpx_tells_requests: bool) -> None:
    logs.configure(level, "text")
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO) is httpx_tells_requests
    assert logging.getLogger("aicn").isEnabledFor(logging.INFO) is (level != "warning")
