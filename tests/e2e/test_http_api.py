"""The HTTP half of the public contract (../shared/spec/API.md), against one real server.

One ``ige serve`` process serves the whole module (rounds last 6 s, offers stay binding 4 s
after the close), so tests that need a closed round share module fixtures that open their
rounds early and wait only once.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support import OFFER_BODY, ROOT, ROUND_BODY, SECRET_KEY, Api
from usecases.security import TokenSigner

PROBLEM_KEYS = {"type", "title", "status", "code", "detail"}
MONEY = re.compile(r"^-?\d+\.\d{2}$")
RATE = re.compile(r"^\d+\.\d{2,4}$")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
LABEL = re.compile(r"^Banka [A-Z]{1,2}$")
ROUND_KEYS = {"round_id", "state", "opened_at", "closes_at", "currency", "loan_type",
              "loan_amount", "guarantee_amount", "guarantee_rate", "tenor_months",
              "grace_months", "export_commitment", "company", "assessment", "has_my_offer"}
OFFER_TERMS = {"annual_rate", "amount", "tenor_months", "grace_months",
               "repayment_every_months", "upfront_fee", "assumes_export_commitment",
               "conditions"}
OFFER_KEYS = {"offer_id", "round_id", "version", "seq", "accepted_at", "rank", "apr"} | OFFER_TERMS
BOOK_KEYS = {"round_id", "seq", "server_time", "closes_at", "state", "offers"}
BOOK_ENTRY_KEYS = {"label", "rank", "mine", "annual_rate", "apr", "amount", "tenor_months",
                   "grace_months", "repayment_every_months", "upfront_fee",
                   "assumes_export_commitment", "version", "updated_at"}


# ----------------------------------------------------------------------------- helpers
def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with the given status and stable code; return its body."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == status and body["code"] == code, body
    assert all(isinstance(body[k], str) and body[k] for k in ("type", "title", "code", "detail"))
    return dict(body)


def field_errors(r: httpx.Response) -> dict[str, str]:
    """422 validation_failed -> {field: code}."""
    body = problem(r, 422, "validation_failed")
    assert isinstance(body.get("errors"), list) and body["errors"], body
    return {e["field"]: e["code"] for e in body["errors"]}


def wait_for(fetch: Any, until: Any, timeout: float = 20.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if until(got):
            return got
        assert time.monotonic() < deadline, f"condition not met in {timeout}s: {got}"
        time.sleep(every)


@dataclass
class World:
    api: Api
    banks: dict[str, dict[str, Any]]
    h: dict[str, dict[str, str]]
    lapsing: dict[str, Any] = field(default_factory=dict)
    database_url: str = ""

    def book(self, bank: str, rid: str) -> httpx.Response:
        return self.api.http.get(f"/v1/bank/rounds/{rid}/book", headers=self.h[bank])

    def put(self, bank: str, rid: str, oid: str, **terms: Any) -> httpx.Response:
        return self.api.http.put(f"/v1/bank/rounds/{rid}/offers/{oid}",
                                 json={**OFFER_BODY, **terms}, headers=self.h[bank])


@pytest.fixture(scope="module")
def world(module_server_factory: Any, new_exporter: Any) -> Any:
    srv = module_server_factory(IGE_ROUND_DURATION="PT6S", IGE_BINDING_DURATION="PT4S")
    api = Api(srv.base_url)
    banks = {c: api.create_bank(c, f"{c} Test Bankası A.Ş.") for c in ("HTA", "HTB", "HTC")}
    w = World(api, banks, {c: api.bank_token(b) for c, b in banks.items()},
              database_url=srv.database_url)
    # a round opened now, so that its binding window is long over when the test for it runs
    exp = new_exporter(api)
    rnd = api.open_round(exporter_user_id=exp["user_id"])
    offer = api.offer(w.h["HTA"], rnd["round_id"])
    assert offer.status_code == 201, offer.text
    w.lapsing = {"exporter": exp, "round": rnd, "offer": offer.json()}
    yield w
    api.http.close()


# ----------------------------------------------------------------------------- problems
def test_every_error_is_problem_json_with_type_title_status_code_detail(world: World) -> None:
    api, hA, hC = world.api, world.h["HTA"], world.h["HTC"]
    rid = api.open_round()["round_id"]
    assert api.offer(hA, rid).status_code == 201
    cases = [
        (api.http.get("/v1/bank/rounds"), 401, "unauthorized"),
        (api.http.get("/v1/nothing-here"), 404, "not_found"),
        (api.http.get("/v1/bank/rounds/rnd_doesnotexist", headers=hA), 404, "not_found"),
        (api.http.get("/v1/admin/rounds", headers=api.admin), 405, "method_not_allowed"),
        (api.http.post(f"/v1/bank/rounds/{rid}/offers", content=b"{not json",
                       headers={**hA, "content-type": "application/json"}), 400, "malformed_json"),
        (api.offer(hA, rid, annual_rate=38.5), 422, "validation_failed"),
        (api.http.get(f"/v1/bank/rounds/{rid}/book", headers=hC), 403, "offer_required"),
        (api.http.post("/v1/admin/banks", json={"bank_code": "HTA", "name": "again"},
                       headers=api.admin), 409, "conflict"),
        (api.http.post("/v1/oauth/token", data={"grant_type": "client_credentials",
                                                "client_id": "nobody", "client_secret": "x"}),
         401, "invalid_client"),
    ]
    for r, status, code in cases:
        body = problem(r, status, code)
        assert body["type"].endswith(code)


def test_401_without_token_with_a_bad_token_and_with_an_expired_token(world: World) -> None:
    api = world.api
    bank_id = world.banks["HTA"]["bank_id"]
    # correctly signed with the server's key, but an hour past its expiry
    expired = TokenSigner(SECRET_KEY).issue("bank", bank_id, 60, now=time.time() - 3600)
    valid = TokenSigner(SECRET_KEY).issue("bank", bank_id, 60)
    tampered = valid[:-2] + ("AA" if not valid.endswith("AA") else "BB")
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwdw=="},
                    {"Authorization": "Bearer not-a-token"},
                    {"Authorization": f"Bearer {tampered}"},
                    {"Authorization": f"Bearer {expired}"}):
        r = api.http.get("/v1/bank/rounds", headers=headers)
        problem(r, 401, "unauthorized")
        assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert api.http.get("/v1/bank/rounds", headers={"Authorization": f"Bearer {valid}"}
                        ).status_code == 200


def test_a_token_of_another_kind_gets_404_never_403(world: World, new_exporter: Any) -> None:
    api, hA = world.api, world.h["HTA"]
    exp = new_exporter(api)
    rnd = api.open_round(exporter_user_id=exp["user_id"])
    rid, app = rnd["round_id"], rnd["application_id"]
    bank_on_other = [
        api.http.get("/v1/admin/audit", headers=hA),
        api.http.get("/v1/admin/banks", headers=hA),
        api.http.post("/v1/admin/banks", json={"bank_code": "EVIL", "name": "x"}, headers=hA),
        api.http.post("/v1/admin/rounds", json=ROUND_BODY, headers=hA),
        api.http.get(f"/v1/admin/rounds/{rid}", headers=hA),
        api.http.get(f"/v1/exporter/applications/{app}", headers=hA),
        api.http.get(f"/v1/exporter/applications/{app}/results", headers=hA),
        api.http.post(f"/v1/exporter/applications/{app}/accept", json={"offer_id": "x"},
                      headers=hA),
    ]
    exporter_on_other = [
        api.http.get("/v1/bank/rounds", headers=exp["headers"]),
        api.http.get(f"/v1/bank/rounds/{rid}", headers=exp["headers"]),
        api.offer(exp["headers"], rid),
        api.http.get("/v1/admin/audit", headers=exp["headers"]),
    ]
    for r in bank_on_other + exporter_on_other:
        problem(r, 404, "not_found")
    # nothing was created by the refused calls
    banks = api.http.get("/v1/admin/banks", headers=api.admin).json()["banks"]
    assert "EVIL" not in {b["bank_code"] for b in banks}
    assert api.http.get(f"/v1/bank/rounds/{rid}", headers=hA).json()["my_offers"] == []


# ----------------------------------------------------------------------------- offer input
def test_malformed_offer_is_422_listing_every_offending_field(world: World) -> None:
    api, hA = world.api, world.h["HTA"]
    rid = api.open_round()["round_id"]  # a TRY round
    bad = {**OFFER_BODY, "annual_rate": 38.5, "amount": 5000000.0, "tenor_months": "24",
           "grace_months": 1.5, "upfront_fee": "1e3", "assumes_export_commitment": "yes",
           "currency": "USD", "colour": "red", "bank_name": "Anything"}
    errors = field_errors(api.http.post(f"/v1/bank/rounds/{rid}/offers", json=bad, headers=hA))
    assert errors == {"annual_rate": "invalid", "amount": "invalid", "tenor_months": "invalid",
                      "grace_months": "invalid", "upfront_fee": "invalid",
                      "assumes_export_commitment": "invalid", "currency": "currency_mismatch",
                      "colour": "unknown_field", "bank_name": "unknown_field"}
    # the round's rules, all broken at once
    rules = {**OFFER_BODY, "annual_rate": "0.00", "amount": "9000000.00", "tenor_months": 200,
             "grace_months": 13, "repayment_every_months": 5, "upfront_fee": "-1.00",
             "conditions": "x" * 2001}
    errors = field_errors(api.http.post(f"/v1/bank/rounds/{rid}/offers", json=rules, headers=hA))
    assert errors == {"annual_rate": "not_positive", "amount": "above_requested",
                      "tenor_months": "above_maximum", "grace_months": "above_maximum",
                      "repayment_every_months": "unsupported", "upfront_fee": "negative",
                      "conditions": "too_long"}
    # nothing at all
    errors = field_errors(api.http.post(f"/v1/bank/rounds/{rid}/offers", json={}, headers=hA))
    assert errors == {"annual_rate": "required", "amount": "required", "tenor_months": "required"}
    problem(api.http.post(f"/v1/bank/rounds/{rid}/offers", json=[OFFER_BODY], headers=hA),
            422, "validation_failed")


def test_malformed_offer_lists_parse_and_rule_errors_together(world: World) -> None:
    api, hA = world.api, world.h["HTA"]
    rid = api.open_round()["round_id"]
    body = {**OFFER_BODY, "annual_rate": 38.5, "tenor_months": 200}
    errors = field_errors(api.http.post(f"/v1/bank/rounds/{rid}/offers", json=body, headers=hA))
    assert errors.keys() == {"annual_rate", "tenor_months"}


def test_money_and_rates_must_be_decimal_strings(world: World) -> None:
    api, hA = world.api, world.h["HTA"]
    rid = api.open_round()["round_id"]
    for fieldname, value in [("amount", 1500000.0), ("amount", 1500000), ("amount", "1.5e6"),
                             ("amount", "100.001"), ("amount", "+100.00"), ("amount", " 100.00"),
                             ("annual_rate", 31.25), ("annual_rate", "31.25001"),
                             ("annual_rate", "NaN"), ("upfront_fee", 0.0)]:
        r = api.offer(hA, rid, **{fieldname: value})
        assert field_errors(r) == {fieldname: "invalid"}, (fieldname, value)
    ok = api.offer(hA, rid, amount="1500000", annual_rate="31.2575")
    assert ok.status_code == 201, ok.text
    assert ok.json()["amount"] == "1500000.00" and ok.json()["annual_rate"] == "31.2575"
    assert MONEY.match(ok.json()["upfront_fee"]) and RATE.match(ok.json()["apr"])


def test_refused_input_changes_nothing(world: World) -> None:
    api, hA, hB = world.api, world.h["HTA"], world.h["HTB"]
    rid = api.open_round()["round_id"]
    first = api.offer(hA, rid)
    assert first.status_code == 201
    oid = first.json()["offer_id"]
    before = world.book("HTA", rid).json()
    refused = [
        api.offer(hA, rid, annual_rate=1.0),
        api.offer(hA, rid, currency="EUR"),
        api.offer(hA, rid, tenor_months=3),
        world.put("HTA", rid, oid, amount="0.00"),
        world.put("HTA", rid, oid, extra_field=1),
        world.put("HTB", rid, oid, annual_rate="1.00"),  # not B's offer
        world.put("HTA", rid, "off_doesnotexist"),
        api.offer(hA, "rnd_doesnotexist"),
        api.offer(hB, rid, amount=-5),
    ]
    assert [r.status_code for r in refused] == [422, 422, 422, 422, 422, 404, 404, 404, 422]
    after = world.book("HTA", rid).json()
    assert after["seq"] == before["seq"] == 1
    assert after["offers"] == before["offers"]
    problem(world.book("HTB", rid), 403, "offer_required")  # B's refused offer made no label
    mine = api.http.get(f"/v1/bank/rounds/{rid}", headers=hA).json()["my_offers"]
    assert [(o["offer_id"], o["version"]) for o in mine] == [(oid, 1)]


def test_revising_another_banks_offer_is_404(world: World) -> None:
    api = world.api
    rid = api.open_round()["round_id"]
    a = api.offer(world.h["HTA"], rid).json()
    assert api.offer(world.h["HTB"], rid).status_code == 201
    problem(world.put("HTB", rid, a["offer_id"], annual_rate="1.00"), 404, "not_found")
    problem(world.put("HTC", rid, a["offer_id"], annual_rate="1.00"), 404, "not_found")
    entry = [o for o in world.book("HTA", rid).json()["offers"] if o["mine"]]
    assert [(o["offer_id"], o["version"], o["annual_rate"]) for o in entry] == [
        (a["offer_id"], 1, OFFER_BODY["annual_rate"])]


def test_put_revises_the_offer_with_version_plus_one(world: World) -> None:
    api, hA = world.api, world.h["HTA"]
    rid = api.open_round()["round_id"]
    v1 = api.offer(hA, rid, annual_rate="40.00")
    assert v1.status_code == 201, v1.text
    assert v1.json().keys() >= OFFER_KEYS and v1.json()["version"] == 1
    assert v1.json()["round_id"] == rid and TS.match(v1.json()["accepted_at"])
    oid = v1.json()["offer_id"]
    v2 = world.put("HTA", rid, oid, annual_rate="39.00", conditions="revised")
    assert v2.status_code == 200, v2.text
    assert (v2.json()["offer_id"], v2.json()["version"]) == (oid, 2)
    assert v2.json()["seq"] == v1.json()["seq"] + 1
    assert v2.json()["annual_rate"] == "39.00" and v2.json()["conditions"] == "revised"
    v3 = world.put("HTA", rid, oid, annual_rate="38.75")
    assert (v3.json()["version"], v3.json()["seq"]) == (3, 3)
    mine = api.http.get(f"/v1/bank/rounds/{rid}", headers=hA).json()["my_offers"]
    assert [(o["offer_id"], o["version"], o["annual_rate"]) for o in mine] == [(oid, 3, "38.75")]
    book = world.book("HTA", rid).json()
    assert book["seq"] == 3 and len(book["offers"]) == 1 and book["offers"][0]["version"] == 3


def test_a_sixth_live_offer_of_one_bank_in_a_round_is_409_offer_limit(world: World) -> None:
    """IGE_MAX_OFFERS_PER_BANK defaults to 5: one bank cannot grow a round's book (and every
    watcher's work) on its own. Revisions do not count; other banks have their own five."""
    api, hA = world.api, world.h["HTA"]
    rid = api.open_round()["round_id"]
    offers = [api.offer(hA, rid, annual_rate=f"{40 + i}.00") for i in range(5)]
    assert [r.status_code for r in offers] == [201] * 5
    body = problem(api.offer(hA, rid, annual_rate="30.00"), 409, "offer_limit")
    assert "5" in body["detail"]
    assert world.book("HTA", rid).json()["seq"] == 5  # nothing changed
    assert world.put("HTA", rid, offers[0].json()["offer_id"], annual_rate="39.00"
                     ).status_code == 200
    assert api.offer(world.h["HTB"], rid).status_code == 201
    problem(api.offer(hA, rid, annual_rate="30.00"), 409, "offer_limit")


