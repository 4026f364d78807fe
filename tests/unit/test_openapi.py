"""The OpenAPI document (GET /v1/openapi.json) and the /docs page built from it."""

from __future__ import annotations

import html
import json
import re
import time
from typing import Any, Iterator

import pytest
from starlette.routing import Route, WebSocketRoute

from gateway import openapi
from gateway.app import ROUTES
from gateway.problems import TITLES

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _resolve(doc: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = doc
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {pointer}"
        node = node[part]
    return node


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, o in item.items():
            if method in HTTP_METHODS:
                yield path, method, o


def _http_routes() -> list[tuple[str, set[str]]]:
    out = []
    for r in ROUTES:
        if isinstance(r, WebSocketRoute):
            continue
        assert isinstance(r, Route)
        methods = {m.lower() for m in (r.methods or {"GET"})} - {"head"}
        out.append((r.path, methods))
    return out


def test_spec_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    doc = openapi.spec()
    assert doc["openapi"].startswith("3.1")
    validator.validate(doc)


def test_spec_is_plain_json_and_cached() -> None:
    doc = openapi.spec()
    assert json.loads(json.dumps(doc)) == doc
    assert openapi.spec() is doc


def test_info_servers_and_security() -> None:
    doc = openapi.spec()
    assert doc["info"]["title"] == "IGE Kefalet Portalı bidding API"
    assert doc["info"]["version"] == "1"
    assert doc["servers"] == [{"url": "/"}]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bankToken"]["flows"]["clientCredentials"]["tokenUrl"] == "/v1/oauth/token"
    assert schemes["exporterToken"]["scheme"] == "bearer"
    assert schemes["operatorToken"]["scheme"] == "bearer"


def test_every_route_and_method_is_documented() -> None:
    doc = openapi.spec()
    for path, methods in _http_routes():
        assert path in doc["paths"], path
        for m in methods:
            assert m in doc["paths"][path], f"{m.upper()} {path}"
    # and nothing is documented that the app does not serve
    served: dict[str, set[str]] = {}
    for path, methods in _http_routes():
        served.setdefault(path, set()).update(methods)
    for path, method, _ in _operations(doc):
        assert method in served.get(path, set()), f"{method.upper()} {path} is not served"


def test_every_ref_resolves() -> None:
    doc = openapi.spec()
    refs = set(_refs(doc))
    assert refs
    for r in refs:
        _resolve(doc, r)


def test_every_error_response_is_a_problem() -> None:
    doc = openapi.spec()
    for path, method, o in _operations(doc):
        for status, r in o["responses"].items():
            if status == "default" or int(status) >= 400:
                if path == "/readyz" and status == "503":
                    continue  # readiness reports its checks, not a problem
                content = r["content"]
                assert list(content) == ["application/problem+json"], (path, method, status)
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"}


def test_problem_codes_are_known() -> None:
    doc = openapi.spec()
    known = set(TITLES) | {"unsupported_grant_type"}
    for path, method, o in _operations(doc):
        for status, codes in o["x-problem-codes"].items():
            for c in codes:
                assert c in known, (path, method, c)
                assert c in o["responses"][status]["description"]


def test_contract_shapes() -> None:
    s = openapi.spec()["components"]["schemas"]
    for name in ("ROUND", "OFFER_TERMS", "OFFER", "BOOK", "BOOK_ENTRY", "RESULT",
                 "EXPORTER_RESULTS", "APPLICATION", "Problem"):
        assert name in s, name
    entry = s["BOOK_ENTRY"]
    assert set(entry["required"]) == {
        "ref", "label", "rank", "mine", "annual_rate", "apr", "amount", "tenor_months",
        "grace_months", "repayment_every_months", "upfront_fee", "assumes_export_commitment",
        "version", "updated_at"}
    assert entry["then"] == {"required": ["offer_id", "conditions"]}
    assert set(s["Problem"]["properties"]) == {
        "type", "title", "status", "code", "detail", "instance", "errors"}
    assert set(s["FieldError"]["required"]) == {"field", "code", "message"}
    assert re.fullmatch(s["Money"]["pattern"], "1500000.00")
    assert not re.fullmatch(s["Money"]["pattern"], "1500000.5")
    assert re.fullmatch(s["Rate"]["pattern"], "31.25")
    assert set(s["OFFER_TERMS"]["properties"]) >= {
        "annual_rate", "amount", "tenor_months", "grace_months", "repayment_every_months",
        "upfront_fee", "assumes_export_commitment", "conditions"}


def test_book_entry_masking_rule_holds_for_real_entries() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = openapi.spec()
    schema = {**doc["components"]["schemas"]["BOOK_ENTRY"], "components": doc["components"]}
    base = {"ref": "a1b2c3", "label": "Banka C", "rank": 1, "mine": False,
            "annual_rate": "31.25", "apr": "36.8212", "amount": "1000000.00",
            "tenor_months": 12, "grace_months": 0, "repayment_every_months": 1,
            "upfront_fee": "0.00", "assumes_export_commitment": False, "version": 1,
            "updated_at": "2026-03-18T14:30:00Z"}
    v = jsonschema.Draft202012Validator(schema)
    assert v.is_valid(base)
    assert not v.is_valid({**base, "offer_id": "off_1"})  # a foreign offer id would leak
    assert not v.is_valid({**base, "mine": True})
    assert v.is_valid({**base, "mine": True, "offer_id": "off_1", "conditions": ""})


def test_idempotency_key_on_offers_and_creating_posts() -> None:
    doc = openapi.spec()
    ref = {"$ref": "#/components/parameters/IdempotencyKey"}
    for path, method in [("/v1/bank/rounds/{round_id}/offers", "post"),
                         ("/v1/bank/rounds/{round_id}/offers/{offer_id}", "put"),
                         ("/v1/exporter/register", "post"),
                         ("/v1/exporter/applications/{application_id}/accept", "post"),
                         ("/v1/admin/banks", "post"),
                         ("/v1/admin/rounds", "post")]:
        assert ref in doc["paths"][path][method]["parameters"], (method, path)
    assert doc["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"


def test_status_codes_match_handlers() -> None:
    p = openapi.spec()["paths"]
    assert "201" in p["/v1/bank/rounds/{round_id}/offers"]["post"]["responses"]
    assert "200" in p["/v1/bank/rounds/{round_id}/offers/{offer_id}"]["put"]["responses"]
    book = p["/v1/bank/rounds/{round_id}/book"]["get"]
    assert book["x-problem-codes"]["403"] == ["offer_required"]
    assert "round_open" in p["/v1/exporter/applications/{application_id}/results"]["get"][
        "x-problem-codes"]["409"]
    accept = p["/v1/exporter/applications/{application_id}/accept"]["post"]
    assert {"binding_expired", "already_accepted"} <= set(accept["x-problem-codes"]["409"])
    assert "201" in p["/v1/stream/tickets"]["post"]["responses"]
    assert p["/v1/oauth/token"]["post"]["security"] == []
    assert p["/v1/bank/rounds"]["get"]["security"] == [{"bankToken": []}]


def test_websocket_is_documented() -> None:
    o = openapi.spec()["paths"]["/v1/stream/tickets"]["post"]
    ws = o["x-websocket"]
    assert ws["path"] == "/v1/stream"
    assert set(ws["subprotocols"]) == {"ige.v1.json", "ige.v1.msgpack"}
    assert set(ws["client_messages"]) == {"subscribe", "unsubscribe", "ping"}
    assert set(ws["server_messages"]) == {"snapshot", "quote", "round_opened", "round_closed",
                                          "heartbeat", "pong", "error"}
    assert set(ws["error_codes"]) == {"offer_required", "not_found", "validation_failed",
                                      "bad_command"}
    assert "4008" in ws["close_codes"]
    for word in ("/v1/stream", "ige.v1.msgpack", "since_seq", "4008", "round:<id>"):
        assert word in o["description"]


def test_docs_html_lists_every_path_and_is_self_contained() -> None:
    t0 = time.perf_counter()
    page = openapi.docs_html()
    assert time.perf_counter() - t0 < 2
    assert page.startswith("<!DOCTYPE html>")
    assert html.escape("IGE Kefalet Portalı bidding API") in page
    for path, _ in _http_routes():
        assert html.escape(path) in page, path
    assert "/v1/stream" in page
    for code in TITLES:
        assert code in page
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
