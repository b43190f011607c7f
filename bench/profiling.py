"""A benchmark's gateway served on loopback as `aicn serve` serves it (``aicn.serving.server_config``); under pyinstrument when a profile is asked for."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import uvicorn

from aicn.serving import server_config


def serve_app(app: Any, port: int, profile: Path | None) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` until stopped; with ``profile``, the run's pyinstrument
    profile is written there at the end (HTML for ``.html``, text otherwise)."""
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port, log_level="warning"))
    if profile is None:
        server.run()
        return
    from pyinstrument import Profiler

    def leave(_signal: int, _frame: object) -> None:
        raise SystemExit(0)

    # uvicorn raises the SIGTERM it caught again once it has shut down: leave through ``finally``
    signal.signal(signal.SIGTERM, leave)
    profiler = Profiler(async_mode="disabled")
    profiler.start()
    try:
        server.run()
    finally:
        profiler.stop()
        profile.write_text(profiler.output_html() if profile.suffix == ".html" else profiler.output_text(unicode=True, show_all=False))
