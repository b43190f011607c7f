"""What an idle gateway asks of its database: the statements its background loops issue, by loop.

Run: python bench/idle.py [--seconds S] [--base DIR]   (takes about twice S; default 60)

A gateway on its embedded defaults (SQLite, one LOCAL center), with no job, no service and no
webhook, started in a child process and left alone for S seconds; every statement on its
database is counted by the asyncio task that issued it (a background loop names its task).
``--base DIR`` measures another checkout (a worktree of the base commit, say) the same way, in
the same run, and prints the ratio. A loop that is told of its work (over the bus) instead of
polling for it costs only its safety-net rounds here.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: settling time after the start, before counting (the start's own statements are not the loops')
SETTLE_SECONDS = 3.0


def measure(code: Path, seconds: float) -> dict[str, int]:
    """Statements per loop of an idle gateway of checkout ``code``, over ``seconds``."""
    command = [sys.executable, __file__, "--measure", str(code), str(seconds)]
    finished = subprocess.run(command, cwd=code, capture_output=True, text=True, check=True)
    counts: dict[str, int] = json.loads(finished.stdout.strip().splitlines()[-1])
    return counts


def count_statements(seconds: float) -> dict[str, int]:
    from sqlalchemy import event

    from aicn.runtime import Runtime
    from aicn.settings import Settings
    from graph.http.app import create_app

    async def run() -> dict[str, int]:
        runtime = Runtime(Settings(data_dir=Path(tempfile.mkdtemp(prefix="aicn-bench-idle-"))))
        app = create_app(runtime)
        counts: collections.Counter[str] = collections.Counter()

        def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            try:
                task = asyncio.current_task()
            except RuntimeError:  # a statement from a thread of its own
                task = None
            counts[task.get_name() if task is not None else "(thread)"] += 1

        async with app.router.lifespan_context(app):
            await asyncio.sleep(SETTLE_SECONDS)
            for engine in runtime.db.engines:
                event.listen(engine.sync_engine, "before_cursor_execute", record)
            await asyncio.sleep(seconds)
            for engine in runtime.db.engines:
                event.remove(engine.sync_engine, "before_cursor_execute", record)
        return dict(counts)

    return asyncio.run(run())


def per_minute(counts: dict[str, int], seconds: float) -> dict[str, float]:
    return {loop: count * 60 / seconds for loop, count in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the idle gateway is watched (default 60)")
    parser.add_argument("--base", type=Path, help="another checkout, measured the same way in the same run")
    arguments = parser.parse_args()
    runs = {"this code": measure(ROOT, arguments.seconds)}
    if arguments.base is not None:
        runs["base"] = measure(arguments.base.resolve(), arguments.seconds)
    rates = {name: per_minute(counts, arguments.seconds) for name, counts in runs.items()}
    loops = sorted({loop for rate in rates.values() for loop in rate}, key=lambda loop: -max(rate.get(loop, 0) for rate in rates.values()))
    print(f"aicn idle gateway (SQLite, one LOCAL center, nothing to do): statements a minute by loop, over {arguments.seconds:g} s")
    print("  " + f"{'loop':<24}" + "".join(f"{name:>12}" for name in rates))
    for loop in loops:
        print("  " + f"{loop:<24}" + "".join(f"{rate.get(loop, 0):>12.1f}" for rate in rates.values()))
    totals = {name: sum(rate.values()) for name, rate in rates.items()}
    print("  " + f"{'all':<24}" + "".join(f"{total:>12.1f}" for total in totals.values()))
    if "base" in totals and totals["this code"]:
        print(f"  base / this code: {totals['base'] / totals['this code']:.2f}x the statements")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        sys.path.insert(0, sys.argv[2])
        print(json.dumps(count_statements(float(sys.argv[3]))))
    else:
        main()
