"""Several processes on one Redis Cluster (the session's 3 masters + 3 replicas): 2 ``api``,
2 ``stream`` and 2 ``worker`` processes (``ige serve --role ...``) and one database. Banks
connected to different stream processes see the same books in the same order; each round
closes exactly once, under a reference number of its own; every subscriber gets one
``round_closed`` per round."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from persistence.db import migrate
from tests.conformance import check_message
from tests.rediscluster import LoopbackCluster
from tests.support import OFFER_BODY, Api, ServerProcess, sqlite_url

ROUNDS = 3
OFFERS_PER_BANK = 3  # per round: one offer each, then revisions
CLOSE_WAIT_S = 30.0


#: what every bank is shown alike of a quote (its own offers show it more: ``mine``, its
#: ``offer_id``, its conditions): the entry, its rank, version and time
SHARED = ("ref", "label", "rank", "size", "seq", "version", "annual_rate", "apr", "updated_at")


def public(msg: dict[str, Any]) -> Any:
    if msg["type"] == "quote":
        offer = {k: msg["offer"].get(k) for k in SHARED}
        return ("quote", msg["topic"], msg["seq"], msg.get("size"),
                json.dumps(offer, sort_keys=True))
    return (msg["type"], msg["topic"], msg["seq"])


async def follow(url: str, ticket: str, rids: list[str], until_closed: set[str]
                 ) -> list[dict[str, Any]]:
    """Subscribe to the rounds; every message until each round said round_closed, then a
    ping's pong (anything sent twice before it is caught)."""
    got: list[dict[str, Any]] = []
    async with websockets.connect(f"{url}?ticket={ticket}",
                                  subprotocols=["ige.v1.json"]) as ws:
        for rid in rids:
            await ws.send(json.dumps({"op": "subscribe", "topic": f"round:{rid}"}))
        closed: set[str] = set()
        deadline = time.monotonic() + CLOSE_WAIT_S
        while closed != until_closed:
            left = deadline - time.monotonic()
            msg = check_message(json.loads(await asyncio.wait_for(ws.recv(), max(left, 0.01))))
            got.append(msg)
            if msg["type"] == "round_closed":
                closed.add(msg["topic"].removeprefix("round:"))
        await asyncio.sleep(1.0)  # a duplicate round_closed would have been sent by now
        await ws.send(json.dumps({"op": "ping"}))
        while (msg := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "pong":
            got.append(check_message(msg))
    return got


async def test_two_of_each_role_on_one_cluster_agree(
        server_factory: Any, redis_cluster: LoopbackCluster, cluster_url: str,
        tmp_path: Path) -> None:
    redis_cluster.flushall()
    db = sqlite_url(tmp_path)
    migrate(db)
    env = {"IGE_ROUND_DURATION": "PT4S", "IGE_BINDING_DURATION": "PT6S"}
    roles = [role for role in ("api", "stream", "worker") for _ in range(2)]
    started = await asyncio.gather(*(asyncio.to_thread(
        server_factory, database_url=db, redis=cluster_url, role=role, **env)
        for role in roles))  # six processes starting at once: a few seconds less
    procs: dict[str, list[ServerProcess]] = {}
    for role, proc in zip(roles, started, strict=True):
        procs.setdefault(role, []).append(proc)
    apis = [Api(p.base_url) for p in procs["api"]]
    streams = procs["stream"]
    bank_a, bank_b = apis[0].create_bank(), apis[1].create_bank()
    ha, hb = apis[0].bank_token(bank_a), apis[1].bank_token(bank_b)
    rids = [apis[i % 2].open_round()["round_id"] for i in range(ROUNDS)]
    # each bank bids on every round first (a desk may follow only a round it bid in) ...
    offer_ids: dict[tuple[str, str], str] = {}
    for rid in rids:
        for h, name, api in ((ha, "a", apis[0]), (hb, "b", apis[1])):
            r = api.offer(h, rid, annual_rate="40.00")
            assert r.status_code == 201, r.text
            offer_ids[(rid, name)] = r.json()["offer_id"]

    # ... then follows them all, A on one stream process and B on the other, while both revise
    # through both api processes
    async def revise() -> None:
        await asyncio.sleep(1.0)  # the subscriptions are made meanwhile
        for i in range(1, OFFERS_PER_BANK):
            for rid in rids:
                for h, name, api in ((ha, "a", apis[i % 2]), (hb, "b", apis[(i + 1) % 2])):
                    rate = f"{40 - i - (0.5 if name == 'a' else 0):.2f}"
                    r = await asyncio.to_thread(
                        api.http.put, f"/v1/bank/rounds/{rid}/offers/{offer_ids[(rid, name)]}",
                        json={**OFFER_BODY, "annual_rate": rate}, headers=h)
                    assert r.status_code == 200, r.text

    seen_a, seen_b, _ = await asyncio.gather(
        follow(streams[0].ws_url, apis[0].ticket(ha), rids, set(rids)),
        follow(streams[1].ws_url, apis[1].ticket(hb), rids, set(rids)),
        revise())

    final_seq = {}
    for rid in rids:
        both = []
        for seen in (seen_a, seen_b):
            mine = [m for m in seen if m.get("topic") == f"round:{rid}"]
            snap = mine[0]
            assert snap["type"] == "snapshot", mine
            events = [public(m) for m in mine[1:]]
            # every event after the snapshot, once, in order, ending with one round_closed
            assert [e[2] for e in events] == list(range(snap["seq"] + 1, events[-1][2] + 1))
            assert [e[0] for e in events].count("round_closed") == 1, events
            assert events[-1][0] == "round_closed"
            both.append((snap["seq"], events))
        (sa, ea), (sb, eb) = both
        start = max(sa, sb)  # from the later snapshot on, both saw the very same events
        assert [e for e in ea if e[2] > start] == [e for e in eb if e[2] > start], rid
        final_seq[rid] = ea[-1][2]
    # the revisions went through both api processes and reached both stream processes
    assert all(s == 2 * OFFERS_PER_BANK + 1 for s in final_seq.values()), final_seq

    # each round closed once, under a reference number of its own, and is accepted or not
    results = []
    for rid in rids:
        deadline = time.monotonic() + CLOSE_WAIT_S
        while (res := await asyncio.to_thread(
                httpx.get, f"{procs['api'][0].base_url}/v1/bank/rounds/{rid}/result",
                headers=ha)).status_code != 200:
            assert time.monotonic() < deadline, res.text
            await asyncio.sleep(0.2)
        results.append(res.json())
    with sqlite3.connect(Path(db.removeprefix("sqlite:///"))) as conn:
        closings = conn.execute(
            "SELECT round_id, reference_number FROM round_closings").fetchall()
    assert sorted(r for r, _ in closings) == sorted(rids)
    refs = [ref for _, ref in closings]
    assert len(set(refs)) == len(refs) == ROUNDS