# ----------------------------------------------------------------------------- idempotency
def test_same_idempotency_key_and_body_returns_the_first_response_and_creates_nothing(
        world: World) -> None:
    api, hA = world.api, world.h["HTA"]
    rid = api.open_round()["round_id"]
    url = f"/v1/bank/rounds/{rid}/offers"
    key = {"Idempotency-Key": "offer-key-1"}
    first = api.http.post(url, json=OFFER_BODY, headers={**hA, **key})
    assert first.status_code == 201, first.text
    assert first.json()["rank"] == 1
    # another bank's better offer: the first one is now second, yet the answer stays the first
    assert api.offer(world.h["HTB"], rid, annual_rate="20.00").status_code == 201
    again = api.http.post(url, json=OFFER_BODY, headers={**hA, **key})
    assert again.status_code == 201, again.text
    assert again.content == first.content  # the first response again, rank 1 included
    book = world.book("HTA", rid).json()
    assert book["seq"] == 2 and len(book["offers"]) == 2
    assert [o["mine"] for o in book["offers"]] == [False, True]  # it ranks second now
    # the same key with another body
    other = api.http.post(url, json={**OFFER_BODY, "annual_rate": "30.00"}, headers={**hA, **key})
    problem(other, 422, "idempotency_mismatch")
    assert world.book("HTA", rid).json()["seq"] == 2
    # a revision's replay: the first answer too, after the offer's rank changed again
    oid = first.json()["offer_id"]
    rkey = {"Idempotency-Key": "revise-key-1"}
    revised = api.http.put(f"{url}/{oid}", json={**OFFER_BODY, "annual_rate": "10.00"},
                           headers={**hA, **rkey})
    assert revised.status_code == 200 and revised.json()["rank"] == 1, revised.text
    assert world.put("HTA", rid, oid, annual_rate="45.00").status_code == 200  # now second
    replayed = api.http.put(f"{url}/{oid}", json={**OFFER_BODY, "annual_rate": "10.00"},
                            headers={**hA, **rkey})
    assert (replayed.status_code, replayed.content) == (200, revised.content)


