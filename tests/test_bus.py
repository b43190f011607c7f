"""The event bus over real Redis: news published by one gateway reaches another's subscribers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from store.bus import RedisBus
from tests.conftest import Gateway, require_service
from tests.jobs_helpers import PROGRESS_SCRIPT, collect_events, python_job, submit

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """The shared Redis, with channel names of this test's own: pub/sub ignores Redis's
    database numbers, and other suites on this machine publish job:1 news too."""
    require_service("127.0.0.1", 6379, "Redis")
    monkeypatch.setattr(RedisBus, "PREFIX", f"aicn-test-{uuid.uuid4().hex[:12]}:")
    return REDIS_URL


async def test_a_message_crosses_from_one_bus_to_another(redis_url: str) -> None:
    publisher, listener = RedisBus(redis_url), RedisBus(redis_url)
    await publisher.start()
    await listener.start()
    channel = f"job:{uuid.uuid4().hex}"
    try:
        async with listener.subscribe(channel) as subscription:
            await publisher.publish(channel, {"seq": 1, "kind": "STATE"})
            await publisher.publish("elsewhere", {"seq": 99})
            assert await subscription.get(timeout=5) == {"seq": 1, "kind": "STATE"}
            assert await subscription.get(timeout=0.3) is None
    finally:
        await publisher.close()
        await listener.close()


async def test_job_events_stream_through_redis(gateway_factory: Any, redis_url: str) -> None:
    gateway: Gateway = await gateway_factory(bus_url=redis_url)
    job = await submit(gateway.client, python_job(PROGRESS_SCRIPT))
    events = await collect_events(gateway.client, job["id"])
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert [event["state"] for event in events if event["kind"] == "STATE"][-1] == "SUCCEEDED"
    assert sum(1 for event in events if event["kind"] == "PROGRESS") == 3
