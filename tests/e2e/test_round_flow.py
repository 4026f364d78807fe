"""End to end against a real server process with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time

import pyotp
import pytest
import websockets

from tests.conformance import check_message
from tests.support import Api


async def recv_until(ws, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        msg = check_message(json.loads(await asyncio.wait_for(ws.recv(), max(left, 0.01))))
        if pred(msg):
            return msg


@pytest.mark.parametrize("redis", ["single", "cluster"])
async def test_two_banks_bid_masked_quote_arrives_round_closes_and_exporter_accepts(
        server_factory, redis, request):
    """On one Redis and on a Redis Cluster (the session's 3 masters + 3 replicas: sharded
    pub/sub, no multiplexed bid connection, rate limits on the cluster)."""
    if redis == "cluster":
        request.getfixturevalue("redis_cluster").flushall()
    url = request.getfixturevalue("cluster_url") if redis == "cluster" else None
    srv = server_factory(redis=url, IGE_ROUND_DURATION="PT4S", IGE_BINDING_DURATION="PT6S")
    api = Api(srv.base_url)
    a, b, c = api.create_bank("AAA"), api.create_bank("BBB"), api.create_bank("CCC")
    ha, hb, hc = api.bank_token(a), api.bank_token(b), api.bank_token(c)
    # an exporter with two factors
    reg = api.http.post("/v1/exporter/register", json={
        "full_name": "Ayşe Yılmaz", "national_id": "10000000146", "email": "ayse@example.com",
        "mobile": "+905321234567", "password": "correct horse battery"})
    assert reg.status_code == 201, reg.text
    totp = pyotp.TOTP(pyotp.parse_uri(reg.json()["totp_uri"]).secret)
    assert api.http.post("/v1/exporter/activate", json={"email": "ayse@example.com",
                                                         "code": totp.now()}).status_code == 200
    rnd = api.open_round(exporter_user_id=reg.json()["user_id"])
    rid, app_id = rnd["round_id"], rnd["application_id"]

    async with websockets.connect(f"{srv.ws_url}?ticket={api.ticket(hb)}",
                                  subprotocols=["ige.v1.json"]) as wsb, \
            websockets.connect(f"{srv.ws_url}?ticket={api.ticket(hc)}",
                               subprotocols=["ige.v1.json"]) as wsc:
        await wsc.send(json.dumps({"op": "subscribe", "topic": f"round:{rid}"}))
        err = await recv_until(wsc, lambda m: m["type"] == "error")
        assert err["code"] == "offer_required"
        r = api.offer(hb, rid, annual_rate="40.00")
        assert r.status_code == 201, r.text
        await wsb.send(json.dumps({"op": "subscribe", "topic": f"round:{rid}"}))
        snap = await recv_until(wsb, lambda m: m["type"] == "snapshot")
        assert snap["offers"][0]["mine"] is True
        t0 = time.monotonic()
        ra = api.offer(ha, rid, annual_rate="39.00")
        assert ra.status_code == 201, ra.text
        q = await recv_until(wsb, lambda m: m["type"] == "quote")
        assert time.monotonic() - t0 < 1.0
        assert q["offer"]["mine"] is False and q["offer"]["rank"] == 1
        assert q["seq"] == snap["seq"] + 1
        # C has not bid: nothing arrives but the error; book refused
        assert api.http.get(f"/v1/bank/rounds/{rid}/book", headers=hc).status_code == 403
        closed = await recv_until(wsb, lambda m: m["type"] == "round_closed", timeout=10)
        assert closed["seq"] == q["seq"] + 1

    assert api.offer(ha, rid).status_code == 409
    # the exporter: results only after close, then accept within the binding window
    login = api.http.post("/v1/exporter/login", json={
        "email": "ayse@example.com", "password": "correct horse battery",
        "code": pyotp.TOTP(totp.secret).at(time.time() + 30)})
    assert login.status_code == 200, login.text
    he = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for _ in range(50):
        res = api.http.get(f"/v1/exporter/applications/{app_id}/results", headers=he)
        if res.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["reference_number"].startswith("IGE-")
    assert [o["bank_code"] for o in body["offers"]] == ["AAA", "BBB"]
    acc = api.http.post(f"/v1/exporter/applications/{app_id}/accept",
                        json={"offer_id": body["offers"][0]["offer_id"]}, headers=he)
    assert acc.status_code == 200, acc.text
    again = api.http.post(f"/v1/exporter/applications/{app_id}/accept",
                          json={"offer_id": body["offers"][1]["offer_id"]}, headers=he)
    assert again.status_code == 409 and again.json()["code"] == "already_accepted"
    result_a = api.http.get(f"/v1/bank/rounds/{rid}/result", headers=ha).json()
    assert result_a["my_offers"][0]["chosen"] is True
