"""One entity's event log as a live stream: replay after ``after``, then live news, gap-free.

The caller subscribes to the entity's bus channel *before* calling, so nothing committed in
between is missed; every event with ``seq > after`` is yielded exactly once, in order (a gap
in the news is filled from the log), and the stream ends after a terminal event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from store.bus import Subscription

#: how long a quiet stream waits before checking the log itself (covers lost bus news)
IDLE_RECHECK_SECONDS = 5.0


class SequencedRecord(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def terminal(self) -> bool: ...


R = TypeVar("R", bound=SequencedRecord)


async def replay_then_live(
    live: Subscription,
    after: int,
    *,
    read_after: Callable[[int], Awaitable[list[R]]],
    ended_before: Callable[[int], Awaitable[bool]],
    from_message: Callable[[dict[str, Any]], R],
    batch: int,
    idle_recheck: float = IDLE_RECHECK_SECONDS,
) -> AsyncIterator[R]:
    last = max(0, after)
    while True:  # replay what the log holds
        replayed = await read_after(last)
        for record in replayed:
            yield record
            last = record.seq
            if record.terminal:
                return
        if len(replayed) < batch:
            break
    if await ended_before(last):
        return
    while True:  # then live, gap-checked against the log
        message = await live.get(timeout=idle_recheck)
        if message is None or live.overflowed:
            live.overflowed = False
            pending = await read_after(last)
        else:
            record = from_message(message)
            if record.seq <= last:
                continue
            pending = [record] if record.seq == last + 1 else await read_after(last)
        for record in pending:
            yield record
            last = record.seq
            if record.terminal:
                return