def test_idempotency_keys_are_per_bank(world: World) -> None:
    api = world.api
    rid = api.open_round()["round_id"]
    url = f"/v1/bank/rounds/{rid}/offers"
    key = {"Idempotency-Key": "shared-key"}
    a = api.http.post(url, json=OFFER_BODY, headers={**world.h["HTA"], **key})
    b = api.http.post(url, json=OFFER_BODY, headers={**world.h["HTB"], **key})
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    assert a.json()["offer_id"] != b.json()["offer_id"]
    assert b.json()["seq"] == a.json()["seq"] + 1
    book = world.book("HTB", rid).json()
    assert len(book["offers"]) == 2 and sum(o["mine"] for o in book["offers"]) == 1


def test_admin_create_bank_honours_idempotency_key(world: World) -> None:
    api = world.api
    key = {**api.admin, "Idempotency-Key": "bank-key-1"}
    body = {"bank_code": "IDEMB", "name": "Idempotent Bank"}
    first = api.http.post("/v1/admin/banks", json=body, headers=key)
    again = api.http.post("/v1/admin/banks", json=body, headers=key)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    problem(api.http.post("/v1/admin/banks", json={**body, "name": "Other"}, headers=key),
            422, "idempotency_mismatch")
    banks = api.http.get("/v1/admin/banks", headers=api.admin).json()["banks"]
    assert [b["bank_code"] for b in banks].count("IDEMB") == 1


