"""API tokens and accounts: issue, check, revoke.

A token is ``aicn_`` followed by 40 random URL-safe characters (240 bits from
``secrets``). It is shown once; the database keeps its SHA-256, which is enough for a
secret of that entropy (no salt or slow hash needed: nobody can guess one to try).
A gateway keeps the tokens it checked recently in a ``TokenCache`` (so a request reads no
token from the database); a revocation is published on the bus and every gateway drops the
token from its cache as the news arrives: ``revoke_token`` answers only once every gateway on
the bus has confirmed (``resolvers.access.news``), so the very next request is refused everywhere.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from resolvers.access.news import Acknowledger, announce
from resolvers.access.token_cache import TokenCache
from resolvers.access.viewer import SCOPES, Viewer
from resolvers.common.errors import UserErrorData
from store import tenancy
from store import tokens as token_store
from store.auth_tables import ApiTokenRow
from store.bus import InMemoryBus, Subscription
from store.db import Database
from store.tables import AccountRow
from store.types import utcnow

TOKEN_PREFIX = "aicn_"
SHOWN_PREFIX = 12  # "aicn_" and 7 characters: enough to tell tokens apart, useless to an attacker
MIN_SECRET_LENGTH = 20
MAX_SECRET_LENGTH = 512
MAX_EXPIRY_DAYS = 3650
MAX_MEMBERS = 100
#: the bus channel that tells open connections and token caches a token was revoked
REVOCATIONS = "tokens:revoked"
#: where each gateway confirms it has dropped a revoked token from its cache
REVOCATION_ACKS = "tokens:revoked:acks"
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(30)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(text: str) -> tuple[str, ...]:
    """``"read,submit"`` → ("read", "submit"); unknown names are kept so that validation reports them."""
    return tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))


@dataclass
class AccountOutcome:
    account: AccountRow | None = None
    errors: list[UserErrorData] = field(default_factory=list)


@dataclass
class TokenOutcome:
    token: ApiTokenRow | None = None
    secret: str | None = None
    errors: list[UserErrorData] = field(default_factory=list)


class AccessService:
    def __init__(self, db: Database, bus: InMemoryBus | None = None, cache: TokenCache | None = None) -> None:
        self.db = db
        self.bus = bus
        # without a bus no revocation news could reach the cache: then there is none
        self.cache = cache if bus is not None else None
        if bus is not None:
            self._acks = Acknowledger(bus, REVOCATION_ACKS)
            self._unwatch = bus.watch(REVOCATIONS, self._on_revoked)

    # ------------------------------------------------------------------ checking

    async def authenticate(self, secret: str) -> Viewer | None:
        """The viewer a token stands for; None for an unknown, revoked or expired token."""
        if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
            return None
        token_hash = hash_secret(secret)
        cache = self.cache if self.bus is not None and self.bus.connected else None
        epoch, generation = self._epoch(), 0
        if cache is not None:
            entry = cache.get(token_hash, epoch)
            if entry is not None:
                if entry.expires_at is not None and entry.expires_at <= utcnow():
                    return None
                return entry.viewer
            generation = cache.generation
        async with self.db.read() as session:
            row = await token_store.token_by_hash(session, token_hash)
        if row is None or not _usable(row):
            return None
        viewer = Viewer.for_token(row.account_id, row.id, row.scope_set)
        # a revocation (or a lost bus connection) while we read: what we read may be stale
        if cache is not None and cache.generation == generation and self._epoch() == epoch:
            cache.put(token_hash, viewer, row.expires_at, epoch)
        return viewer

    def _epoch(self) -> int:
        return self.bus.epoch if self.bus is not None else 0

    def _on_revoked(self, message: dict[str, object]) -> None:
        token_id = message.get("tokenId")
        if self.cache is not None and isinstance(token_id, int):
            self.cache.forget(token_id)
        self._acks.confirm(message)

    async def still_valid(self, token_id: int) -> bool:
        """For long-lived connections: has the token been revoked or expired since?"""
        return await self.seconds_left(token_id) != 0

    async def seconds_left(self, token_id: int) -> float | None:
        """How long the token stays valid (0 once revoked or expired); None when it never expires."""
        async with self.db.read() as session:
            row = await token_store.token_by_id(session, token_id)
        if row is None or not _usable(row):
            return 0.0
        return None if row.expires_at is None else max(0.0, (row.expires_at - utcnow()).total_seconds())

    def revocations(self) -> AbstractAsyncContextManager[Subscription]:
        """News of revoked tokens as they are published (an open WebSocket with one closes)."""
        if self.bus is None:
            raise RuntimeError("the access service was built without an event bus")
        return self.bus.subscribe(REVOCATIONS)

    # ------------------------------------------------------------------ administration

    async def create_account(self, name: str, members: Sequence[str] = ()) -> AccountOutcome:
        errors: list[UserErrorData] = []
        if not _ACCOUNT_NAME.match(name):
            errors.append(UserErrorData("the name must be 1 to 100 letters, digits, '.', '_' or '-'", "INVALID_NAME", ("name",)))
        cleaned = list(dict.fromkeys(member.strip() for member in members))
        if len(cleaned) > MAX_MEMBERS or not all(0 < len(member) <= 200 for member in cleaned):
            errors.append(UserErrorData(f"at most {MAX_MEMBERS} members, each 1 to 200 characters", "INVALID_MEMBERS", ("members",)))
        if errors:
            return AccountOutcome(errors=errors)
        exists = AccountOutcome(errors=[UserErrorData(f"account {name} already exists", "ALREADY_EXISTS", ("name",))])
        try:
            async with self.db.transaction() as session:
                if await tenancy.account_by_name(session, name) is not None:
                    return exists
                roles = [(member, "owner" if index == 0 else "member") for index, member in enumerate(cleaned)]
                account = await tenancy.create_account(session, name, roles)
        except IntegrityError:  # a concurrent twin made an account of that name first
            return exists
        return AccountOutcome(account=account)

    async def account_by_name(self, name: str) -> AccountRow | None:
        async with self.db.read() as session:
            return await tenancy.account_by_name(session, name)

    async def create_token(
        self, account_id: int | None, name: str, scopes: Sequence[str], expires_in_days: int | None = None
    ) -> TokenOutcome:
        errors: list[UserErrorData] = []
        if not 0 < len(name.strip()) <= 100:
            errors.append(UserErrorData("the name must be 1 to 100 characters", "INVALID_NAME", ("name",)))
        unknown = [scope for scope in scopes if scope not in SCOPES]
        if not scopes or unknown:
            errors.append(UserErrorData(f"scopes must be a non-empty subset of {', '.join(SCOPES)}", "INVALID_SCOPES", ("scopes",)))
        if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            errors.append(UserErrorData(f"expiresInDays must be between 1 and {MAX_EXPIRY_DAYS}", "INVALID_EXPIRY", ("expiresInDays",)))
        async with self.db.read() as session:
            found = await session.get(AccountRow, account_id) if account_id is not None else None
        if found is None:
            errors.append(UserErrorData("no such account", "ACCOUNT_NOT_FOUND", ("accountId",)))
        if errors or account_id is None:
            return TokenOutcome(errors=errors)
        secret = new_secret()
        expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days is not None else None
        ordered = [scope for scope in SCOPES if scope in scopes]
        async with self.db.transaction() as session:
            row = await token_store.add_token(
                session,
                account_id=account_id,
                name=name.strip(),
                prefix=secret[:SHOWN_PREFIX],
                token_hash=hash_secret(secret),
                scopes=ordered,
                expires_at=expires_at,
            )
        return TokenOutcome(token=row, secret=secret)

    async def revoke_token(self, token_id: int | None) -> TokenOutcome:
        """Revoke a token; revoking it again changes nothing."""
        async with self.db.transaction() as session:
            row = await token_store.token_by_id(session, token_id) if token_id is not None else None
            if row is None:
                return TokenOutcome(errors=[UserErrorData("no such token", "TOKEN_NOT_FOUND", ("tokenId",))])
            newly = row.revoked_at is None
            if newly:
                row.revoked_at = utcnow()
                await session.flush()
        if newly and self.bus is not None:  # caches drop it, open WebSockets with this token close now
            await announce(self.bus, REVOCATIONS, REVOCATION_ACKS, {"tokenId": row.id})
        return TokenOutcome(token=row)

    async def bootstrap(self, account_id: int, admin_secret: str | None) -> str | None:
        """Make sure someone can get in: returns a new admin secret on a first start, else None.

        With ``admin_secret`` (``AICN_ADMIN_TOKEN``) that token is registered once and
        nothing is printed. Otherwise a database without any token gets a fresh admin token.
        """
        async with self.db.transaction() as session:
            if admin_secret:
                if await token_store.token_by_hash(session, hash_secret(admin_secret)) is None:
                    await token_store.add_token(
                        session,
                        account_id=account_id,
                        name="admin (AICN_ADMIN_TOKEN)",
                        prefix=admin_secret[:SHOWN_PREFIX] if admin_secret.startswith(TOKEN_PREFIX) else "(env)",
                        token_hash=hash_secret(admin_secret),
                        scopes=SCOPES,
                    )
                return None
            if await token_store.count_tokens(session) > 0:
                return None
            secret = new_secret()
            await token_store.add_token(
                session,
                account_id=account_id,
                name="admin (first start)",
                prefix=secret[:SHOWN_PREFIX],
                token_hash=hash_secret(secret),
                scopes=SCOPES,
            )
        return secret


def _usable(row: ApiTokenRow) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > utcnow())


__all__ = ["AccessService", "AccountOutcome", "TokenOutcome", "hash_secret", "new_secret", "parse_scopes"]
