"""End to end against real server processes, over HTTP and WebSocket: an exporter registers,
activates and logs in with two factors, matches a company in the (simulated) trade registry
with its consent, applies, is approved or rejected by the decision-support system; approved
requests open a round that banks bid on; at the close the exporter sees the results on its
``application:<id>`` topic and over HTTP, and accepts; the accepted guarantee then counts
towards the group limit. Sample tax ids: docs/sample-companies.md."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import websockets

from applications.simulated import STD_REQUEST
from tests.conformance import check_message
from tests.support import ADMIN_TOKEN, Api, ServerProcess

CONSENT = {"text_version": "MUV-2026-01", "accepted": True}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def fast(module_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """Rounds of 4 s (binding 30 s): the full flow fits in a test."""
    return module_server_factory(IGE_ROUND_DURATION="PT4S", IGE_BINDING_DURATION="PT30S")


@pytest.fixture(scope="module")
def slow(module_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """The same deployment (database, Redis) with rounds that stay open during a test."""
    return module_server_factory(IGE_ROUND_DURATION="PT10M", IGE_BINDING_DURATION="PT10M")


async def recv_until(ws: Any, pred: Callable[[dict[str, Any]], bool],
                     timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        msg = check_message(json.loads(await asyncio.wait_for(ws.recv(), max(left, 0.01))))
        if pred(msg):
            return msg


async def subscribed(ws: Any, topic: str) -> None:
    """Subscribe and wait until the server has processed it (commands run in order)."""
    await ws.send(json.dumps({"op": "subscribe", "topic": topic}))
    await ws.send(json.dumps({"op": "ping"}))
    await recv_until(ws, lambda m: m["type"] in ("pong", "error"))


def match(api: Api, headers: dict[str, str], tax_id: str) -> Any:
    return api.http.post("/v1/exporter/companies", json={"tax_id": tax_id, "consent": CONSENT},
                         headers=headers)


def apply(api: Api, headers: dict[str, str], company_id: str, **changes: Any) -> Any:
    body = {**STD_REQUEST, "company_id": company_id, "export_commitment": True,
            "purpose": "hammadde alımı", **changes}
    return api.http.post("/v1/exporter/applications", json=body, headers=headers)


def reasons(app: dict[str, Any]) -> list[str]:
    return [r["code"] for r in app["decision"]["reasons"] if r["kind"] != "note"]


async def test_register_match_apply_approved_banks_bid_close_results_accept(
        fast: ServerProcess, new_exporter: Callable[..., dict[str, Any]]):
    api = Api(fast.base_url)
    a, b = api.create_bank(), api.create_bank()
    ha, hb = api.bank_token(a), api.bank_token(b)
    exp = new_exporter(api)  # register -> activate (first code) -> log in (password + code)
    he = exp["headers"]

    pkg = api.http.get("/v1/exporter/guarantee-package", headers=he)
    assert pkg.status_code == 200 and pkg.json()["consent"]["text_version"] == "MUV-2026-01"
    m = match(api, he, "1100000014")
    assert m.status_code == 201, m.text
    company = m.json()
    assert (company["name"], company["is_sme"], company["consent"]["active"]) == \
        ("Anadolu Tekstil İhracat A.Ş.", True, True)
    again = match(api, he, "1100000014")  # the same consent again: nothing new recorded
    assert again.status_code == 201 and again.json()["consent"] == company["consent"]
    assert [c["tax_id"] for c in api.http.get("/v1/exporter/companies", headers=he)
            .json()["companies"]] == ["1100000014"]

    async with websockets.connect(f"{fast.ws_url}?ticket={api.ticket(ha)}",
                                  subprotocols=["ige.v1.json"]) as wsa:
        await subscribed(wsa, "pool")
        r = apply(api, he, company["company_id"], preferred_banks=[b["bank_code"]])
        assert r.status_code == 201, r.text
        app = r.json()
        assert app["status"] == "approved" and app["round"]["state"] == "open"
        assert (app["decision"]["score"], app["decision"]["band"]) == (93, "A")
        assert app["package_version"] == "KGF-HD-2026.1"
        app_id, rid = app["application_id"], app["round"]["round_id"]
        # announced on the pool with the assessment; the preference named bank B only, and
        # bank A learns that it is not preferred, never that B is
        opened = await recv_until(wsa, lambda m: m["type"] == "round_opened")
        assert opened["round"]["round_id"] == rid
        seen = opened["round"]
        assert seen["company"]["name"] == "Anadolu Tekstil İhracat A.Ş."
        assert seen["company"]["contact"]["email"] == exp["email"]
        assert seen["assessment"]["score"] == 93
        assert seen["assessment"]["risk"]["credit_band"] == "very_high"
        assert seen["assessment"]["preferred_banks"] == []

        async with websockets.connect(f"{fast.ws_url}?ticket={api.ticket(he)}",
                                      subprotocols=["ige.v1.json"]) as wse:
            await subscribed(wse, f"application:{app_id}")
            view = api.http.get(f"/v1/exporter/applications/{app_id}", headers=he).json()
            assert view["status"] == "approved" and "offers" not in json.dumps(view)
            early = api.http.get(f"/v1/exporter/applications/{app_id}/results", headers=he)
            assert early.status_code == 409 and early.json()["code"] == "round_open"
            # two banks bid over HTTP; A watches the masked book live
            assert api.offer(ha, rid, annual_rate="40.00").status_code == 201
            await subscribed(wsa, f"round:{rid}")
            ob = api.offer(hb, rid, annual_rate="39.00")
            assert ob.status_code == 201, ob.text
            q = await recv_until(wsa, lambda m: m["type"] == "quote")
            assert q["offer"]["mine"] is False and q["offer"]["rank"] == 1
            # the close: the exporter's topic carries the results
            closed = await recv_until(wse, lambda m: m["type"] == "round_closed", timeout=15)
    res = closed["results"]
    assert res["application_id"] == app_id and res["reference_number"].startswith("IGE-")
    assert [o["bank_code"] for o in res["offers"]] == [b["bank_code"], a["bank_code"]]

    http_res = api.http.get(f"/v1/exporter/applications/{app_id}/results", headers=he).json()
    assert http_res["offers"] == res["offers"]
    best = res["offers"][0]["offer_id"]
    acc = api.http.post(f"/v1/exporter/applications/{app_id}/accept", json={"offer_id": best},
                        headers=he)
    assert acc.status_code == 200, acc.text
    assert acc.json()["accepted_offer_id"] == best
    done = api.http.get(f"/v1/exporter/applications/{app_id}", headers=he).json()
    assert done["round"]["state"] == "accepted"

    # the accepted 5 M TL counts: a second 5 M fits (10 M), a third does not (15 M > 12 M)
    second = apply(api, he, company["company_id"])
    assert second.json()["status"] == "approved", second.text
    third = apply(api, he, company["company_id"])
    assert third.status_code == 201
    assert reasons(third.json()) == ["group_limit_exceeded"]
    assert third.json()["round"] is None
    # ... and so for a company that declares Anadolu Tekstil as related
    other = match(api, he, "1000011117").json()
    assert other["is_sme"] is True
    rel = apply(api, he, other["company_id"], loan_amount="3000000.00",
                guarantee_amount="3000000.00",
                related_companies=[{"tax_id": "1100000014", "relation": "sister",
                                    "share_pct": "40"}])
    assert reasons(rel.json()) == ["group_limit_exceeded"], rel.text
    assert rel.json()["request"]["related_companies"] == [
        {"tax_id": "1100000014", "relation": "sister", "share_pct": "40.00"}]

    mine = api.http.get("/v1/exporter/applications", headers=he).json()["applications"]
    assert [x["status"] for x in mine] == ["rejected", "rejected", "approved", "approved"]
    # everything is audited, and the operator can explain the decision later
    entries = api.http.get("/v1/admin/audit", headers=ADMIN).json()["entries"]
    did = {e["action"] for e in entries if e["actor"] in (f"exporter:{exp['user_id']}", "system")}
    assert {"exporter_registered", "exporter_activated", "company_matched", "consent_given",
            "application_decided", "application_round_opened", "round_opened",
            "offer_accepted", "guarantee_recorded", "round_closed"} <= did
    explained = api.http.get(f"/v1/admin/applications/{app_id}", headers=ADMIN).json()
    assert explained["inputs"]["risk"]["credit_score"] == 1750
    assert explained["package"]["group_limit_sme"] == 12_000_000_00


async def test_a_rejected_application_ends_with_reasons_and_re_application_is_blocked(
        slow: ServerProcess, new_exporter: Callable[..., dict[str, Any]]):
    api = Api(slow.base_url)
    he = new_exporter(api)["headers"]
    company = match(api, he, "1100000030").json()  # Ege Mobilya: rejected on score
    r = apply(api, he, company["company_id"])
    assert r.status_code == 201, r.text
    app = r.json()
    assert (app["status"], app["round"], app["decision"]["band"]) == ("rejected", None, "E")
    assert reasons(app) == ["score_below_pass_mark"]
    assert {f["name"] for f in app["decision"]["factors"]} >= {"credit_score", "leverage"}
    view = api.http.get(f"/v1/exporter/applications/{app['application_id']}", headers=he)
    assert view.status_code == 200 and view.json()["status"] == "rejected"
    assert api.http.get(f"/v1/exporter/applications/{app['application_id']}/results",
                        headers=he).status_code == 404
    async with websockets.connect(f"{slow.ws_url}?ticket={api.ticket(he)}",
                                  subprotocols=["ige.v1.json"]) as ws:
        await ws.send(json.dumps({"op": "subscribe",
                                  "topic": f"application:{app['application_id']}"}))
        err = await recv_until(ws, lambda m: m["type"] == "error")
        assert err["code"] == "not_found"  # a rejected application has no round to follow
    # another exporter cannot see it
    stranger = new_exporter(api)["headers"]
    assert api.http.get(f"/v1/exporter/applications/{app['application_id']}",
                        headers=stranger).status_code == 404
    # rejected twice within 3 months: the third request is refused until a quarter passed
    assert apply(api, he, company["company_id"]).json()["status"] == "rejected"
    blocked = apply(api, he, company["company_id"])
    assert blocked.status_code == 409 and blocked.json()["code"] == "reapplication_blocked"
    assert blocked.json()["not_before"].endswith("T21:00:00Z")  # 00:00 Istanbul, a quarter start


async def test_hard_rules_and_the_group_limit_through_a_registry_affiliate(
        slow: ServerProcess, new_exporter: Callable[..., dict[str, Any]]):
    api = Api(slow.base_url)
    he = new_exporter(api)["headers"]
    for tax_id, code, form in [
            ("1100000101", "group_limit_exceeded", {"loan_amount": "1000000.00",
                                                    "guarantee_amount": "1000000.00"}),
            ("1100000047", "non_performing_loan", {}),
            ("1100000063", "bankruptcy_in_group", {}),
            ("1100000089", "public_debt_above_limit", {}),
            ("1100000098", "unpaid_guarantee_commission", {})]:
        company = match(api, he, tax_id).json()
        r = apply(api, he, company["company_id"], **form)
        assert r.status_code == 201, r.text
        assert reasons(r.json()) == [code], (tax_id, r.text)
    # 500 000 still fits İzmir Deri's group (11.5 M TL at its related company)
    izmir = match(api, he, "1100000101").json()
    fits = apply(api, he, izmir["company_id"], loan_amount="500000.00",
                 guarantee_amount="500000.00")
    assert fits.json()["status"] == "approved", fits.text


async def test_company_matching_refusals_and_form_errors(
        slow: ServerProcess, new_exporter: Callable[..., dict[str, Any]]):
    api = Api(slow.base_url)
    he = new_exporter(api)["headers"]
    for tax_id, status, code in [("1100000127", 403, "not_signatory"),
                                 ("1100000135", 422, "company_inactive"),
                                 ("1100000142", 422, "company_not_found")]:
        r = match(api, he, tax_id)
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    bad = api.http.post("/v1/exporter/companies", json={
        "tax_id": "1234567891", "consent": {"text_version": "MUV-2019-01", "accepted": False}},
        headers=he)
    assert bad.status_code == 422
    assert {(e["field"], e["code"]) for e in bad.json()["errors"]} == {
        ("tax_id", "invalid"), ("consent.accepted", "must_accept"),
        ("consent.text_version", "outdated")}
    company = match(api, he, "1100000014").json()
    form = apply(api, he, company["company_id"], tenor_months=5, grace_months=5,
                 guarantee_amount="6000000.00", preferred_banks=["NOSUCHBANK"])
    assert form.status_code == 422
    assert {(e["field"], e["code"]) for e in form.json()["errors"]} == {
        ("tenor_months", "tenor_below_minimum"), ("grace_months", "grace_not_below_tenor"),
        ("guarantee_amount", "guarantee_above_loan")}
    unknown_bank = apply(api, he, company["company_id"], preferred_banks=["NOSUCHBANK"])
    assert unknown_bank.status_code == 422
    assert unknown_bank.json()["errors"][0]["code"] == "unknown_bank"
    assert apply(api, he, "cmp_not_mine").status_code == 404
    # a bank token is not an exporter: that object space does not exist for it
    bank = api.bank_token(api.create_bank())
    assert api.http.post("/v1/exporter/applications", json={}, headers=bank).status_code == 404


async def test_withdrawing_consent_stops_applications_and_hides_the_company_in_the_pool(
        slow: ServerProcess, new_exporter: Callable[..., dict[str, Any]]):
    api = Api(slow.base_url)
    he = new_exporter(api)["headers"]
    hb = api.bank_token(api.create_bank())
    company = match(api, he, "1100000022").json()  # Marmara: an approved non-SME
    sample = {"loan_type": "investment", "loan_amount": "60000000.00",
              "guarantee_amount": "48000000.00", "tenor_months": 60, "grace_months": 12}
    app = apply(api, he, company["company_id"], **sample).json()
    assert app["status"] == "approved", app
    rid = app["round"]["round_id"]
    assert api.http.get(f"/v1/bank/rounds/{rid}", headers=hb).json()["company"]["tax_id"] == \
        "1100000022"
    w = api.http.delete(f"/v1/exporter/companies/{company['company_id']}/consent", headers=he)
    assert w.status_code == 200, w.text
    assert (w.json()["consent"]["active"], w.json()["open_rounds_hidden"]) == (False, 1)
    seen = api.http.get(f"/v1/bank/rounds/{rid}", headers=hb).json()
    assert seen["company"]["name"] is None and seen["company"]["tax_id"] is None
    assert seen["assessment"]["consent_withdrawn"] is True
    refused = apply(api, he, company["company_id"], **sample)
    assert refused.status_code == 409 and refused.json()["code"] == "consent_withdrawn"
    assert match(api, he, "1100000022").status_code == 201  # consenting again lifts it
    assert apply(api, he, company["company_id"], **sample).json()["status"] == "approved"
