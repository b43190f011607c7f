"""Singleton loops across gateway replicas: each runs on exactly one replica, under a lease.

Every replica lists the loops it could run (``add``); one heartbeat task renews the leases it
holds and takes those nobody holds (expired: their holder died, or released at a clean stop).
A loop starts when its lease is granted and stops as soon as the lease is lost: taken by
another replica, or not renewed in time because the database did not answer (the holder
fences itself before its lease can run out). A SIGKILLed holder is replaced within
``ttl + heartbeat`` seconds. Writes that must not be made by a stale holder check
``fence(name)`` inside their transaction (the lease's epoch, see ``store.leases``).

Spread leases (each center's reconciler) are shared fairly among the live replicas (those whose
presence row is fresh): a replica takes a free one only while it holds fewer than its share,
``ceil(spread leases / live replicas)``, and one that holds more hands the excess over at a clean
point: its loop finishes the round it is in and stops, and only then is the lease released, so a
center is never reconciled by two replicas at once (the epoch fences the writes besides). With a
stable set of replicas nobody is above its share, so nothing moves back and forth.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.common.background import Alarm, stop_task
from store import leases as lease_store
from store.db import Database
from store.types import utcnow

log = logging.getLogger(__name__)
#: how long a stopping gateway tries to give its leases up before leaving them to expire
RELEASE_SECONDS = 3.0
#: drop the presence rows of replicas gone (killed) this many lease lifetimes ago
FORGET_AFTER_TTLS = 10

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
    #: ends the loop at its next clean point (a hand-over); ``stop`` when it has none
    drain: Callable[[], Awaitable[None]] | None = None
    spread: bool = False


def fair_share(spread: int, replicas: int) -> int:
    """The most spread leases one of ``replicas`` live replicas should hold."""
    return math.ceil(spread / max(1, replicas))


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
        #: leases being handed over: their loop finishes its round, still fenced at this epoch
        self._draining: dict[str, int] = {}
        #: the live replicas and the leases each held, as of the last beat (for /readyz)
        self.view: dict[str, list[str]] = {}
        self._renewed_at = 0.0  # time.monotonic() of the last beat the database answered
        self._alarm = Alarm()
        self._task: asyncio.Task[None] | None = None
        self._beat_lock = asyncio.Lock()

    def add(
        self,
        name: str,
        start: Callable[[], Awaitable[None] | None],
        stop: Callable[[], Awaitable[None]],
        *,
        drain: Callable[[], Awaitable[None]] | None = None,
        spread: bool = False,
    ) -> None:
        """A loop run under the lease ``name``; ``spread`` ones are shared out among the live replicas."""
        self._loops[name] = _Loop(start, stop, drain, spread)

    def held(self) -> dict[str, int]:
        """The leases this replica holds now, with their epochs."""
        return dict(self._held)

    def holds(self, name: str) -> bool:
        return name in self._held

    def fence(self, name: str) -> Fence:
        async def check(session: AsyncSession) -> bool:
            epoch = self._held.get(name, self._draining.get(name))
            return epoch is not None and await lease_store.still_held(session, name, self.holder, epoch, utcnow())

        return check

    async def start(self) -> None:
        """The first beat runs before this returns, so a lone gateway starts its loops at once."""
        await self.beat_once()
        self._task = asyncio.create_task(self._run(), name="leases")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        held = {**self._held, **self._draining}
        for name in held:
            await self._lose(name, "the gateway stops", logging.INFO)
        try:
            # bounded: a stop must end even when the database cannot take the write now (a SQLite
            # file another connection still locks); leases not released expire on their own
            async with self.db.transaction(lock_wait_seconds=RELEASE_SECONDS) as session:
                await lease_store.release(session, self.holder, held, utcnow())
                await lease_store.withdraw(session, self.holder)
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
        """Renew what we hold, take what is free up to our share, start and stop loops to match,
        then hand over what we hold beyond our share."""
        async with self._beat_lock:
            began = time.monotonic()
            now = utcnow()
            until = now + timedelta(seconds=self.ttl)
            async with self.db.transaction() as session:
                await lease_store.renew(session, self.holder, {**self._held, **self._draining}, now, until)
                rows, presence = await lease_store.lease_table(session)
                if not any(row.holder == self.holder for row in presence):
                    lease_store.announce(session, self.holder, now, until)  # the first beat (or after a long pause)
                current = {row.holder for row in (*rows, *presence) if row.expires_at >= now and row.holder != self.holder}
                dead = {holder for holder in current if died_here(holder)} if self.reclaim_dead_local else set()
                live = {row.holder for row in presence if row.expires_at >= now and row.holder not in dead} | {self.holder}
                taking = self._to_take(rows, dead, len(live), now)
                if taking:
                    await lease_store.take_expired(session, self.holder, taking, now, until, dead)
                    granted = await lease_store.held_by(session, self.holder, now)
                else:  # nothing taken: what we hold is in the rows just read, after the renewal
                    granted = {row.name: row.epoch for row in rows if row.holder == self.holder and row.expires_at >= now}
            self._renewed_at = began
            for name, epoch in list(self._held.items()):
                if granted.get(name) != epoch:
                    await self._lose(name, "another replica holds it now")
            for name, epoch in granted.items():
                if name in self._loops and name not in self._held and name not in self._draining:
                    self._held[name] = epoch
                    log.info("lease %s taken (epoch %d): running it on this replica", name, epoch)
                    started = self._loops[name].start()
                    if started is not None:
                        await started
            self.view = _view(rows, live, now, self.holder, sorted(self._held))
            await self._hand_over_excess(len(live))
            if any(row.expires_at < now - timedelta(seconds=self.ttl * FORGET_AFTER_TTLS) for row in presence):
                await self._forget_gone(now)

    async def _forget_gone(self, now: datetime) -> None:
        """On its own: another replica may be dropping the same rows (a lost race is harmless)."""
        try:
            async with self.db.transaction() as session:
                await lease_store.forget_gone(session, now - timedelta(seconds=self.ttl * FORGET_AFTER_TTLS))
        except Exception:
            log.debug("dropping the presence of gone replicas failed; tried again next beat", exc_info=True)

    def _to_take(self, rows: list[lease_store.LeaseRow], dead: set[str], replicas: int, now: datetime) -> list[str]:
        """The free leases to take now: every unspread one, and spread ones up to our fair share. A spread
        lease left free a whole lease lifetime (no replica with room took it) is taken beyond the share."""
        by_name = {row.name: row for row in rows}
        spread = [name for name, loop in self._loops.items() if loop.spread]
        room = fair_share(len(spread), replicas) - sum(1 for name in self._held if self._loops[name].spread)
        abandoned = now - timedelta(seconds=self.ttl)
        wanted = [name for name in self._loops if name not in self._held and name not in self._draining]
        random.shuffle(wanted)  # replicas with room try different ones first
        taking: list[str] = []
        for name in wanted:
            row = by_name.get(name)
            free = row is None or row.expires_at < now or row.holder in dead
            if not free:
                continue
            if not self._loops[name].spread:
                taking.append(name)
            elif room > 0:
                taking.append(name)
                room -= 1
            elif row is not None and row.expires_at < abandoned:
                taking.append(name)
        return taking

    async def _hand_over_excess(self, replicas: int) -> None:
        spread = sorted(name for name in self._held if self._loops[name].spread)
        excess = len(spread) - fair_share(sum(1 for loop in self._loops.values() if loop.spread), replicas)
        if excess > 0:
            await asyncio.gather(*(self._hand_over(name) for name in spread[-excess:]))

    async def _hand_over(self, name: str) -> None:
        """Let the loop finish its round and stop (bounded: then it is stopped outright), then release
        the lease: only a lease whose loop has stopped is free for another replica to take."""
        epoch = self._held.pop(name)
        self._draining[name] = epoch
        loop = self._loops[name]
        log.info("lease %s handed over (above this replica's fair share): stopping it at the end of its round", name)
        try:
            async with asyncio.timeout(self.heartbeat):
                await (loop.drain or loop.stop)()
        except TimeoutError:
            await loop.stop()
        except Exception:
            log.exception("stopping %s failed", name)
        try:
            async with self.db.transaction() as session:
                await lease_store.release(session, self.holder, {name: epoch}, utcnow())
        except Exception:
            log.warning("releasing lease %s failed; it expires on its own", name, exc_info=True)
        finally:
            self._draining.pop(name, None)

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


def _view(rows: list[lease_store.LeaseRow], live: set[str], now: datetime, holder: str, mine: list[str]) -> dict[str, list[str]]:
    """Each live replica and the leases it holds (ours as this replica knows them)."""
    view: dict[str, list[str]] = {replica: [] for replica in live}
    for row in rows:
        if row.expires_at >= now and row.holder in view and row.holder != holder:
            view[row.holder].append(row.name)
    view[holder] = mine
    return {replica: sorted(names) for replica, names in sorted(view.items())}
