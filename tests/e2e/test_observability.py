"""Logs and metrics of real ``ige serve`` processes.

- The log: a full flow touching every kind of secret and personal data (a bank's client
  secret and token, an operator token, a stream ticket, an exporter's password, TOTP secret and
  codes, national id, e-mail, phone and name, a company's tax id and name, offer conditions),
  at IGE_LOG_LEVEL=INFO. Every line of the server's output is a JSON object with a timestamp
  and a level, every HTTP request made has exactly one ``request`` line (found by the request
  id the test sent), and none of those values appears anywhere.
- ``/metrics``: offers by outcome, acknowledgement latency, open WebSockets, push latency,
  close lag; and with ``--workers 2`` the counters of both processes summed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import websockets
from prometheus_client.parser import text_string_to_metric_families

from applications.simulated import STD_REQUEST
from tests.conformance import check_message, template_of
from tests.e2e.conftest import VALID_TCKN, register_exporter
from tests.support import ADMIN_TOKEN, OFFER_BODY, SECRET_KEY, Api, ServerProcess

JSON = "ige.v1.json"
OFFERS = "/v1/bank/rounds/{round_id}/offers"
CONSENT = {"text_version": "MUV-2026-01", "accepted": True}
PHONE = "+905321234567"  # register_exporter's mobile
FULL_NAME = "Ayşe Yılmaz"  # register_exporter's full name
TAX_ID = "1100000014"
COMPANY_NAME = "Anadolu Tekstil İhracat A.Ş."


# ----------------------------------------------------------------------------- helpers
class Tracked:
    """Every request of an ``Api``'s client gets an X-Request-Id of the test's own; what was
    sent and answered is kept by that id."""

    def __init__(self, api: Api) -> None:
        self.made: dict[str, dict[str, Any]] = {}
        self._n = itertools.count(1)
        hooks = api.http.event_hooks
        hooks["request"] = [*hooks.get("request", []), self._request]
        hooks["response"] = [*hooks.get("response", []), self._response]
        api.http.event_hooks = hooks

    def _request(self, request: httpx.Request) -> None:
        rid = f"e2e-{next(self._n)}"
        request.headers["X-Request-Id"] = rid
        self.made[rid] = {"method": request.method, "path": request.url.path}

    def _response(self, response: httpx.Response) -> None:
        rid = response.request.headers["X-Request-Id"]
        assert response.headers["x-request-id"] == rid  # returned on every answer
        self.made[rid]["status"] = response.status_code


async def recv_until(ws: Any, pred: Callable[[dict[str, Any]], bool],
                     timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = max(deadline - time.monotonic(), 0.01)
        msg = check_message(json.loads(await asyncio.wait_for(ws.recv(), left)))
        if pred(msg):
            return dict(msg)


async def subscribed(ws: Any, topic: str) -> None:
    await ws.send(json.dumps({"op": "subscribe", "topic": topic}))
    await ws.send(json.dumps({"op": "ping"}))
    msg = await recv_until(ws, lambda m: m["type"] in ("pong", "error"))
    assert msg["type"] == "pong", msg


def wait_for(pred: Callable[[], Any], timeout: float = 15.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError("timed out")


def lines_of(srv: ServerProcess) -> list[dict[str, Any]]:
    out = []
    for raw in srv.log_text().splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {raw[:300]}") from None
        assert isinstance(line, dict), raw
        out.append(line)
    return out


def scrape(base_url: str, fresh: bool = False) -> dict[tuple[str, frozenset[Any]], float]:
    """The samples of /metrics by (name, labels); ``fresh``: on a new connection."""
    headers = {"Connection": "close"} if fresh else {}
    r = httpx.get(base_url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(r.text) for s in f.samples}


def value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# ----------------------------------------------------------------------------- the log
async def test_every_line_is_json_each_request_has_its_line_and_no_secret_is_logged(
        server_factory: Callable[..., ServerProcess]):
    srv = server_factory(IGE_LOG_LEVEL="INFO", IGE_ROUND_DURATION="PT3S",
                         IGE_BINDING_DURATION="PT60S")
    api = Api(srv.base_url)
    tracked = Tracked(api)
    conditions = ["Koşul: teminat mektubu ZQX-7731 ile", "Şart: ihracat taahhüdü QVW-5512"]

    a, b = api.create_bank(), api.create_bank()
    ha, hb = api.bank_token(a), api.bank_token(b)
    started = time.time()
    exp = register_exporter(api)  # register, activate (a TOTP code), log in (the next one)
    ended = time.time()
    he = exp["headers"]
    company = api.http.post("/v1/exporter/companies", json={"tax_id": TAX_ID,
                                                             "consent": CONSENT}, headers=he)
    assert company.status_code == 201, company.text
    applied = api.http.post("/v1/exporter/applications", headers=he, json={
        **STD_REQUEST, "company_id": company.json()["company_id"], "export_commitment": True,
        "purpose": "hammadde alımı"})
    assert applied.status_code == 201 and applied.json()["status"] == "approved", applied.text
    app_id, rid = applied.json()["application_id"], applied.json()["round"]["round_id"]

    ticket = api.ticket(ha)
    async with websockets.connect(f"{srv.ws_url}?ticket={ticket}",
                                  subprotocols=[JSON]) as ws:  # type: ignore[list-item]
        # a bank follows a round's book from its first offer on
        assert api.offer(ha, rid, annual_rate="40.00", conditions=conditions[0]).status_code \
            == 201
        await subscribed(ws, f"round:{rid}")
        assert api.offer(hb, rid, annual_rate="39.00", conditions=conditions[1]).status_code \
            == 201
        assert api.offer(ha, rid, amount="not money", conditions=conditions[0]).status_code \
            == 422
        await recv_until(ws, lambda m: m["type"] == "quote" and m["offer"]["rank"] == 1
                         and not m["offer"]["mine"])

    results = wait_for(lambda: (r := api.http.get(
        f"/v1/exporter/applications/{app_id}/results", headers=he)).status_code == 200 and r)
    best = results.json()["offers"][0]["offer_id"]
    acc = api.http.post(f"/v1/exporter/applications/{app_id}/accept",
                        json={"offer_id": best}, headers=he)
    assert acc.status_code == 200, acc.text
    srv.stop()  # every line written, the shutdown's too

    lines = lines_of(srv)
    for line in lines:
        assert {"timestamp", "level", "event"} <= set(line), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"]), line
        assert line["level"] in ("debug", "info", "warning", "error", "critical"), line

    # one request line per request made, found by the id the test sent
    requests = [ln for ln in lines if ln["event"] == "request"]
    assert all(ln.get("request_id") for ln in requests)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for ln in requests:
        by_id.setdefault(ln["request_id"], []).append(ln)
    assert tracked.made
    for sent, made in tracked.made.items():
        got = by_id.get(sent, [])
        assert len(got) == 1, (sent, made, got)
        assert (got[0]["method"], got[0]["route"], got[0]["status"]) == (
            made["method"], template_of(made["path"]), made["status"])
    offers_made = sum(m["path"].endswith("/offers") for m in tracked.made.values())
    assert offers_made == 3
    assert sum(ln["route"] == OFFERS for ln in requests) == offers_made
    bank_lines = [ln for ln in requests if ln["route"] == OFFERS]
    assert {ln["principal_id"] for ln in bank_lines} == {a["bank_id"], b["bank_id"]}

    # the background actions, by ids and numbers
    events = {ln["event"]: ln for ln in lines}
    assert events["round_opened"]["round_id"] == rid
    assert events["round_closed"]["round_id"] == rid
    assert events["round_closed"]["reference_number"].startswith("IGE-")
    assert events["round_closed"]["close_lag_ms"] >= 0
    assert (events["offer_accepted"]["round_id"], events["offer_accepted"]["offer_id"]) == (
        rid, best)
    assert by_id[events["offer_accepted"]["request_id"]][0]["route"].endswith("/accept")
    assert events["persisted"]["events"] >= 1
    closed = events["stream_closed"]
    assert (closed["principal"], closed["principal_id"], closed["slow"]) == (
        "bank", a["bank_id"], False)
    assert closed["frames_sent"] >= 2

    # no secret, no personal data, in any form the line could carry it
    text = srv.log_text()
    secrets_used = [
        ADMIN_TOKEN, SECRET_KEY, a["client_secret"], b["client_secret"],
        ha["Authorization"].split()[1], hb["Authorization"].split()[1],
        he["Authorization"].split()[1], ticket, exp["password"], exp["totp"].secret,
        exp["email"], FULL_NAME, PHONE, VALID_TCKN, TAX_ID, COMPANY_NAME, *conditions,
        "hammadde alımı", a["name"], b["name"]]
    for s in secrets_used:
        for form in {s, json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1]}:
            assert form not in text, f"{s!r} is in the log"
    assert "ticket=" not in text  # no query string
    # the TOTP codes of the whole exchange (6 digits: looked for outside the timestamps)
    codes = {exp["totp"].at(t) for t in range(int(started) - 90, int(ended) + 91, 15)}
    digits = json.dumps([{k: v for k, v in ln.items() if k != "timestamp"} for ln in lines])
    for code in codes:
        assert not re.search(rf"(?<!\d){code}(?!\d)", digits), f"TOTP code {code} is logged"


# ----------------------------------------------------------------------------- metrics
async def test_metrics_report_offers_latencies_sockets_pushes_and_closes(
        server_factory: Callable[..., ServerProcess]):
    srv = server_factory(IGE_ROUND_DURATION="PT3S", IGE_BINDING_DURATION="PT60S")
    api = Api(srv.base_url)
    before = scrape(srv.base_url)
    bank, watcher = api.bank_token(api.create_bank()), api.bank_token(api.create_bank())
    rid = api.open_round()["round_id"]

    def delta(name: str, **labels: str) -> float:
        return value(scrape(srv.base_url), name, **labels) - value(before, name, **labels)

    # the watching bank bids first (it sees the book from then on), then follows it live
    assert api.offer(watcher, rid, annual_rate="45.00").status_code == 201
    async with websockets.connect(f"{srv.ws_url}?ticket={api.ticket(watcher)}",
                                  subprotocols=[JSON]) as ws:  # type: ignore[list-item]
        await subscribed(ws, f"round:{rid}")
        assert delta("ige_websockets_open") == 1
        offers = [api.offer(bank, rid, annual_rate=f"3{i}.00") for i in range(3)]
        assert [r.status_code for r in offers] == [201, 201, 201]
        assert api.offer(bank, rid, amount="abc").status_code == 422
        key = {**bank, "Idempotency-Key": "metrics-test-1"}
        first = api.offer(key, rid, annual_rate="35.00")
        again = api.offer(key, rid, annual_rate="35.00")
        assert (first.status_code, again.status_code) == (201, 201)
        assert first.json()["offer_id"] == again.json()["offer_id"]
        revised = api.http.put(f"/v1/bank/rounds/{rid}/offers/{offers[0].json()['offer_id']}",
                               json={**OFFER_BODY, "annual_rate": "29.00"}, headers=bank)
        assert revised.status_code == 200, revised.text
        for _ in range(5):  # 3 offers, the keyed one, the revision: one live quote each
            await recv_until(ws, lambda m: m["type"] == "quote")

        assert delta("ige_offers_total", op="submit", outcome="accepted") == 5
        assert delta("ige_offers_total", op="submit", outcome="replayed") == 1
        assert delta("ige_offers_total", op="submit", outcome="validation_failed") == 1
        assert delta("ige_offers_total", op="revise", outcome="accepted") == 1
        assert delta("ige_offer_ack_seconds_count", op="submit") == 7
        assert delta("ige_offer_ack_seconds_count", op="revise") == 1
        assert delta("ige_offer_ack_seconds_bucket", op="submit", le="+Inf") == 7
        assert delta("ige_push_seconds_count") == 5  # live quotes; the snapshot is not one
        assert 0 <= delta("ige_push_seconds_sum") < 5
        assert delta("ige_http_requests_total", route=OFFERS, method="POST",
                     status="201") == 6
        assert delta("ige_http_requests_total", route=OFFERS, method="POST",
                     status="422") == 1

        # the deadline: the round closes, an offer now is refused as round_closed
        await recv_until(ws, lambda m: m["type"] == "round_closed", timeout=15)
        late = api.offer(bank, rid, annual_rate="20.00")
        assert (late.status_code, late.json()["code"]) == (409, "round_closed")
        assert delta("ige_offers_total", op="submit", outcome="round_closed") == 1
        assert wait_for(lambda: delta("ige_close_lag_seconds_count") == 1)
        assert delta("ige_close_lag_seconds_sum") >= 0
        # the event loop's lateness is sampled all along (10 a second; 3 s went by)
        assert delta("ige_event_loop_lag_seconds_count") >= 10
        assert delta("ige_event_loop_lag_seconds_sum") >= 0
    assert wait_for(lambda: delta("ige_websockets_open") == 0, timeout=5)
    assert delta("ige_backend_errors_total", service="redis") == 0
    assert delta("ige_slow_clients_dropped_total") == 0


def test_two_worker_processes_report_their_sum(server_factory: Callable[..., ServerProcess]):
    srv = server_factory(workers=2, IGE_LOG_LEVEL="INFO", IGE_MAX_OFFERS_PER_BANK="200")
    api = Api(srv.base_url)
    bank = api.bank_token(api.create_bank())
    rid = api.open_round()["round_id"]

    def pids_serving(route: str) -> set[int]:
        return {ln["pid"] for ln in lines_of(srv)
                if ln["event"] == "request" and ln["route"] == route}

    # each offer on a new connection: the kernel hands connections to either process
    posted = 0
    while posted < 10 or (len(pids_serving(OFFERS)) < 2 and posted < 120):
        r = httpx.post(f"{srv.base_url}/v1/bank/rounds/{rid}/offers", timeout=10,
                       json={**OFFER_BODY, "annual_rate": f"{30 + posted % 10}.00"},
                       headers={**bank, "Connection": "close"})
        assert r.status_code == 201, r.text
        posted += 1
    assert len(pids_serving(OFFERS)) == 2, "one process served every offer"

    # whichever process answers /metrics, it reports every process's offers
    answers = 0
    while answers < 4 or (len(pids_serving("/metrics")) < 2 and answers < 60):
        samples = scrape(srv.base_url, fresh=True)
        assert value(samples, "ige_offers_total", op="submit", outcome="accepted") == posted
        assert value(samples, "ige_offer_ack_seconds_count", op="submit") == posted
        assert value(samples, "ige_http_requests_total", route=OFFERS, method="POST",
                     status="201") == posted
        answers += 1
    assert len(pids_serving("/metrics")) == 2


def test_the_suites_default_level_keeps_request_lines_out(
        server_factory: Callable[..., ServerProcess]):
    """IGE_LOG_LEVEL=WARNING (tests/support.py's default): no request lines, still JSON."""
    srv = server_factory()
    assert httpx.get(srv.base_url + "/healthz").status_code == 200
    srv.stop()
    assert not [ln for ln in lines_of(srv) if ln["event"] == "request"]
