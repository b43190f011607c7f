"""Tokens a gateway has checked recently, so that a request need not read its token again.

Keyed by the token's SHA-256 and holding what a request needs (the viewer: account, token id,
scopes) with the token's expiry, which is compared on every use; bounded and trusted as every
``BusCache`` is. A revocation removes its token at once (``forget``, called from the bus).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from resolvers.access.cache import BusCache
from resolvers.access.viewer import Viewer


@dataclass(frozen=True, slots=True)
class CachedToken:
    viewer: Viewer
    expires_at: datetime | None


class TokenCache(BusCache[str, CachedToken]):
    def get(self, token_hash: str, epoch: int) -> CachedToken | None:
        return self.lookup(token_hash, epoch)

    def put(self, token_hash: str, viewer: Viewer, expires_at: datetime | None, epoch: int) -> None:
        self.store(token_hash, CachedToken(viewer, expires_at), epoch)

    def forget(self, token_id: int) -> None:
        self.forget_where(lambda entry: entry.viewer.token_id == token_id)
