"""Singleton loops across gateway replicas: each runs on exactly one replica, under a lease.

Every replica lists the loops it could run (``add``); one heartbeat task renews the leases it
holds and takes those nobody holds (expired: their holder died, or released at a clean stop).
A loop starts when its lease is granted and stops as soon as the lease is lost: taken by
another replica, or not renewed in time because the database did not answer (the holder
fences itself before its lease can run out). A SIGKILLed holder is replaced within
``ttl + heartbeat`` seconds. Writes that must not be made by a stale holder check
``fence(name)`` inside their transaction (the lease's epoch, see ``store.leases``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.common.background import Alarm, stop_task
from store import leases as lease_store
from store.db import Database
from store.types import utcnow

log = logging.getLogger(__name__)
#: how long a stopping gateway tries to give its leases up before leaving them to expire
RELEASE_SECONDS = 3.0

#: inside a writing transaction: True while the write may be made (its lease is still ours)
Fence = Callable[[AsyncSession], Awaitable[bool]]


def _machine() -> str:
    """This kernel boot and pid namespace: processes that share it see each other's pids."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "unknown"
    return f"{boot}.{namespace}"


def replica_id(name: str | None = None) -> str:
    """This process's holder id: the operator's name for it (else the host's), the machine, the pid
    and a nonce (a restarted process with the same pid is a new holder)."""
    label = (name or socket.gethostname()).replace(":", "-")
    return f"{label}:{_machine()}:{os.getpid()}:{secrets.token_hex(3)}"


def died_here(holder: str) -> bool:
    """True when ``holder`` was a process on this machine that no longer runs."""
    parts = holder.split(":")
    if len(parts) != 4 or parts[1] != _machine() or parts[1] == "unknown" or not parts[2].isdigit():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False  # alive (or this very process: another gateway in it may still hold the lease)


@dataclass
class _Loop:
    start: Callable[[], Awaitable[None] | None]
    stop: Callable[[], Awaitable[None]]


class Leases:
    def __init__(
        self, db: Database, holder: str, *, ttl_seconds: float = 6.0, heartbeat_seconds: float = 2.0, reclaim_dead_local: bool = True
    ) -> None:
        if heartbeat_seconds * 2 > ttl_seconds:
            raise ValueError("the heartbeat must be at most half the lease's time to live")
        self.db = db
        self.holder = holder
        self.ttl = ttl_seconds
        self.heartbeat = heartbeat_seconds
        #: take the leases of a dead process of this machine without waiting for them to expire
        self.reclaim_dead_local = reclaim_dead_local
        self._loops: dict[str, _Loop] = {}
        self._held: dict[str, int] = {}
        self._renewed_at = 0.0  # time.monotonic() of the last beat the database answered
        self._alarm = Alarm()
        self._task: asyncio.Task[None] | None = None
        self._beat_lock = asyncio.Lock()

    def add(self, name: str, start: Callable[[], Awaitable[None] | None], stop: Callable[[], Awaitable[None]]) -> None:
        self._loops[name] = _Loop(start, stop)

    def held(self) -> dict[str, int]:
        """The leases this replica holds now, with their epochs."""
        return dict(self._held)

    def holds(self, name: str) -> bool:
        return name in self._held

    def fence(self, name: str) -> Fence:
        async def check(session: AsyncSession) -> bool:
            epoch = self._held.get(name)
            return epoch is not None and await lease_store.still_held(session, name, self.holder, epoch, utcnow())

        return check

    async def start(self) -> None:
        """The first beat runs before this returns, so a lone gateway starts its loops at once."""
        await self.beat_once()
        self._task = asyncio.create_task(self._run(), name="leases")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        held = dict(self._held)
        for name in held:
            await self._lose(name, "the gateway stops", logging.INFO)
        try:
            # bounded: a stop must end even when the database cannot take the write now (a SQLite
            # file another connection still locks); leases not released expire on their own
            async with self.db.transaction(lock_wait_seconds=RELEASE_SECONDS) as session:
                await lease_store.release(session, self.holder, held, utcnow())
        except Exception:
            log.warning("releasing the leases failed; they expire on their own", exc_info=True)

    async def _run(self) -> None:
        while True:
            await self._alarm.sleep(self.heartbeat)
            try:
                await self.beat_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lease heartbeat failed", exc_info=True)
                await self._fence_if_stale()

    async def beat_once(self) -> None:
        """Renew what we hold, take what nobody holds, then start and stop loops to match."""
        async with self._beat_lock:
            began = time.monotonic()
            now = utcnow()
            until = now + timedelta(seconds=self.ttl)
            wanted = [name for name in self._loops if name not in self._held]
            async with self.db.transaction() as session:
                await lease_store.renew(session, self.holder, self._held, now, until)
                dead: set[str] = set()
                if wanted and self.reclaim_dead_local:
                    dead = {holder for holder in await lease_store.holders_of(session, wanted) if died_here(holder)}
                await lease_store.take_expired(session, self.holder, wanted, now, until, dead)
                granted = await lease_store.held_by(session, self.holder, now)
            self._renewed_at = began
            for name, epoch in list(self._held.items()):
                if granted.get(name) != epoch:
                    await self._lose(name, "another replica holds it now")
            for name, epoch in granted.items():
                if name in self._loops and name not in self._held:
                    self._held[name] = epoch
                    log.info("lease %s taken (epoch %d): running it on this replica", name, epoch)
                    started = self._loops[name].start()
                    if started is not None:
                        await started

    async def _fence_if_stale(self) -> None:
        """A holder the database has not heard from stops before its leases can expire."""
        if self._held and time.monotonic() - self._renewed_at > self.ttl - self.heartbeat:
            for name in list(self._held):
                await self._lose(name, "the database did not answer the heartbeat in time")

    async def _lose(self, name: str, why: str, level: int = logging.WARNING) -> None:
        self._held.pop(name, None)
        log.log(level, "lease %s given up (%s): stopping it on this replica", name, why)
        try:
            await self._loops[name].stop()
        except Exception:
            log.exception("stopping %s failed", name)
