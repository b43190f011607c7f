"""DataLoaders from batch reads: each kind of lookup is one query per batch of keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

from strawberry.dataloader import DataLoader

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")
N = TypeVar("N")

Fetch = Callable[[list[K]], Awaitable[Mapping[K, V]]]


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose answers survive the cancellation of one of their awaiters.

    Two fields of a request may await one key's future. When graphql-core cancels one of
    them (a sibling failed under a non-null parent), awaiting the bare future would cancel
    it for the other field too, which then dies of a CancelledError instead of an answer.
    """

    def load(self, key: K) -> asyncio.Future[V]:
        return asyncio.shield(super().load(key))

    def load_all(self, keys: list[K]) -> asyncio.Future[list[V | BaseException]]:
        """Every key's answer, or the exception it failed with, in order: one shield for them all
        rather than one a key (a fan-out over many centers pays a future and a tick less per key)."""
        return asyncio.shield(asyncio.gather(*(DataLoader.load(self, key) for key in keys), return_exceptions=True))


class CallPerKey(Generic[K, V]):
    """A request's loader for calls that no batch can merge (one call per center): a key's call
    starts at its first ask, as a task every later ask of the key shares. It skips what a
    DataLoader adds (a future per key, the batch's tick and its gather); answers survive the
    cancellation of one awaiter, as SharedLoader's do. A key's exception is raised by ``load``."""

    def __init__(self, call: Callable[[K], Awaitable[V]]) -> None:
        self._call = call
        self._calls: dict[K, asyncio.Future[V]] = {}

    def _started(self, key: K) -> asyncio.Future[V]:
        started = self._calls.get(key)
        if started is None:
            started = self._calls[key] = asyncio.ensure_future(self._call(key))
        return started

    def load(self, key: K) -> asyncio.Future[V]:
        return asyncio.shield(self._started(key))

    def load_all(self, keys: list[K]) -> asyncio.Future[list[V | BaseException]]:
        """Every key's answer, or the exception it failed with, in order (one shield for them all)."""
        return asyncio.shield(asyncio.gather(*(self._started(key) for key in keys), return_exceptions=True))


def keyed(fetch: Fetch[K, V]) -> DataLoader[K, V | None]:
    """One value per key, None where the read found none."""

    async def load(keys: list[K]) -> list[V | None]:
        found = await fetch(keys)
        return [found.get(key) for key in keys]

    return SharedLoader(load_fn=load)


def grouped(fetch: Fetch[K, V], empty: V) -> DataLoader[K, V]:
    """One value per key, ``empty`` where the read found none."""

    async def load(keys: list[K]) -> list[V]:
        found = await fetch(keys)
        return [found.get(key, empty) for key in keys]

    return SharedLoader(load_fn=load)


def complete(fetch: Fetch[K, V]) -> DataLoader[K, V]:
    """One value per key, from a read that answers every key it is asked."""

    async def load(keys: list[K]) -> list[V]:
        found = await fetch(keys)
        return [found[key] for key in keys]

    return SharedLoader(load_fn=load)


def nodes(fetch: Fetch[K, R], convert: Callable[[R], N]) -> DataLoader[K, N | None]:
    """Records by key, turned into the graph's nodes once per request."""

    async def load(keys: list[K]) -> list[N | None]:
        found = await fetch(keys)
        return [convert(found[key]) if key in found else None for key in keys]

    return SharedLoader(load_fn=load)


def node_lists(fetch: Fetch[K, list[R]], convert: Callable[[R], N]) -> DataLoader[K, list[N]]:
    """Lists of records by key (a job's inputs, an account's tokens), turned into nodes."""

    async def load(keys: list[K]) -> list[list[N]]:
        found = await fetch(keys)
        return [[convert(record) for record in found.get(key, [])] for key in keys]

    return SharedLoader(load_fn=load)
