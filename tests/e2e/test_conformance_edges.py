"""Edges of the HTTP contract a schema-driven fuzzer (schemathesis) found, against one real
server: each of these once answered something the document does not allow.

Every response here also goes through tests/conformance.py (formats included), as in every
end-to-end test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Api


@pytest.fixture(scope="module")
def api(module_server_factory: Any) -> Any:
    srv = module_server_factory()
    a = Api(srv.base_url)
    yield a
    a.http.close()


@pytest.fixture(scope="module")
def bank(api: Api) -> dict[str, str]:
    return api.bank_token(api.create_bank())


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("TRACE", "/v1/oauth/token", "POST"),
    ("DELETE", "/v1/bank/rounds", "GET, HEAD"),
    # one path, two routes (GET and POST): the header names both
    ("DELETE", "/v1/admin/banks", "GET, HEAD, POST"),
    ("PATCH", "/v1/bank/rounds/rnd_x/offers", "POST"),
    ("GET", "/v1/bank/rounds/rnd_x/offers/off_x", "PUT"),
])
def test_a_405_names_the_methods_the_path_allows(api: Api, method: str, path: str,
                                                 allow: str) -> None:
    r = api.http.request(method, path, headers=api.admin)
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert r.headers["allow"] == allow


@pytest.mark.parametrize(("sent", "instance"), [
    ("/v1/bank/rounds/%C3%94", "/v1/bank/rounds/%C3%94"),
    ("/v1/bank/rounds/a%20b%25c", "/v1/bank/rounds/a%20b%25c"),
    ("/v1/bank/rounds/%E3%8B%8B/offers", "/v1/bank/rounds/%E3%8B%8B/offers"),
    ("/v1/nothing/%F0%9F%98%80", "/v1/nothing/%F0%9F%98%80"),
])
def test_a_problem_instance_is_the_path_percent_encoded(api: Api, bank: dict[str, str],
                                                        sent: str, instance: str) -> None:
    """Once the decoded path ("/v1/bank/rounds/Ô"), which is no uri-reference."""
    method = "POST" if sent.endswith("/offers") else "GET"
    r = api.http.request(method, api.base + sent, headers=bank, json={})
    assert r.status_code in (404, 422)
    assert r.json()["instance"] == instance


@pytest.mark.parametrize("after_id", ["2147483648", "9223372036854775808",
                                      "4565062149024553038249984"])
def test_an_audit_cursor_beyond_the_id_column_is_422_not_500(api: Api, after_id: str) -> None:
    r = api.http.get("/v1/admin/audit", params={"after_id": after_id}, headers=api.admin)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "after_id"


def test_the_largest_audit_cursor_is_an_empty_page(api: Api) -> None:
    r = api.http.get("/v1/admin/audit", params={"after_id": "2147483647"}, headers=api.admin)
    assert r.status_code == 200 and r.json()["entries"] == []


@pytest.mark.parametrize("start", ["0193-08-23T05:54:51Z", "1999-12-31T23:59:59Z",
                                   "2099-06-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_a_deadline_outside_the_calendars_years_is_422(api: Api, start: str) -> None:
    """Once 200 with "193-08-23T05:54:51Z", which breaks the Timestamp pattern."""
    r = api.http.get("/v1/calendar/deadline", params={"start": start, "business_days": "3"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "start", "code": "out_of_range", "message": (
        "the calendar's years: a start in 2000..2098, so that the deadline falls in "
        "2000..2100")}]


def test_the_last_start_year_still_has_a_deadline_in_the_calendar(api: Api) -> None:
    r = api.http.get("/v1/calendar/deadline",
                     params={"start": "2098-12-31T23:59:59Z", "business_days": "366"})
    assert r.status_code == 200 and r.json()["deadline"].startswith("2100-")


def test_an_empty_idempotency_key_is_422_and_makes_no_offer(api: Api,
                                                            bank: dict[str, str]) -> None:
    """Once taken as "no key": two posts with it made two offers."""
    rid = api.open_round()["round_id"]
    for _ in range(2):
        r = api.http.post(f"/v1/bank/rounds/{rid}/offers",
                          json={"annual_rate": "38.50", "amount": "5000000.00",
                                "tenor_months": 24, "grace_months": 6},
                          headers={**bank, "Idempotency-Key": ""})
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "Idempotency-Key", "code": "empty",
                                       "message": "must not be empty: send a key, or no "
                                                  "header"}]
    detail = api.http.get(f"/v1/bank/rounds/{rid}", headers=bank).json()
    assert detail["my_offers"] == [] and detail["has_my_offer"] is False
    r = api.http.put(f"/v1/bank/rounds/{rid}/offers/off_x", json={},
                     headers={**bank, "Idempotency-Key": ""})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Idempotency-Key"


def test_an_empty_idempotency_key_is_422_on_every_creating_post(api: Api) -> None:
    before = len(api.http.get("/v1/admin/banks", headers=api.admin).json()["banks"])
    r = api.http.post("/v1/admin/banks", json={"bank_code": "EMPTYKEY", "name": "Empty Key"},
                      headers={**api.admin, "Idempotency-Key": ""})
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "empty"
    r = api.http.post("/v1/admin/rounds", json={}, headers={**api.admin, "Idempotency-Key": ""})
    assert r.status_code == 422
    assert len(api.http.get("/v1/admin/banks", headers=api.admin).json()["banks"]) == before


@pytest.mark.parametrize("path", ["/v1/admin/rounds/%00", "/v1/admin/applications/a%00b",
                                  "/v1/bank/rounds/%C3%94/book",
                                  "/v1/exporter/applications/%0A/results",
                                  "/v1/bank/rounds/" + "r" * 65])
def test_an_id_no_id_of_ours_can_be_is_404_before_any_database(api: Api, path: str) -> None:
    """Once 503 on PostgreSQL, which refuses a NUL in text (GET /v1/admin/rounds/%00)."""
    r = api.http.get(api.base + path, headers=api.admin)
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/admin/rounds", {"exporter_user_id": "usr_\u0000"}, "exporter_user_id"),
    ("/v1/admin/audit", None, "round_id"),
])
def test_an_id_in_a_body_or_query_no_id_of_ours_can_be_is_422(api: Api, path: str,
                                                              body: Any, field: str) -> None:
    if body is None:
        r = api.http.get(path, params={"round_id": "rnd_\u0000"}, headers=api.admin)
    else:
        from tests.support import ROUND_BODY
        r = api.http.post(path, json={**ROUND_BODY, **body}, headers=api.admin)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == [field]
