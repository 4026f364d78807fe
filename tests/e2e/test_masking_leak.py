"""THE security test: no bank ever learns who the other bidders are.

Four banks with distinctive codes and names bid and revise in one round while every byte each
of them receives is recorded: every HTTP response (headers and body) of the bank-facing calls
and every WebSocket frame, over both ``ige.v1.json`` and ``ige.v1.msgpack``, during the round,
at the close and after it. No other bank's code, name, bank_id, client_id or offer_id may occur
anywhere in those bytes. Labels are drawn per round (two more rounds show they are not
linkable), and the exporter sees no offer data before the close.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conformance import check_message
from tests.support import OFFER_BODY, Api

# Codes and names that cannot occur by chance in ids, tokens, timestamps or numbers.
BANKS = {
    "ZEBRAQ": "Zebraquartz Yatırım Bankası",
    "KUMQUAT": "Kumquatlı Kalkınma Bankası",
    "VORTEXJ": "Vortexjoy Katılım Bankası",
    "PLUMBUSX": "Plumbusxy Ticaret Bankası",
}
JSON, MSGPACK = "ige.v1.json", "ige.v1.msgpack"
LABEL = re.compile(r"^Banka [A-Z]{1,2}$")


@dataclass
class BankView:
    """One bank: its credentials and every byte it was sent."""

    code: str
    name: str
    creds: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    http: list[bytes] = field(default_factory=list)
    frames: dict[str, list[str | bytes]] = field(default_factory=lambda: {JSON: [], MSGPACK: []})
    offer_ids: set[str] = field(default_factory=set)
    labels: dict[str, set[str]] = field(default_factory=dict)  # round_id -> own labels seen

    def record(self, r: httpx.Response) -> httpx.Response:
        self.http.append(b"%d\r\n" % r.status_code + b"".join(
            k + b": " + v + b"\r\n" for k, v in r.headers.raw) + b"\r\n" + r.content)
        return r

    def everything(self) -> bytes:
        ws = [f.encode() if isinstance(f, str) else f for fs in self.frames.values() for f in fs]
        return b"\n".join(self.http + ws)

    def messages(self, proto: str) -> list[dict[str, Any]]:
        return [check_message(json.loads(f) if isinstance(f, str)
                              else msgpack.unpackb(f, raw=False)) for f in self.frames[proto]]


@dataclass
class Scenario:
    banks: dict[str, BankView]
    rounds: list[str]  # the bidding round first, then two more for unlinkability
    exporter_before_close: list[httpx.Response]
    exporter_frames_before_close: list[dict[str, Any]]
    exporter_results: dict[str, Any]
    preferred_round: str  # the exporter preferred ZEBRAQ and KUMQUAT in it


def secret_needles(bank: BankView) -> list[bytes]:
    """What must never reach another bank (compared case-insensitively)."""
    words = [bank.code, bank.name, bank.name.split()[0], bank.creds["bank_id"],
             bank.creds["client_id"], *bank.offer_ids]
    return [w.encode().lower() for w in words]


async def reader(ws: ClientConnection, sink: list[str | bytes]) -> None:
    try:
        async for frame in ws:
            sink.append(frame)
    except websockets.ConnectionClosed:
        pass


async def wait_until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def scenario(module_server_factory: Any, new_exporter: Any) -> AsyncIterator[Scenario]:
    srv = module_server_factory(IGE_ROUND_DURATION="PT10S", IGE_BINDING_DURATION="PT60S",
                                IGE_HEARTBEAT_SECONDS="1")
    api = Api(srv.base_url)
    http = api.http
    banks: dict[str, BankView] = {}
    for code, name in BANKS.items():
        creds = api.create_bank(code, name)
        assert creds["client_id"] and creds["bank_id"]
        banks[code] = BankView(code, name, creds)
    exporter = new_exporter(api)
    r1 = api.open_round(exporter_user_id=exporter["user_id"])
    rid, app = r1["round_id"], r1["application_id"]
    later = [api.open_round()["round_id"] for _ in range(2)]

    # every bank: a token, then two live connections (one per wire format), subscribed to the
    # pool and to the round before its first offer
    conns: list[ClientConnection] = []
    tasks: list[asyncio.Task[None]] = []
    for b in banks.values():
        tok = b.record(http.post("/v1/oauth/token", data={
            "grant_type": "client_credentials", "client_id": b.creds["client_id"],
            "client_secret": b.creds["client_secret"]}))
        assert tok.status_code == 200, tok.text
        b.headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        for proto in (JSON, MSGPACK):
            ticket = b.record(http.post("/v1/stream/tickets", headers=b.headers)).json()["ticket"]
            ws = await websockets.connect(f"{srv.ws_url}?ticket={ticket}", subprotocols=[proto],
                                          max_queue=None)
            for topic in ("pool", f"round:{rid}"):
                cmd = {"op": "subscribe", "topic": topic}
                await ws.send(json.dumps(cmd) if proto == JSON else msgpack.packb(cmd))
            conns.append(ws)
            tasks.append(asyncio.create_task(reader(ws, b.frames[proto])))
    ews = await websockets.connect(
        f"{srv.ws_url}?ticket={api.ticket(exporter['headers'])}", subprotocols=[JSON],
        max_queue=None)
    await ews.send(json.dumps({"op": "subscribe", "topic": f"application:{app}"}))
    exporter_frames: list[str | bytes] = []
    tasks.append(asyncio.create_task(reader(ews, exporter_frames)))

    def offer(b: BankView, round_id: str, **terms: Any) -> dict[str, Any]:
        r = b.record(http.post(f"/v1/bank/rounds/{round_id}/offers",
                               json={**OFFER_BODY, **terms}, headers=b.headers))
        assert r.status_code == 201, r.text
        b.offer_ids.add(r.json()["offer_id"])
        b.labels.setdefault(round_id, set()).add(r.json()["label"])
        return dict(r.json())

    def revise(b: BankView, round_id: str, oid: str, **terms: Any) -> None:
        r = b.record(http.put(f"/v1/bank/rounds/{round_id}/offers/{oid}",
                              json={**OFFER_BODY, **terms}, headers=b.headers))
        assert r.status_code == 200, r.text
        b.labels.setdefault(round_id, set()).add(r.json()["label"])

    def look(b: BankView, round_id: str, state: str = "open") -> None:
        assert b.record(http.get("/v1/bank/rounds", params={"state": state},
                                 headers=b.headers)).status_code == 200
        assert b.record(http.get(f"/v1/bank/rounds/{round_id}", headers=b.headers)
                        ).status_code == 200
        book = b.record(http.get(f"/v1/bank/rounds/{round_id}/book", headers=b.headers))
        if book.status_code == 200:
            b.labels.setdefault(round_id, set()).add(book.json()["my_label"])

    # a round whose exporter preferred two of the banks, opened while all of them watch the
    # pool: each bank may learn that it is preferred, never which other bank is
    pref = api.open_round(assessment={"band": "B", "preferred_banks": ["ZEBRAQ", "KUMQUAT"]}
                          )["round_id"]
    for b in banks.values():
        look(b, pref)

    def opened_everywhere() -> bool:
        return all(any(m["type"] == "round_opened" and m["round"]["round_id"] == pref
                       for m in b.messages(p)) for b in banks.values() for p in (JSON, MSGPACK))

    await wait_until(opened_everywhere, 10, "round_opened did not reach every connection")

    # the bidding round: offers, second offers, revisions, looks at the pool/round/book
    zb, kq, vx, pb = (banks[c] for c in BANKS)
    for b in banks.values():
        look(b, rid)  # before its first offer: the book is 403, pool and round are visible
    first = {b.code: offer(b, rid, annual_rate=rate)
             for b, rate in zip(banks.values(), ("41.00", "40.50", "40.00", "39.50"),
                                strict=True)}
    second = offer(kq, rid, annual_rate="38.90", tenor_months=36, conditions="ikinci teklif")
    for step, (b, rate) in enumerate([(zb, "38.00"), (vx, "37.75"), (pb, "37.50"), (zb, "37.25"),
                                      (kq, "37.00"), (vx, "36.90"), (pb, "36.80")]):
        revise(b, rid, first[b.code]["offer_id"], annual_rate=rate, conditions=f"revizyon {step}")
        look(b, rid)
    revise(kq, rid, second["offer_id"], annual_rate="36.70")
    for b in banks.values():
        look(b, rid)

    # the exporter while the round is open
    exporter_before = [
        http.get(f"/v1/exporter/applications/{app}", headers=exporter["headers"]),
        http.get(f"/v1/exporter/applications/{app}/results", headers=exporter["headers"]),
    ]
    await asyncio.sleep(0.3)  # let the readers take in what has arrived so far
    exporter_frames_before = list(exporter_frames)

    # two more rounds, bid in the same order: their labels must not follow the first round's
    for later_rid in later:
        for b in banks.values():
            offer(b, later_rid)
            look(b, later_rid)

    # the close: every connection sees round_closed; results after it
    def closed_everywhere() -> bool:
        return all(any(m["type"] == "round_closed" for m in b.messages(p))
                   for b in banks.values() for p in (JSON, MSGPACK))

    await wait_until(closed_everywhere, 30, "round_closed did not reach every connection")
    for b in banks.values():
        res = b.record(http.get(f"/v1/bank/rounds/{rid}/result", headers=b.headers))
        for _ in range(100):
            if res.status_code == 200:
                break
            await asyncio.sleep(0.1)
            res = b.record(http.get(f"/v1/bank/rounds/{rid}/result", headers=b.headers))
        assert res.status_code == 200, res.text
        look(b, rid, state="closed")
    results = http.get(f"/v1/exporter/applications/{app}/results", headers=exporter["headers"])
    assert results.status_code == 200, results.text

    # after the close: a reconnect that replays the whole round, and a fresh snapshot
    for b in banks.values():
        for proto in (JSON, MSGPACK):
            ticket = b.record(http.post("/v1/stream/tickets", headers=b.headers)).json()["ticket"]
            sink = b.frames[proto]
            before = len(sink)
            async with websockets.connect(f"{srv.ws_url}?ticket={ticket}", subprotocols=[proto],
                                          max_queue=None) as ws:
                task = asyncio.create_task(reader(ws, sink))
                for cmd in ({"op": "subscribe", "topic": f"round:{rid}", "since_seq": 0},
                            {"op": "subscribe", "topic": f"round:{later[0]}"}):
                    await ws.send(json.dumps(cmd) if proto == JSON else msgpack.packb(cmd))

                def replayed(b: BankView = b, proto: str = proto, before: int = before) -> bool:
                    got = b.messages(proto)[before:]
                    return (any(m["type"] == "round_closed" for m in got)
                            and any(m["type"] == "snapshot" for m in got))

                await wait_until(replayed, 10, "the replay after the close did not arrive")
            await asyncio.gather(task, return_exceptions=True)

    for ws in conns + [ews]:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    yield Scenario(banks, [rid, *later], exporter_before,
                   [json.loads(f) for f in exporter_frames_before], results.json(), pref)
    http.close()


def test_no_bank_receives_another_banks_code_name_ids_or_offer_ids(scenario: Scenario) -> None:
    for viewer in scenario.banks.values():
        received = viewer.everything().lower()
        for other in scenario.banks.values():
            if other is viewer:
                continue
            for needle in secret_needles(other):
                assert needle not in received, (
                    f"{viewer.code} received {needle!r} of {other.code}")


def test_the_recording_holds_what_each_bank_was_shown(scenario: Scenario) -> None:
    """Guard against a vacuous pass: every bank's bytes really contain the others' offers
    (masked), its own identity, quotes, snapshots and the close, in both wire formats."""
    rid = scenario.rounds[0]
    for b in scenario.banks.values():
        received = b.everything().lower()
        assert b.code.lower().encode() in received  # the token response names the bank itself
        assert all(oid.encode() in received for oid in b.offer_ids)
        for proto in (JSON, MSGPACK):
            msgs = [m for m in b.messages(proto) if m.get("topic") == f"round:{rid}"]
            kinds = {m["type"] for m in msgs}
            assert {"error", "snapshot", "quote", "round_closed"} <= kinds, (b.code, proto, kinds)
            others = [m["offer"] for m in msgs if m["type"] == "quote" and not m["offer"]["mine"]]
            assert len(others) >= 8 and all(LABEL.match(o["label"]) for o in others)
        # both wire formats carried the same quotes and the same close (each connection's
        # snapshot may be taken at a different seq, so compare what both of them got)
        quotes = {p: {m["seq"]: m for m in b.messages(p) if m["type"] in ("quote", "round_closed")
                      and m["topic"] == f"round:{rid}"} for p in (JSON, MSGPACK)}
        common = quotes[JSON].keys() & quotes[MSGPACK].keys()
        assert len(common) >= 8 and max(common) == max(quotes[JSON]) == max(quotes[MSGPACK])
        assert all(quotes[JSON][s] == quotes[MSGPACK][s] for s in common)


def test_a_bank_keeps_one_label_per_round_and_labels_are_drawn_per_round(
        scenario: Scenario) -> None:
    banks = scenario.banks.values()
    mapping: list[dict[str, str]] = []
    for rid in scenario.rounds:
        per_bank = {}
        for b in banks:
            own = b.labels[rid]
            assert len(own) == 1, (b.code, rid, own)  # the same label throughout the round
            per_bank[b.code] = next(iter(own))
            assert LABEL.match(per_bank[b.code])
        assert len(set(per_bank.values())) == len(per_bank)  # distinct within a round
        mapping.append(per_bank)
    # the banks bid in the same order in every round, so fixed or sequential labels would
    # repeat; drawn at random per round they coincide for all four banks with p ~ 1e-11
    assert not all(m == mapping[0] for m in mapping[1:]), mapping
    # and in the bidding round every viewer sees a bank's offers under that bank's own label
    rid = scenario.rounds[0]
    for viewer in banks:
        for m in viewer.messages(JSON):
            if m.get("type") == "snapshot" and m["topic"] == f"round:{rid}":
                assert {o["label"] for o in m["offers"]} <= set(mapping[0].values())
                assert {o["label"] for o in m["offers"] if o["mine"]} == {mapping[0][viewer.code]}


def test_the_exporter_sees_no_offer_data_before_the_close(scenario: Scenario) -> None:
    application, results = scenario.exporter_before_close
    assert results.status_code == 409 and results.json()["code"] == "round_open"
    assert application.status_code == 200, application.text
    assert application.json()["round"]["state"] == "open"
    text = application.text.lower() + json.dumps(scenario.exporter_frames_before_close).lower()
    assert "offer" not in text
    assert all(m["type"] == "heartbeat" for m in scenario.exporter_frames_before_close)
    for b in scenario.banks.values():
        for needle in secret_needles(b):
            assert needle.decode() not in text
    # after the close the exporter does get named results
    assert {o["bank_code"] for o in scenario.exporter_results["offers"]} == set(BANKS)


def test_a_bank_sees_whether_it_is_preferred_and_never_which_other_bank_is(
        scenario: Scenario) -> None:
    rid = scenario.preferred_round
    for b in scenario.banks.values():
        want = [b.code] if b.code in ("ZEBRAQ", "KUMQUAT") else []
        for proto in (JSON, MSGPACK):
            opened = [m["round"] for m in b.messages(proto)
                      if m["type"] == "round_opened" and m["round"]["round_id"] == rid]
            assert [r["assessment"]["preferred_banks"] for r in opened] == [want], b.code
            assert opened[0]["assessment"]["band"] == "B"
        shown = [json.loads(h.split(b"\r\n\r\n", 1)[1]) for h in b.http
                 if rid.encode() in h and h.startswith(b"200")]
        rounds = [r for body in shown for r in ([body] if "round_id" in body
                                                else body.get("rounds", []))
                  if r.get("round_id") == rid]
        assert rounds and all(r["assessment"]["preferred_banks"] == want for r in rounds), b.code
