"""tests/conformance.py, the checker hooked into every e2e HTTP client, catches what the
document does not describe."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests import conformance
from tests.conformance import Drift, check, check_message

PROBLEM = "application/problem+json"


def response(method: str, path: str, status: int, body: Any,
             media: str = "application/json") -> httpx.Response:
    return httpx.Response(status, json=body, headers={"content-type": media},
                          request=httpx.Request(method, "http://test" + path))


def problem(status: int, code: str, **extra: Any) -> dict[str, Any]:
    return {"type": "https://ige.example/problems/" + code, "title": code, "status": status,
            "code": code, "detail": "d", **extra}


ENTRY = {"ref": "a1", "label": "Banka C", "rank": 1, "mine": False, "annual_rate": "31.25",
         "apr": "36.8212", "amount": "1000000.00", "tenor_months": 12, "grace_months": 0,
         "repayment_every_months": 1, "upfront_fee": "0.00", "assumes_export_commitment": False,
         "version": 1, "seq": 2, "updated_at": "2026-03-18T14:30:00Z"}
BOOK = {"round_id": "rnd_1", "seq": 3, "server_time": "2026-03-18T14:30:00Z",
        "closes_at": "2026-03-18T15:30:00Z", "state": "open", "my_label": "Banka A",
        "offers": [ENTRY]}


def test_a_documented_response_passes() -> None:
    check(response("GET", "/healthz", 200, {"status": "ok"}))
    check(response("GET", "/v1/bank/rounds/rnd_1/book", 200, BOOK))
    check(response("GET", "/v1/bank/rounds/rnd_1/book", 403, problem(403, "offer_required"),
                   PROBLEM))
    check(response("POST", "/v1/exporter/activate", 401, problem(401, "unauthorized"), PROBLEM))


def test_an_undocumented_status_is_drift() -> None:
    with pytest.raises(Drift, match="status 418 is not documented"):
        check(response("GET", "/healthz", 418, {"status": "ok"}))


def test_a_body_of_another_shape_is_drift() -> None:
    with pytest.raises(Drift, match="does not match"):
        check(response("GET", "/v1/bank/rounds/rnd_1/book", 200, {**BOOK, "seq": "3"}))


def test_a_leaked_foreign_offer_id_in_the_book_is_drift() -> None:
    leaked = {**BOOK, "offers": [{**ENTRY, "offer_id": "off_9"}]}
    with pytest.raises(Drift):
        check(response("GET", "/v1/bank/rounds/rnd_1/book", 200, leaked))


def test_a_problem_code_not_listed_for_its_status_is_drift() -> None:
    with pytest.raises(Drift, match="not listed"):
        check(response("GET", "/v1/bank/rounds/rnd_1/book", 403, problem(403, "forbidden"),
                       PROBLEM))
    with pytest.raises(Drift, match="not documented"):
        check(response("GET", "/v1/bank/rounds/rnd_1/book", 409, problem(409, "round_closed"),
                       PROBLEM))


def test_an_undocumented_content_type_is_drift() -> None:
    with pytest.raises(Drift, match="content type"):
        check(response("GET", "/v1/bank/rounds/rnd_1/book", 403, problem(403, "offer_required")))


def test_requests_outside_the_document_get_the_frameworks_problem() -> None:
    check(response("GET", "/v1/nothing-here", 404, problem(404, "not_found"), PROBLEM))
    check(response("GET", "/v1/admin/rounds", 405, problem(405, "method_not_allowed"), PROBLEM))
    with pytest.raises(Drift):
        check(response("GET", "/v1/admin/rounds", 200, {}))


def test_templates_match_literal_paths_first() -> None:
    assert conformance.template_of("/v1/exporter/applications") == "/v1/exporter/applications"
    assert conformance.template_of("/v1/exporter/applications/app_1/results") == \
        "/v1/exporter/applications/{application_id}/results"
    assert conformance.template_of("/v1/bank/rounds/r/offers/o") == \
        "/v1/bank/rounds/{round_id}/offers/{offer_id}"


def test_stream_messages_are_checked() -> None:
    check_message({"type": "heartbeat", "topic": None, "server_time": "2026-03-18T14:30:00Z"})
    check_message({"type": "snapshot", "topic": "round:rnd_1", **BOOK})
    check_message({"type": "quote", "topic": "round:rnd_1", "seq": 4, "offer": ENTRY,
                   "book_size": 1})
    with pytest.raises(Drift):
        check_message({"type": "quote", "topic": "round:rnd_1", "seq": 4, "offer": ENTRY})
    with pytest.raises(Drift):
        check_message({"type": "gossip", "topic": None})
