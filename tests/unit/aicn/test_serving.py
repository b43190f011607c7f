"""How the gateway is served (aicn/serving.py): its WebSocket keepalive pings are spread out."""

from __future__ import annotations

import asyncio

from uvicorn.server import ServerState

from aicn.serving import PING_SPREAD, SpreadPingWebSocketProtocol, server_config


async def _app(_scope: object, _receive: object, _send: object) -> None:
    raise AssertionError("not called")


async def test_connections_opened_together_are_pinged_apart() -> None:
    config = server_config(_app, ws_ping_interval=20.0)
    config.load()
    assert config.ws_protocol_class is SpreadPingWebSocketProtocol
    loop = asyncio.get_running_loop()
    delays = []
    for _ in range(200):  # 200 connections opened in the same instant
        protocol = SpreadPingWebSocketProtocol(config, ServerState(), {}, _loop=loop)
        protocol.schedule_ping()
        assert protocol.ping_timer is not None
        delays.append(protocol.ping_timer.when() - loop.time())
        protocol.ping_timer.cancel()
    # each within the last half of the interval, and spread over it: not 200 pings in one go every 20 s
    assert min(delays) >= 20.0 * PING_SPREAD - 0.5 and max(delays) <= 20.0
    assert max(delays) - min(delays) > 5.0
    assert len({round(delay, 2) for delay in delays}) > 100
