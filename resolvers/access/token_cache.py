"""Tokens a gateway has checked recently, so that a request need not read its token again.

Keyed by the token's SHA-256 and holding what a request needs (the viewer: account, token id,
scopes) with the token's expiry, which is compared on every use. Bounded twice: at most
``size`` entries (the least recently used leave first) and each trusted for ``ttl`` seconds
after it was read. A revocation removes its token at once (``forget``, called from the bus);
an entry read under an older bus ``epoch`` (news may have been lost since) is not trusted.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from resolvers.access.viewer import Viewer


@dataclass(frozen=True, slots=True)
class CachedToken:
    viewer: Viewer
    expires_at: datetime | None
    read_at: float
    epoch: int


class TokenCache:
    def __init__(self, size: int = 10_000, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, CachedToken] = OrderedDict()
        #: bumped by every removal: a lookup that began before one must not store what it read
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_hash: str, epoch: int) -> CachedToken | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry.epoch != epoch or self.clock() - entry.read_at >= self.ttl:
            del self._entries[token_hash]
            return None
        self._entries.move_to_end(token_hash)
        return entry

    def put(self, token_hash: str, viewer: Viewer, expires_at: datetime | None, epoch: int) -> None:
        self._entries[token_hash] = CachedToken(viewer, expires_at, self.clock(), epoch)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, token_id: int) -> None:
        self.generation += 1
        for token_hash in [key for key, entry in self._entries.items() if entry.viewer.token_id == token_id]:
            del self._entries[token_hash]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
