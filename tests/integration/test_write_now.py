"""The server's WebSocket protocol offers the app ``ige.write_now`` (gateway/serving.py): a
frame handed to it reaches a real client at once, framed as the ASGI send would frame it, and in
order with frames sent the ASGI way. The stream relies on it for its live quotes; a uvicorn
upgrade that changed the protocol's insides fails here, not in a latency figure."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn
import websockets

from gateway import serving
from gateway.serving import WRITE_NOW, BoundedHttp, BoundedWebSocket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_write_now_reaches_the_client_in_order_with_asgi_sends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGE_DEMO", "1")
    serving._settings.cache_clear()
    serving.max_connections.cache_clear()
    offered: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        write_now = scope["extensions"].get(WRITE_NOW)
        offered.append(write_now is not None)
        await send({"type": "websocket.send", "bytes": b"first, the ASGI way"})
        assert write_now(b"second, at once")
        assert write_now("third, text at once")
        await send({"type": "websocket.send", "text": "fourth, the ASGI way"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async def main() -> list[str | bytes]:
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               http=BoundedHttp, ws=BoundedWebSocket,
                                               lifespan="off", log_config=None))
        task = asyncio.create_task(server.serve())
        for _ in range(500):  # uvicorn says it started with a flag, not an event
            if server.started:
                break
            await asyncio.sleep(0.01)
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
                return [await asyncio.wait_for(ws.recv(), 5) for _ in range(4)]
        finally:
            server.should_exit = True
            await task

    try:
        got = asyncio.run(main())
    finally:
        serving._settings.cache_clear()
        serving.max_connections.cache_clear()
    assert offered == [True]
    assert got == [b"first, the ASGI way", b"second, at once", "third, text at once",
                   "fourth, the ASGI way"]