# ----------------------------------------------------------------------------- bank reads
def test_pool_is_paginated_and_flags_has_my_offer(world: World) -> None:
    api, hA, hB = world.api, world.h["HTA"], world.h["HTB"]
    mine = [api.open_round()["round_id"] for _ in range(3)]
    assert api.offer(hA, mine[1]).status_code == 201

    def pages(headers: dict[str, str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(100):
            params = {"state": "open", "limit": "2", **({"cursor": cursor} if cursor else {})}
            r = api.http.get("/v1/bank/rounds", params=params, headers=headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert set(body) >= {"rounds", "next_cursor"} and len(body["rounds"]) <= 2
            out += body["rounds"]
            cursor = body["next_cursor"]
            if cursor is None:
                return out
        raise AssertionError("pagination did not end")

    seen_a = pages(hA)
    ids = [r["round_id"] for r in seen_a]
    assert len(ids) == len(set(ids)), "a round appeared on two pages"
    assert set(mine) <= set(ids)
    by_id = {r["round_id"]: r for r in seen_a}
    for r in seen_a:
        assert r.keys() >= ROUND_KEYS and r["state"] == "open"
    assert [by_id[rid]["has_my_offer"] for rid in mine] == [False, True, False]
    assert {r["round_id"]: r["has_my_offer"] for r in pages(hB)}.get(mine[1]) is False
    sample = by_id[mine[0]]
    assert sample["loan_amount"] == ROUND_BODY["loan_amount"]
    assert sample["guarantee_rate"] == "80.00" and TS.match(sample["closes_at"])
    assert sample["company"]["tax_id"] == ROUND_BODY["company"]["tax_id"]
    assert sample["company"]["contact"]["email"] == ROUND_BODY["company"]["contact"]["email"]
    # a full page of one returns a cursor that continues after it
    one = api.http.get("/v1/bank/rounds", params={"limit": "1"}, headers=hA).json()
    nxt = api.http.get("/v1/bank/rounds", params={"limit": "1", "cursor": one["next_cursor"]},
                       headers=hA).json()
    assert one["rounds"][0]["round_id"] != nxt["rounds"][0]["round_id"]
    # bad query parameters
    for params, name in [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
                         ({"state": "bogus"}, "state"), ({"cursor": "@@@"}, "cursor")]:
        assert name in field_errors(api.http.get("/v1/bank/rounds", params=params, headers=hA))


def test_round_detail_carries_my_offers(world: World) -> None:
    api, hA, hB = world.api, world.h["HTA"], world.h["HTB"]
    rid = api.open_round()["round_id"]
    o1 = api.offer(hA, rid, annual_rate="41.00").json()
    o2 = api.offer(hA, rid, annual_rate="40.00", tenor_months=36).json()
    assert api.offer(hB, rid, annual_rate="39.00").status_code == 201
    a = api.http.get(f"/v1/bank/rounds/{rid}", headers=hA).json()
    assert a.keys() >= ROUND_KEYS and a["has_my_offer"] is True
    assert {o["offer_id"] for o in a["my_offers"]} == {o1["offer_id"], o2["offer_id"]}
    for o in a["my_offers"]:
        assert o.keys() >= OFFER_KEYS and o["rank"] in (2, 3)
    c = api.http.get(f"/v1/bank/rounds/{rid}", headers=world.h["HTC"]).json()
    assert c["has_my_offer"] is False and c["my_offers"] == []
    problem(api.http.get("/v1/bank/rounds/rnd_nope", headers=hA), 404, "not_found")


def test_book_needs_a_first_offer_then_shows_masked_labels_and_mine_flags(world: World) -> None:
    api = world.api
    rid = api.open_round()["round_id"]
    problem(world.book("HTB", rid), 403, "offer_required")
    assert api.offer(world.h["HTA"], rid, annual_rate="40.00").status_code == 201
    problem(world.book("HTB", rid), 403, "offer_required")
    assert api.offer(world.h["HTB"], rid, annual_rate="38.00").status_code == 201
    assert api.offer(world.h["HTB"], rid, annual_rate="42.00").status_code == 201
    assert api.offer(world.h["HTC"], rid, annual_rate="39.00").status_code == 201
    books = {b: world.book(b, rid) for b in ("HTA", "HTB", "HTC")}
    labels: dict[str, set[str]] = {}
    for bank, r in books.items():
        assert r.status_code == 200, r.text
        book = r.json()
        assert book.keys() >= BOOK_KEYS
        assert book["round_id"] == rid and book["state"] == "open" and book["seq"] == 4
        assert TS.match(book["server_time"]) and TS.match(book["closes_at"])
        assert [o["rank"] for o in book["offers"]] == [1, 2, 3, 4]
        assert [o["annual_rate"] for o in book["offers"]] == ["38.00", "39.00", "40.00", "42.00"]
        aprs = [float(o["apr"]) for o in book["offers"]]  # ordering check only
        assert aprs == sorted(aprs)
        for o in book["offers"]:
            assert o.keys() >= BOOK_ENTRY_KEYS
            assert LABEL.match(o["label"]) and MONEY.match(o["amount"])
            assert TS.match(o["updated_at"])
            assert ("offer_id" in o) == o["mine"]
        mine = {o["label"] for o in book["offers"] if o["mine"]}
        assert len(mine) == 1
        labels[bank] = mine
        assert sum(o["mine"] for o in book["offers"]) == {"HTA": 1, "HTB": 2, "HTC": 1}[bank]
    # each bank has one label, the same in every viewer's book; three banks, three labels
    assert len(set().union(*labels.values())) == 3
    seen = {tuple(o["label"] for o in r.json()["offers"]) for r in books.values()}
    assert len(seen) == 1


# ----------------------------------------------------------------------------- public
def test_calendar_deadline_counts_turkish_business_days(world: World) -> None:
    r = world.api.http.get("/v1/calendar/deadline", params={
        "start": "2026-04-20T09:00:00+03:00", "business_days": "7"})
    assert r.status_code == 200, r.text
    assert r.json()["deadline"] == "2026-04-30T14:30:00Z"
    r = world.api.http.get("/v1/calendar/deadline", params={
        "start": "2026-04-20T09:00:00+03:00", "business_days": "2"})
    assert r.json()["deadline"] == "2026-04-22T14:30:00Z"


def test_calendar_deadline_refuses_bad_parameters_listing_each(world: World) -> None:
    get = world.api.http.get
    assert set(field_errors(get("/v1/calendar/deadline"))) == {"start"}
    assert set(field_errors(get("/v1/calendar/deadline", params={
        "start": "2026-04-20T09:00:00"}))) == {"start"}  # no offset
    assert set(field_errors(get("/v1/calendar/deadline", params={
        "start": "2026-04-20T09:00:00Z", "business_days": "-1"}))) == {"business_days"}
    assert set(field_errors(get("/v1/calendar/deadline", params={
        "start": "yesterday", "business_days": "seven"}))) == {"start", "business_days"}


def test_health_readiness_and_documentation(world: World) -> None:
    get = world.api.http.get
    assert get("/healthz").status_code == 200
    ready = get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    spec = get("/v1/openapi.json")
    assert spec.status_code == 200 and spec.headers["content-type"].startswith("application/json")
    assert spec.json()["openapi"].startswith("3.")
    assert "/v1/bank/rounds/{round_id}/offers" in spec.json()["paths"]
    docs = get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "<html" in docs.text.lower()


# ----------------------------------------------------------------------------- operator
def test_admin_creates_banks_once_and_validates_them(world: World) -> None:
    api = world.api
    r = api.http.post("/v1/admin/banks", json={"bank_code": "NEWBK", "name": "Yeni Banka"},
                      headers=api.admin)
    assert r.status_code == 201, r.text
    assert {"bank_id", "client_id", "client_secret"} <= r.json().keys()
    assert api.bank_token(r.json())["Authorization"].startswith("Bearer ")
    problem(api.http.post("/v1/admin/banks", json={"bank_code": "NEWBK", "name": "Again"},
                          headers=api.admin), 409, "conflict")
    errors = field_errors(api.http.post("/v1/admin/banks", json={"bank_code": "bad code!"},
                                        headers=api.admin))
    assert errors == {"bank_code": "invalid", "name": "required"}


def test_admin_round_intake_lists_every_invalid_field(world: World) -> None:
    api = world.api
    body = {**ROUND_BODY, "company": {**ROUND_BODY["company"], "tax_id": "1234567891"},
            "guarantee_amount": "6000000.00", "tenor_months": 61}
    errors = field_errors(api.http.post("/v1/admin/rounds", json=body, headers=api.admin))
    assert errors == {"company.tax_id": "invalid", "guarantee_amount": "above_loan",
                      "tenor_months": "out_of_range"}
    errors = field_errors(api.http.post("/v1/admin/rounds", json={
        "company": {"name": "X"}, "loan_type": "mortgage", "currency": "GBP",
        "loan_amount": 100.0, "guarantee_amount": "10.00"}, headers=api.admin))
    assert {"company.tax_id", "company.is_sme", "loan_type", "currency", "loan_amount",
            "tenor_months"} <= errors.keys()
    errors = field_errors(api.http.post("/v1/admin/rounds", json={
        **ROUND_BODY, "loan_type": "investment", "tenor_months": 121, "grace_months": 37},
        headers=api.admin))
    assert errors == {"tenor_months": "out_of_range", "grace_months": "out_of_range"}


# ----------------------------------------------------------------------------- exporters
def test_exporter_registration_lists_every_invalid_field(world: World) -> None:
    api = world.api
    r = api.http.post("/v1/exporter/register", json={
        "full_name": "Ali Veli", "national_id": "12345678901", "email": "not-an-email",
        "mobile": "+905", "password": "short"})
    assert field_errors(r) == {"national_id": "invalid", "email": "invalid", "mobile": "invalid",
                               "password": "invalid"}
    assert set(field_errors(api.http.post("/v1/exporter/register", json={}))) == {
        "full_name", "national_id", "email", "mobile", "password"}
    ok = api.http.post("/v1/exporter/register", json={
        "full_name": "Ali Veli", "national_id": "10000000146", "email": "ali.veli@example.com",
        "mobile": "0532 123 45 67", "password": "long enough password"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["totp_uri"].startswith("otpauth://totp/") and ok.json()["user_id"]


def test_a_totp_code_is_never_accepted_twice(world: World, new_exporter: Any) -> None:
    api = world.api
    exp = new_exporter(api, activate=False)
    code, following = exp["totp"].now(), exp["totp"].at(time.time() + 30)
    assert api.http.post("/v1/exporter/activate", json={"email": exp["email"], "code": code}
                         ).status_code == 200
    again = api.http.post("/v1/exporter/login", json={
        "email": exp["email"], "password": exp["password"], "code": code})
    problem(again, 401, "totp_reused")  # the password was right: said, and not a failure
    fresh = api.http.post("/v1/exporter/login", json={
        "email": exp["email"], "password": exp["password"], "code": following})
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["access_token"] and fresh.json()["expires_in"] > 0
    replay = api.http.post("/v1/exporter/login", json={
        "email": exp["email"], "password": exp["password"], "code": following})
    problem(replay, 401, "totp_reused")
    wrong = api.http.post("/v1/exporter/login", json={
        "email": exp["email"], "password": "wrong password!", "code": following})
    problem(wrong, 401, "unauthorized")  # nothing said of the code with a wrong password
    account = api.http.get("/v1/admin/exporters", params={"email": exp["email"]},
                           headers=api.admin).json()["exporters"]
    # and not counted: a used code proves no authenticator (issue #10's lock rule)
    assert [(a["user_id"], a["failed_attempts"]) for a in account] == [(exp["user_id"], 0)]


def test_a_login_before_activation_leaves_the_code_for_the_activation(
        world: World, new_exporter: Any) -> None:
    """Once the login used the code up: activation with it in the same 30 s then failed."""
    api = world.api
    exp = new_exporter(api, activate=False)
    code = exp["totp"].now()
    problem(api.http.post("/v1/exporter/login", json={
        "email": exp["email"], "password": exp["password"], "code": code}), 403,
        "not_activated")
    r = api.http.post("/v1/exporter/activate", json={"email": exp["email"], "code": code})
    assert r.status_code == 200, r.text


def test_wrong_codes_never_lock_the_account_and_its_own_codes_do(world: World,
                                                                   new_exporter: Any) -> None:
    """Issue #10 finding 5: anyone could lock an exporter out with five wrong logins."""
    api = world.api
    exp = new_exporter(api, login=False)
    for _ in range(6):  # without the authenticator: never a lock, never "attempts left"
        r = api.http.post("/v1/exporter/login", json={
            "email": exp["email"], "password": "wrong password!", "code": "000000"})
        problem(r, 401, "unauthorized")
        assert "left" not in r.json()["detail"]
    r = api.http.post("/v1/exporter/login", json={  # the activation spent the current code
        "email": exp["email"], "password": exp["password"],
        "code": exp["totp"].at(time.time() + 30)})
    assert r.status_code == 200, r.text  # the owner is not locked out


def lock_out(world: World, user_id: str) -> None:
    """The account as five failures with the owner's own fresh codes leave it: over HTTP that
    takes five 30 s time steps (wrong codes never count); the rule itself is tested in
    tests/unit/test_usecases.py."""
    assert world.database_url.startswith("sqlite:///"), world.database_url
    db = sqlite3.connect(world.database_url.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE exporter_users SET failed_attempts = 5 WHERE id = ?", (user_id,))
    db.close()


def test_the_operator_unlocks_an_account_over_http_and_it_is_audited(
        world: World, new_exporter: Any) -> None:
    api = world.api
    exp = new_exporter(api, login=False)
    lock_out(world, exp["user_id"])
    found = api.http.get("/v1/admin/exporters", params={"email": exp["email"].upper()},
                         headers=api.admin)
    assert found.status_code == 200
    [account] = found.json()["exporters"]
    assert (account["user_id"], account["locked"], account["failed_attempts"]) == (
        exp["user_id"], True, 5)
    r = api.http.post(f"/v1/admin/exporters/{exp['user_id']}/unlock", headers=api.admin)
    assert r.status_code == 200, r.text
    assert (r.json()["locked"], r.json()["failed_attempts"]) == (False, 0)
    login = api.http.post("/v1/exporter/login", json={
        "email": exp["email"], "password": exp["password"],
        "code": exp["totp"].at(time.time() + 30)})
    assert login.status_code == 200, login.text
    entries = api.http.get("/v1/admin/audit", headers=api.admin).json()["entries"]
    assert [(e["actor"], e["detail"]) for e in entries if e["action"] == "exporter_unlocked"
            and e["detail"]["user_id"] == exp["user_id"]] == [
        ("admin", {"user_id": exp["user_id"], "failed_attempts": 5, "was_locked": True})]
    problem(api.http.post("/v1/admin/exporters/usr_nobody/unlock", headers=api.admin), 404,
            "not_found")
    problem(api.http.post(f"/v1/admin/exporters/{exp['user_id']}/unlock",
                          headers=world.h["HTA"]), 404, "not_found")
    none = api.http.get("/v1/admin/exporters", params={"email": "nobody@example.com"},
                        headers=api.admin)
    assert none.json() == {"exporters": []}


def test_the_operator_creates_a_banks_desk_users_over_http(world: World) -> None:
    """A person at a bank: created inactive with a one-time activation code (shown once, as
    the document says), listed under its bank; an e-mail once, an unknown bank 404, a bank
    token none of it."""
    api, bank = world.api, world.banks["HTA"]
    path = f"/v1/admin/banks/{bank['bank_id']}/users"
    body = {"email": "Desk.Trader@hta.example", "full_name": "Deniz Masa", "role": "trader"}
    made = api.http.post(path, json=body, headers=api.admin)
    assert made.status_code == 201, made.text
    m = made.json()
    assert (m["email"], m["role"], m["active"], m["bank_id"]) == \
        ("desk.trader@hta.example", "trader", False, bank["bank_id"])
    assert len(m["activation_code"]) >= 24 and m["activation_url"] == "/desk/activate"
    assert api.http.post(path, json=body, headers=api.admin).status_code == 409
    listed = api.http.get(path, headers=api.admin).json()["users"]
    assert [u["user_id"] for u in listed] == [m["user_id"]]
    assert "activation_code" not in listed[0]
    assert api.http.post("/v1/admin/banks/bnk_nobody/users", json=body,
                         headers=api.admin).status_code == 404
    bad = api.http.post(path, json={**body, "role": "operator"}, headers=api.admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "role"
    assert api.http.post(path, json=body, headers=world.h["HTA"]).status_code == 404
    trail: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = api.http.get("/v1/admin/audit", params={"after_id": after},
                            headers=api.admin).json()
        trail += page["entries"]
        after = page["next_after_id"]
    assert any(e["action"] == "desk_user_created" and e["detail"]["user_id"] == m["user_id"]
               and e["detail"]["role"] == "trader" for e in trail)


def test_the_operator_deactivates_a_desk_user_and_rotates_a_client_secret_over_http(
        world: World) -> None:
    api, bank, other = world.api, world.banks["HTA"], world.banks["HTB"]
    made = api.http.post(f"/v1/admin/banks/{bank['bank_id']}/users", headers=api.admin,
                         json={"email": "leaving@hta.example", "full_name": "Giden Kişi",
                               "role": "viewer"})
    assert made.status_code == 201, made.text
    user_id = made.json()["user_id"]
    assert made.json()["status"] == "pending"
    # another bank's path, an unknown user, a bank token: 404 alike, nothing changed
    for path, headers in ((f"/v1/admin/banks/{other['bank_id']}/users/{user_id}/deactivate",
                           api.admin),
                          (f"/v1/admin/banks/{bank['bank_id']}/users/dsk_nobody/deactivate",
                           api.admin),
                          (f"/v1/admin/banks/{bank['bank_id']}/users/{user_id}/deactivate",
                           world.h["HTA"])):
        r = api.http.post(path, headers=headers)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), (path, r.text)
    listed = api.http.get(f"/v1/admin/banks/{bank['bank_id']}/users", headers=api.admin)
    assert {u["user_id"]: u["status"] for u in listed.json()["users"]}[user_id] == "pending"
    # the code was lost: a new one, shown once; the old one is void
    renewed = api.http.post(f"/v1/admin/banks/{bank['bank_id']}/users/{user_id}"
                            "/activation-code", headers=api.admin)
    assert renewed.status_code == 201, renewed.text
    assert renewed.json()["activation_code"] != made.json()["activation_code"]
    assert renewed.json()["status"] == "pending"
    path = f"/v1/admin/banks/{bank['bank_id']}/users/{user_id}/deactivate"
    for _ in range(2):  # twice: the same answer
        done = api.http.post(path, headers=api.admin)
        assert done.status_code == 200, done.text
        assert (done.json()["user_id"], done.json()["status"], done.json()["active"]) == (
            user_id, "deactivated", False)
    late = api.http.post(f"/v1/admin/banks/{bank['bank_id']}/users/{user_id}/activation-code",
                         headers=api.admin)
    assert (late.status_code, late.json()["code"]) == (409, "conflict")

    creds = {"client_id": bank["client_id"], "client_secret": bank["client_secret"]}
    rotated = api.http.post(f"/v1/admin/banks/{bank['bank_id']}/client-secret",
                            headers=api.admin)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert (new["client_id"], new["bank_code"]) == (bank["client_id"], "HTA")
    assert new["client_secret"] != bank["client_secret"]
    token = {"grant_type": "client_credentials"}
    old = api.http.post("/v1/oauth/token", data={**token, **creds})
    assert (old.status_code, old.json()["code"]) == (401, "invalid_client")
    fresh = api.http.post("/v1/oauth/token", data={**token, "client_id": new["client_id"],
                                                  "client_secret": new["client_secret"]})
    assert fresh.status_code == 200, fresh.text
    bank["client_secret"] = new["client_secret"]  # for any later test of this module
    nobody = api.http.post("/v1/admin/banks/bnk_nobody/client-secret", headers=api.admin)
    assert nobody.status_code == 404
    assert api.http.post(f"/v1/admin/banks/{bank['bank_id']}/client-secret",
                         headers=world.h["HTA"]).status_code == 404
    trail = api.http.get("/v1/admin/audit", headers=api.admin).json()["entries"]
    assert sum(e["action"] == "client_secret_rotated" for e in trail) >= 1
    assert new["client_secret"] not in json.dumps(trail)


def test_the_operator_unlocks_an_account_with_the_cli(world: World, new_exporter: Any) -> None:
    api = world.api
    exp = new_exporter(api, login=False)
    lock_out(world, exp["user_id"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("IGE_")}
    env.update(DATABASE_URL=world.database_url, IGE_LOG_LEVEL="WARNING")
    for who in (exp["email"], exp["user_id"]):  # by e-mail, and again (safe) by user id
        run = subprocess.run([sys.executable, "-m", "gateway.cli", "admin", "unlock-exporter",
                              who], env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        shown = json.loads(run.stdout)
        assert (shown["user_id"], shown["locked"], shown["failed_attempts"]) == (
            exp["user_id"], False, 0)
    entries = api.http.get("/v1/admin/audit", headers=api.admin).json()["entries"]
    assert [(e["actor"], e["detail"]["failed_attempts"]) for e in entries
            if e["action"] == "exporter_unlocked"
            and e["detail"]["user_id"] == exp["user_id"]] == [("cli", 5), ("cli", 0)]
    login = api.http.post("/v1/exporter/login", json={
        "email": exp["email"], "password": exp["password"],
        "code": exp["totp"].at(time.time() + 30)})
    assert login.status_code == 200, login.text
    missing = subprocess.run([sys.executable, "-m", "gateway.cli", "admin", "unlock-exporter",
                              "nobody@example.com"], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 1 and "no exporter nobody@example.com" in missing.stderr


def test_a_login_with_a_null_or_missing_password_is_refused_whatever_the_code(
        world: World, new_exporter: Any) -> None:
    """A null password once skipped the password check: a valid one-time code was enough."""
    api = world.api
    exp = new_exporter(api, login=False)
    for step, body in enumerate([{"password": None}, {}]):
        code = exp["totp"].at(time.time() + 30 * (step + 1))
        problem(api.http.post("/v1/exporter/login", json={
            "email": exp["email"], "code": code, **body}), 401, "unauthorized")


def test_login_before_activation_is_403_not_activated(world: World, new_exporter: Any) -> None:
    api = world.api
    exp = new_exporter(api, activate=False)
    problem(api.http.post("/v1/exporter/login", json={
        "email": exp["email"], "password": exp["password"], "code": exp["totp"].now()}),
        403, "not_activated")


def test_an_exporter_sees_only_its_own_applications(world: World, new_exporter: Any) -> None:
    api = world.api
    owner, other = new_exporter(api), new_exporter(api)
    app = api.open_round(exporter_user_id=owner["user_id"])["application_id"]
    assert api.http.get(f"/v1/exporter/applications/{app}", headers=owner["headers"]
                        ).status_code == 200
    for path in ("", "/results"):
        problem(api.http.get(f"/v1/exporter/applications/{app}{path}", headers=other["headers"]),
                404, "not_found")
    problem(api.http.post(f"/v1/exporter/applications/{app}/accept", json={"offer_id": "x"},
                          headers=other["headers"]), 404, "not_found")


# ----------------------------------------------------------------------------- close and after
@pytest.fixture(scope="module")
def closed(world: World, new_exporter: Any) -> dict[str, Any]:
    """A round with offers from A (revised) and B, observed before and after its close; the
    exporter accepts the best offer as soon as the results are out (inside the window)."""
    api, hA, hB = world.api, world.h["HTA"], world.h["HTB"]
    exp = new_exporter(api)
    rnd = api.open_round(exporter_user_id=exp["user_id"])
    rid, app = rnd["round_id"], rnd["application_id"]
    a = api.offer(hA, rid, annual_rate="40.00").json()
    a2 = world.put("HTA", rid, a["offer_id"], annual_rate="36.00").json()
    b = api.offer(hB, rid, annual_rate="38.00").json()
    before = {
        "exporter_results": api.http.get(f"/v1/exporter/applications/{app}/results",
                                         headers=exp["headers"]),
        "application": api.http.get(f"/v1/exporter/applications/{app}", headers=exp["headers"]),
        "bank_result": api.http.get(f"/v1/bank/rounds/{rid}/result", headers=hA),
    }
    results = wait_for(lambda: api.http.get(f"/v1/exporter/applications/{app}/results",
                                            headers=exp["headers"]),
                       lambda r: r.status_code == 200)
    best, second = results.json()["offers"][0], results.json()["offers"][1]
    accepted = api.http.post(f"/v1/exporter/applications/{app}/accept",
                             json={"offer_id": best["offer_id"]}, headers=exp["headers"])
    again = api.http.post(f"/v1/exporter/applications/{app}/accept",
                          json={"offer_id": second["offer_id"]}, headers=exp["headers"])
    return {"exporter": exp, "round": rnd, "rid": rid, "app": app, "a": a2, "b": b,
            "before": before, "results": results.json(), "accepted": accepted, "again": again}


def test_results_are_409_round_open_until_the_close(closed: dict[str, Any]) -> None:
    problem(closed["before"]["exporter_results"], 409, "round_open")
    problem(closed["before"]["bank_result"], 409, "round_open")


def test_the_exporter_sees_no_offer_data_while_the_round_is_open(closed: dict[str, Any]) -> None:
    r = closed["before"]["application"]
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["application_id"] == closed["app"] and body["round"]["state"] == "open"
    assert "offers" not in body and "offer" not in r.text.lower()
    for o in (closed["a"], closed["b"]):
        assert o["offer_id"] not in r.text and o["annual_rate"] not in r.text


def test_an_offer_or_revision_after_the_deadline_is_409_round_closed(
        world: World, closed: dict[str, Any]) -> None:
    rid = closed["rid"]
    problem(world.api.offer(world.h["HTA"], rid), 409, "round_closed")
    # a bank that never bid in it: the finished round does not exist for it (issue #10)
    problem(world.api.offer(world.h["HTC"], rid), 404, "not_found")
    problem(world.put("HTA", rid, closed["a"]["offer_id"], annual_rate="30.00"), 409,
            "round_closed")


def test_the_exporter_gets_named_results_and_accepts_once_inside_the_binding_window(
        closed: dict[str, Any]) -> None:
    res = closed["results"]
    assert res["reference_number"].startswith("IGE-")
    assert TS.match(res["closed_at"]) and TS.match(res["binding_until"])
    assert [(o["bank_code"], o["rank"], o["annual_rate"]) for o in res["offers"]] == [
        ("HTA", 1, "36.00"), ("HTB", 2, "38.00")]
    assert res["offers"][0]["bank_name"] == "HTA Test Bankası A.Ş."
    assert res["offers"][0]["offer_id"] == closed["a"]["offer_id"]
    for o in res["offers"]:
        assert o.keys() >= OFFER_TERMS and RATE.match(o["apr"])
    assert closed["accepted"].status_code == 200, closed["accepted"].text
    assert closed["accepted"].json()["accepted_offer_id"] == closed["a"]["offer_id"]
    problem(closed["again"], 409, "already_accepted")


def test_a_bank_result_shows_its_binding_offers_and_the_choice(
        world: World, closed: dict[str, Any]) -> None:
    api, rid = world.api, closed["rid"]
    a = api.http.get(f"/v1/bank/rounds/{rid}/result", headers=world.h["HTA"]).json()
    b = api.http.get(f"/v1/bank/rounds/{rid}/result", headers=world.h["HTB"]).json()
    assert a["reference_number"] == b["reference_number"] == closed["results"]["reference_number"]
    assert [(o["offer_id"], o["version"], o["final_rank"], o["binding"], o["chosen"])
            for o in a["my_offers"]] == [(closed["a"]["offer_id"], 2, 1, True, True)]
    assert [(o["offer_id"], o["final_rank"], o["chosen"]) for o in b["my_offers"]] == [
        (closed["b"]["offer_id"], 2, False)]
    assert TS.match(a["binding_until"]) and TS.match(a["closed_at"])


def test_a_finished_round_a_bank_did_not_bid_in_is_404_everywhere(
        world: World, closed: dict[str, Any]) -> None:
    api, rid, hC = world.api, closed["rid"], world.h["HTC"]
    problem(api.http.get(f"/v1/bank/rounds/{rid}/result", headers=hC), 404, "not_found")
    problem(api.http.get(f"/v1/bank/rounds/{rid}", headers=hC), 404, "not_found")
    problem(api.http.get(f"/v1/bank/rounds/{rid}/book", headers=hC), 404, "not_found")
    problem(api.http.get("/v1/bank/rounds/rnd_nope/result", headers=hC), 404, "not_found")
    # the bidders still see the closed book
    book = world.book("HTA", rid)
    assert book.status_code == 200 and book.json()["state"] == "closed"


def test_audit_trail_records_offers_the_close_the_acceptance_and_bank_creation(
        world: World, closed: dict[str, Any]) -> None:
    api, rid = world.api, closed["rid"]
    entries = api.http.get("/v1/admin/audit", params={"round_id": rid}, headers=api.admin)
    assert entries.status_code == 200, entries.text
    rows = entries.json()["entries"]
    actions = [e["action"] for e in rows]
    for action in ("round_opened", "offer_submitted", "offer_revised", "round_closed",
                   "offer_accepted"):
        assert action in actions, actions
    assert actions.count("offer_submitted") == 2 and actions.count("offer_revised") == 1
    a_id, b_id = world.banks["HTA"]["bank_id"], world.banks["HTB"]["bank_id"]
    subs = {(e["actor"], e["detail"]["offer_id"]) for e in rows if e["action"] == "offer_submitted"}
    assert subs == {(f"bank:{a_id}", closed["a"]["offer_id"]),
                    (f"bank:{b_id}", closed["b"]["offer_id"])}
    assert all(TS.match(e["at"]) and e["round_id"] == rid for e in rows)
    everything = api.http.get("/v1/admin/audit", headers=api.admin).json()["entries"]
    created = {e["detail"].get("bank_code") for e in everything if e["action"] == "bank_created"}
    assert {"HTA", "HTB", "HTC"} <= created


def test_audit_details_are_in_the_contracts_shapes(world: World, closed: dict[str, Any]
                                                   ) -> None:
    """Once epoch milliseconds, kuruş and the book's keys (r, a, apr_e4): now what the rest
    of the API says, decimal strings, UTC timestamps and field names."""
    api, rid = world.api, closed["rid"]
    rows = api.http.get("/v1/admin/audit", params={"round_id": rid},
                        headers=api.admin).json()["entries"]
    by = {e["action"]: e["detail"] for e in rows}
    opened, sub, closing = by["round_opened"], by["offer_submitted"], by["round_closed"]
    assert TS.match(opened["closes_at"]) and MONEY.match(opened["loan_amount"])
    assert opened["loan_amount"] == ROUND_BODY["loan_amount"]
    assert sub.keys() >= OFFER_TERMS | {"offer_id", "version", "seq", "apr"}
    assert RATE.match(sub["annual_rate"]) and MONEY.match(sub["amount"])
    assert re.fullmatch(r"\d+\.\d{4}", sub["apr"])
    assert TS.match(closing["binding_until"]) and closing["reference_number"].startswith("IGE-")
    everything = api.http.get("/v1/admin/audit", headers=api.admin).json()["entries"]
    for e in everything:
        for k, v in e["detail"].items():
            assert len(k) > 1 and not k.endswith("_e4"), (e["action"], k)
            if k.endswith(("_at", "_until")) or k in ("amount", "loan_amount", "upfront_fee",
                                                       "guarantee_amount", "guarantee_tl"):
                assert isinstance(v, str), (e["action"], k, v)


def test_accepting_after_the_binding_window_is_409_binding_expired(world: World) -> None:
    api, lap = world.api, world.lapsing
    app, headers = lap["round"]["application_id"], lap["exporter"]["headers"]
    res = wait_for(lambda: api.http.get(f"/v1/exporter/applications/{app}/results",
                                        headers=headers),
                   lambda r: r.status_code == 200).json()
    until = datetime.fromisoformat(res["binding_until"].replace("Z", "+00:00")).timestamp()
    left = until - time.time()  # the server and the tests share this machine's clock
    time.sleep(max(0.0, left) + 0.5)
    r = api.http.post(f"/v1/exporter/applications/{app}/accept",
                      json={"offer_id": lap["offer"]["offer_id"]}, headers=headers)
    problem(r, 409, "binding_expired")


def test_the_admin_token_creates_operators_and_the_audit_is_filtered_over_http(
        world: World) -> None:
    """An operator (a console login): created inactive with a one-time activation code, an
    e-mail once, a bank token none of it; the audit trail by actor, action and time, a bad
    filter 422 naming it."""
    api = world.api
    body = {"email": "Olcay.Op@kgf.example", "full_name": "Olcay Operatör"}
    made = api.http.post("/v1/admin/operators", json=body, headers=api.admin)
    assert made.status_code == 201, made.text
    m = made.json()
    assert (m["email"], m["active"], m["activation_url"]) == \
        ("olcay.op@kgf.example", False, "/operator/activate")
    assert len(m["activation_code"]) >= 24
    assert api.http.post("/v1/admin/operators", json=body,
                         headers=api.admin).status_code == 409
    bad = api.http.post("/v1/admin/operators", json={**body, "email": "not an address"},
                        headers=api.admin)
    assert bad.status_code == 422 and set(field_errors(bad)) == {"email"}
    problem(api.http.post("/v1/admin/operators", json={**body, "email": "x@kgf.example"},
                          headers=world.h["HTA"]), 404, "not_found")
    got = api.http.get("/v1/admin/audit", params={"action": "operator_created"},
                       headers=api.admin).json()["entries"]
    assert [(e["actor"], e["detail"]["user_id"]) for e in got] == [("admin", m["user_id"])]
    at = got[0]["at"]
    assert api.http.get("/v1/admin/audit", params={
        "action": "operator_created", "actor": "admin", "since": at},
        headers=api.admin).json()["entries"] == got
    assert api.http.get("/v1/admin/audit", params={"action": "operator_created",
                                                   "until": at},
                        headers=api.admin).json()["entries"] == []
    for params, name in (({"since": "yesterday"}, "since"), ({"actor": "BANK:x"}, "actor"),
                         ({"action": "Round Opened"}, "action")):
        r = api.http.get("/v1/admin/audit", params=params, headers=api.admin)
        assert r.status_code == 422 and set(field_errors(r)) == {name}, r.text
