"""Leaky buckets kept in Redis, so that every gateway replica draws on the same bucket per caller.

One Lua script per operation: it reads the bucket, refills it by the time elapsed on Redis's
own clock (the replicas' clocks never enter), takes the cost when it fits and writes the bucket
back, atomically. An idle bucket expires once it would be full again: forgetting it is exact.
"""

from __future__ import annotations

from typing import Any

TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'points', 'at')
local points = tonumber(bucket[1]) or capacity
local at = tonumber(bucket[2]) or now
local level = math.min(capacity, points + math.max(0, now - at) * rate)
local allowed = 0
if cost <= level then
  allowed = 1
  if cost > 0 then
    level = level - cost
    redis.call('HSET', KEYS[1], 'points', tostring(level), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) / rate * 1000) + 1000)
  end
end
return {allowed, tostring(level)}
"""


class RedisBuckets:
    """``take(key, cost)``: (allowed, points left); ``cost`` 0 only looks."""

    def __init__(self, url: str, namespace: str, capacity: int, restore_rate: float) -> None:
        self.url = url
        self.prefix = f"aicn:throttle:{namespace}:"
        self.capacity = capacity
        self.restore_rate = restore_rate
        self._redis: Any = None
        self._take: Any = None

    async def start(self) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(self.url, decode_responses=True)
        self._take = self._redis.register_script(TAKE)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def take(self, key: str, cost: int) -> tuple[bool, float]:
        allowed, level = await self._take(keys=[self.prefix + key], args=[self.capacity, self.restore_rate, cost])
        return bool(int(allowed)), float(level)
