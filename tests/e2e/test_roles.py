"""The roles apart, as production runs them: ``ige serve --role api``, ``--role stream`` and
``--role worker`` as separate processes on one Redis and one database. Each serves only its
part; a round runs end to end across them; the stream process listens only to the rounds its
clients follow; the worker persists and closes with no stream process (and no pub/sub) in its
own process."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync
import websockets
from websockets.exceptions import InvalidStatus

from auction.livebook import LiveBook
from persistence.db import migrate
from tests.conformance import check_message
from tests.support import Api, ServerProcess, sqlite_url


async def recv_until(ws: Any, pred: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        msg = check_message(json.loads(await asyncio.wait_for(ws.recv(), max(left, 0.01))))
        if pred(msg):
            return msg


def wait_for(what: str, cond: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := cond():
            return got
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def apart(server_factory: Any, tmp_path: Path) -> dict[str, ServerProcess]:
    db = sqlite_url(tmp_path)
    migrate(db)
    env = {"IGE_ROUND_DURATION": "PT4S", "IGE_BINDING_DURATION": "PT6S"}
    return {role: server_factory(database_url=db, role=role, **env)
            for role in ("api", "stream", "worker")}


def test_each_role_serves_only_its_part(apart: dict[str, ServerProcess]) -> None:
    api, stream, worker = apart["api"], apart["stream"], apart["worker"]
    for srv in (api, stream, worker):
        assert httpx.get(srv.base_url + "/healthz").status_code == 200
        assert httpx.get(srv.base_url + "/readyz").status_code == 200
    assert httpx.get(api.base_url + "/v1/openapi.json").status_code == 200
    for srv in (stream, worker):
        r = httpx.get(srv.base_url + "/v1/bank/rounds")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert httpx.post(srv.base_url + "/v1/stream/tickets").status_code == 404
    ticket = Api(api.base_url).ticket(Api(api.base_url).bank_token(
        Api(api.base_url).create_bank()))

    async def handshake(srv: ServerProcess) -> int:
        try:
            async with websockets.connect(f"{srv.ws_url}?ticket={ticket}",
                                          subprotocols=["ige.v1.json"]):
                return 101
        except InvalidStatus as e:
            return e.response.status_code

    # no WebSocket route: the handshake is refused (Starlette closes it before accepting)
    assert asyncio.run(handshake(api)) == 403
    assert asyncio.run(handshake(worker)) == 403
    assert asyncio.run(handshake(stream)) == 101  # the ticket was not spent by the refusals


def test_a_bad_role_is_refused_at_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support import ROOT

    out = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--role", "api,cook"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"IGE_DEMO": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "unknown role(s) cook" in out.stderr


async def test_a_round_runs_end_to_end_across_separate_role_processes(
        apart: dict[str, ServerProcess], redis_url: str, channel: str) -> None:
    api_srv, stream_srv = apart["api"], apart["stream"]
    api = Api(api_srv.base_url)
    a, b = api.create_bank(), api.create_bank()
    ha, hb = api.bank_token(a), api.bank_token(b)
    rid = api.open_round()["round_id"]
    other = api.open_round()["round_id"]
    assert api.offer(ha, rid, annual_rate="40.00").status_code == 201
    assert api.offer(ha, other, annual_rate="40.00").status_code == 201
    r = redis_sync.Redis.from_url(redis_url)

    def channels() -> set[str]:
        return {c.decode() for c in r.pubsub_channels(f"{channel}:*")}

    async with websockets.connect(f"{stream_srv.ws_url}?ticket={api.ticket(ha)}",
                                  subprotocols=["ige.v1.json"]) as ws:
        await ws.send(json.dumps({"op": "subscribe", "topic": f"round:{rid}"}))
        book = LiveBook()
        book.apply(await recv_until(ws, lambda m: m["type"] == "snapshot"))
        # the stream process listens to the pool and to this round, not to the other one
        assert any(c.endswith(f":ch:{rid}") for c in channels())
        assert not any(c.endswith(f":ch:{other}") for c in channels())
        assert f"{channel}:pool" in channels()
        # offers through the api process reach the client of the stream process
        assert api.offer(hb, rid, annual_rate="39.00").status_code == 201
        assert api.offer(hb, rid, annual_rate="41.00").status_code == 201
        for _ in range(2):
            book.apply(await recv_until(ws, lambda m: m["type"] == "quote"))
        assert [e["annual_rate"] for e in book.offers()] == ["39.00", "40.00", "41.00"]
        # the worker process closes the round; the stream process says so
        closed = await recv_until(ws, lambda m: m["type"] == "round_closed", timeout=15)
        book.apply(closed)
        assert book.closed
        await ws.send(json.dumps({"op": "unsubscribe", "topic": f"round:{rid}"}))
        await ws.send(json.dumps({"op": "ping"}))
        await recv_until(ws, lambda m: m["type"] == "pong")
        wait_for("the stream process to stop listening to the round",
                 lambda: not any(c.endswith(f":ch:{rid}") for c in channels()), 5)

    # the worker (no stream role in its process) persisted every version and wrote the close
    res = wait_for("the result", lambda: (x := httpx.get(
        f"{api_srv.base_url}/v1/bank/rounds/{rid}/result", headers=hb)).status_code == 200
        and x, 15)
    assert [o["final_rank"] for o in res.json()["my_offers"]] == [1, 3]
    db = Path(apart["api"].database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        seqs = [s for (s,) in conn.execute(
            "SELECT seq FROM offer_versions WHERE round_id = ? ORDER BY seq", (rid,))]
    assert seqs == [1, 2, 3]
