"""What a gateway keeps of rows it read recently, trusted only while the bus could have told it of a change.

Bounded twice: at most ``size`` entries (the least recently used leave first) and each trusted for
``ttl`` seconds after it was read. A change removes its entry at once (``forget``, called as the
bus delivers the news); an entry read under an older bus ``epoch`` (news may have been lost since)
is not trusted. ``generation`` is bumped by every removal: a read that began before one must not
store what it read (it may predate the change).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Entry(Generic[V]):
    value: V
    read_at: float
    epoch: int


class BusCache(Generic[K, V]):
    def __init__(self, size: int = 10_000, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[K, Entry[V]] = OrderedDict()
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: K, epoch: int) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.epoch != epoch or self.clock() - entry.read_at >= self.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.value

    def store(self, key: K, value: V, epoch: int) -> None:
        self._entries[key] = Entry(value, self.clock(), epoch)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget_where(self, doomed: Callable[[V], bool]) -> None:
        self.generation += 1
        for key in [key for key, entry in self._entries.items() if doomed(entry.value)]:
            del self._entries[key]

    def forget_key(self, key: K) -> None:
        self.generation += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
