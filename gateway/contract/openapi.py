"""The OpenAPI 3.1 document (``GET /v1/openapi.json``), generated from the request models
(``requests.py``), the response declarations (``responses.py``) and the table of operations
(``operations.py``). Built once per process (``spec()``).

Component names are kept from the first hand-written document (``COMPONENTS``), so that
clients generated from it keep their type names. The live stream (WebSocket) is described in
``POST /v1/stream/tickets`` and in its ``x-websocket`` extension.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

from auction.model import CURRENCIES, LOAN_TYPES
from gateway.contract import limits as L
from gateway.contract import requests as rq
from gateway.contract import responses as rs
from gateway.contract.operations import (
    FORM_MEDIA,
    JSON_MEDIA,
    OPERATIONS,
    PATH_PARAMS,
    Operation,
)
from gateway.contract.reading import RequestModel, wire_fields
from gateway.contract.schema import Doc, Schema, arr, obj, ref
from gateway.problems import TITLES, TYPE_BASE
from gateway.settings import Settings

__all__ = ["AUTH_TEXT", "COMPONENTS", "INTRO", "PROBLEM_MEDIA", "STREAM_DESCRIPTION",
           "X_WEBSOCKET", "operation_of", "problem_codes", "schema_of", "spec"]

PROBLEM_MEDIA = "application/problem+json"
_DEFAULTS = Settings()
#: problem codes outside gateway.problems.TITLES that the gateway sends (bad_request: a form
#: Starlette cannot parse, e.g. a broken multipart body, answered by the HTTPException handler)
EXTRA_CODES = ("unsupported_grant_type", "bad_request")

# ----------------------------------------------------------------------------- components
#: component name -> declaration (a TypedDict or a request model)
COMPONENTS: dict[str, type] = {
    "Problem": rs.Problem, "FieldError": rs.FieldErrorOut,
    "Contact": rs.Contact, "Company": rs.Company, "Assessment": rs.Assessment,
    "ROUND": rs.Round, "ROUND_DETAIL": rs.RoundDetail, "ROUND_LIST": rs.RoundList,
    "ADMIN_ROUND": rs.AdminRound, "OFFER_TERMS": rq.OfferTermsBody, "OFFER": rs.Offer,
    "BOOK_ENTRY": rs.BookEntry, "BOOK": rs.Book, "RESULT_OFFER": rs.ResultOffer,
    "RESULT": rs.Result, "EXPORTER_OFFER": rs.ExporterOffer,
    "EXPORTER_RESULTS": rs.ExporterResults, "APPLICATION": rs.Application,
    "APPLICATION_REQUEST": rs.ApplicationRequestOut, "RELATED_COMPANY": rq.RelatedCompanyIn,
    "APPLICATION_FORM": rq.ApplicationForm, "COMPANY": rs.CompanyOut, "TOKEN": rs.Token,
    "EXPORTER_TOKEN": rs.ExporterToken, "BANK": rs.Bank, "BANK_CREDENTIALS": rs.BankCredentials,
    "AUDIT_ENTRY": rs.AuditEntry,
    "StreamSubscribe": rs.StreamSubscribe, "StreamUnsubscribe": rs.StreamUnsubscribe,
    "StreamPing": rs.StreamPing, "StreamSnapshot": rs.StreamSnapshot,
    "StreamQuote": rs.StreamQuote, "StreamRoundOpened": rs.StreamRoundOpened,
    "StreamRoundClosed": rs.StreamRoundClosed, "StreamHeartbeat": rs.StreamHeartbeat,
    "StreamPong": rs.StreamPong, "StreamError": rs.StreamError,
}
_NAMES = {t: n for n, t in COMPONENTS.items()}

#: what a declaration cannot say: schema keywords added to a component
COMPONENT_EXTRA: dict[str, Schema] = {"BOOK_ENTRY": rs.BOOK_ENTRY_MASKING}


def _scalars() -> dict[str, Schema]:
    """Wire formats: strings with a meaning (money, rates, timestamps) and enumerations."""
    return {
        "Money": {
            "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["1500000.00"],
            "description": "Money: a decimal string with exactly 2 places, in the round's "
                           "currency (never a JSON number)."},
        "MoneyInput": {
            "type": "string", "pattern": rf"^[0-9]+(\.[0-9]{{1,{L.MONEY_PLACES}}})?$",
            "examples": ["1500000.00"],
            "description": f"Money sent by a client: a decimal string with at most "
                           f"{L.MONEY_PLACES} places (\"1500000.00\") and at most "
                           f"{L.MONEY_MAX_INTEGER_DIGITS} digits before the point; numbers, "
                           "exponents and signs are refused."},
        "Rate": {
            "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2,4}$", "examples": ["31.25"],
            "description": "A rate: a decimal string, percent per year, 2 to 4 places."},
        "RateInput": {
            "type": "string", "pattern": rf"^[0-9]+(\.[0-9]{{1,{L.RATE_PLACES}}})?$",
            "examples": ["31.25"],
            "description": f"A rate sent by a client: a decimal string, percent per year, at "
                           f"most {L.RATE_PLACES} places, above 0 and at most "
                           f"{L.ANNUAL_RATE_MAX_PCT}."},
        "Apr": {
            "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{4}$", "examples": ["36.8212"],
            "description": "All-in annual cost (rate, grace, repayment schedule, upfront fee "
                           "and the guarantee commission), percent per year, 4 places. Offers "
                           "rank by apr, then annual_rate, then earlier seq; rank 1 is best."},
        "Timestamp": {
            "type": "string", "format": "date-time",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$",
            "examples": ["2026-03-18T14:30:00Z"],
            "description": "ISO 8601 timestamp in UTC (`Z`), milliseconds only when present. "
                           "The server clock is the only clock."},
        "Id": {"type": "string", "minLength": 1, "examples": ["rnd_3f9c2a7d41b0e8c5a2d1"],
               "description": "An opaque identifier."},
        "RoundState": {
            "type": "string", "enum": list(L.ROUND_LIST_STATES),
            "description": "open: taking offers; closed: past the deadline, offers binding; "
                           "accepted: the exporter accepted an offer; lapsed: the binding "
                           "period ended without an acceptance."},
        "Currency": {"type": "string", "enum": list(CURRENCIES)},
        "LoanType": {"type": "string", "enum": list(LOAN_TYPES)},
        "StreamTopic": {
            "type": "string", "pattern": r"^(pool|round:.+|application:.+)$",
            "examples": ["round:rnd_3f9c2a7d41b0e8c5a2d1", "pool", "application:app_91a0"],
            "description": "round:<id> (banks that bid in it, operator), pool (banks, "
                           "operator), application:<id> (its exporter)."},
    }


def _doc_text(text: str) -> str:
    return (text.replace("{max_catch_up}", str(L.STREAM_MAX_CATCH_UP))
            .replace("{heartbeat}", f"{_DEFAULTS.heartbeat_s:g}"))


def _description(t: type) -> str:
    """A declaration's docstring; request models only document themselves as components."""
    doc = t.__doc__ or ""
    if doc.startswith(t.__name__ + "(") or (issubclass(t, RequestModel) and t not in _NAMES):
        return ""
    return _doc_text(inspect.cleandoc(doc).replace("\n", " "))


def _is_typeddict(t: Any) -> bool:
    return isinstance(t, type) and typing.is_typeddict(t)


def schema_of(tp: Any) -> Schema:
    """The schema of a type hint: components by $ref, everything else inline."""
    extras: list[Doc] = []
    while get_origin(tp) in (typing.Annotated, NotRequired, Required):
        if get_origin(tp) is typing.Annotated:
            extras += [m for m in tp.__metadata__ if isinstance(m, Doc)]
            tp = tp.__origin__
        else:
            tp = get_args(tp)[0]
    base = next((d.schema for d in extras if d.schema is not None), None)
    if base is None:
        name = next((d.ref for d in extras if d.ref is not None), None)
        base = ref(name) if name else _derive(tp)
        if name and _nullable(tp):
            base = {"anyOf": [base, {"type": "null"}]}
    out = dict(base)
    for d in extras:
        if d.description:
            out["description"] = _doc_text(d.description)
        out.update(d.extra)
    return out


def _nullable(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


_PLAIN: dict[Any, Schema] = {str: {"type": "string"}, int: {"type": "integer"},
                             bool: {"type": "boolean"}, float: {"type": "number"},
                             type(None): {"type": "null"}, None: {"type": "null"}, Any: {}}


def _derive(tp: Any) -> Schema:
    if tp in _PLAIN:
        return dict(_PLAIN[tp])
    if tp in _NAMES:
        return ref(_NAMES[tp])
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        inner = schema_of(args[0]) if len(args) == 1 else {"anyOf": [schema_of(a) for a in args]}
        if set(inner) == {"type"} and isinstance(inner["type"], str):
            return {"type": [inner["type"], "null"]}
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is list:
        return arr(schema_of(get_args(tp)[0]))
    if origin is dict or tp is dict:
        return {"type": "object"}
    if origin is Literal:
        values = list(get_args(tp))
        return {"const": values[0]} if len(values) == 1 else {"type": "string", "enum": values}
    if _is_typeddict(tp):
        return _typeddict(tp)
    if isinstance(tp, type) and issubclass(tp, RequestModel):
        return model_schema(tp)
    raise TypeError(f"no schema for {tp!r}")


def _typeddict(t: type) -> Schema:
    hints = typing.get_type_hints(t, include_extras=True)
    required: frozenset[str] = t.__required_keys__  # type: ignore[attr-defined]
    bases = [b for b in (rs.EXTENDS.get(t),) if b is not None and b in _NAMES]
    inherited: set[str] = set()
    for b in bases:
        inherited |= set(typing.get_type_hints(b))
    props = {k: schema_of(v) for k, v in hints.items() if k not in inherited}
    own = obj(props, [k for k in props if k in required] or None)
    desc = _description(t)
    if bases:
        out: Schema = {"allOf": [*(ref(_NAMES[b]) for b in bases), own]}
        if desc:
            out["description"] = desc
        return out
    if desc:
        own = {"type": "object", "description": desc, **{k: v for k, v in own.items()
                                                          if k != "type"}}
    return own


def model_schema(model: type[RequestModel]) -> Schema:
    """A request model's wire schema (what a client sends)."""
    props: dict[str, Schema] = {}
    required = []
    for f in wire_fields(model):
        if f.wire.nested:
            sub = f.info.annotation
            assert isinstance(sub, type) and issubclass(sub, RequestModel)
            s = ref(_NAMES[sub]) if sub in _NAMES else model_schema(sub)
        else:
            s = dict(f.wire.schema)
        props[f.name] = s
        if f.required or f.name in model.REQUIRED_ON_WIRE:
            required.append(f.name)
    extra = {"additionalProperties": False} if model.model_config.get("extra") == "forbid" else {}
    out = obj(props, required or None, _description(model))
    out.update(extra)
    return out


def components() -> dict[str, Schema]:
    out = _scalars()
    for name, t in COMPONENTS.items():
        s = model_schema(t) if issubclass(t, RequestModel) else _typeddict(t)
        out[name] = {**s, **COMPONENT_EXTRA.get(name, {})}
    out["Problem"]["properties"]["code"]["description"] += (
        " Known codes: " + ", ".join([*TITLES, *EXTRA_CODES]) + ".")
    out["Problem"]["properties"]["type"]["examples"] = [TYPE_BASE + "round_closed"]
    out["StreamClientMessage"] = {
        "oneOf": [ref("StreamSubscribe"), ref("StreamUnsubscribe"), ref("StreamPing")],
        "discriminator": {"propertyName": "op", "mapping": {
            "subscribe": "#/components/schemas/StreamSubscribe",
            "unsubscribe": "#/components/schemas/StreamUnsubscribe",
            "ping": "#/components/schemas/StreamPing"}},
        "description": "A message from the client."}
    messages = {"snapshot": "StreamSnapshot", "quote": "StreamQuote",
                "round_opened": "StreamRoundOpened", "round_closed": "StreamRoundClosed",
                "heartbeat": "StreamHeartbeat", "pong": "StreamPong", "error": "StreamError"}
    out["StreamServerMessage"] = {
        "oneOf": [ref(n) for n in messages.values()],
        "discriminator": {"propertyName": "type", "mapping": {
            k: f"#/components/schemas/{v}" for k, v in messages.items()}},
        "description": "A message from the server. Every message has type and topic; round "
                       "topics also carry seq."}
    return out


# ----------------------------------------------------------------------------- operations
AUTH_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "bank": [{"bankToken": []}],
    "exporter": [{"exporterToken": []}],
    "operator": [{"operatorToken": []}],
    "any": [{"bankToken": []}, {"exporterToken": []}, {"operatorToken": []}],
}
AUTH_TEXT = {
    "public": "none (public)",
    "bank": "bank token (OAuth2 client credentials, `POST /v1/oauth/token`)",
    "exporter": "exporter token (`POST /v1/exporter/login`)",
    "operator": "operator token (`IGE_ADMIN_TOKEN`)",
    "any": "any token: bank, exporter or operator",
}


def problem_codes(o: Operation) -> dict[int, list[str]]:
    """Every problem code an operation may answer, per status: the ones of its kind, then its
    own."""
    codes: dict[int, list[str]] = {}

    def add(status: int, *names: str) -> None:
        for n in names:
            if n not in codes.setdefault(status, []):
                codes[status].append(n)

    if o.body is not None and not o.form:
        add(400, "malformed_json")
        add(422, "validation_failed")
    if o.query is not None:
        add(422, "validation_failed")
    for status, names in o.problems.items():
        add(status, *names)
    if o.auth != "public":
        add(401, "unauthorized")
        if o.auth != "any":
            add(404, "not_found")  # a token of another kind: that object space does not exist
    if o.idempotent:
        add(422, "idempotency_mismatch")
    add(503, "unavailable")
    return {k: codes[k] for k in sorted(codes)}


def _example(code: str, status: int) -> dict[str, Any]:
    return {"summary": TITLES.get(code, code.replace("_", " ")), "value": {
        "type": TYPE_BASE + code, "title": TITLES.get(code, code.replace("_", " ")),
        "status": status, "code": code, "detail": TITLES.get(code, "")}}


def _problem_response(status: int, codes: list[str]) -> dict[str, Any]:
    desc = "Problem codes: " + ", ".join(f"`{c}`" for c in codes) + "."
    out: dict[str, Any] = {"description": desc, "content": {PROBLEM_MEDIA: {
        "schema": ref("Problem"),
        "examples": {c: _example(c, status) for c in codes}}}}
    if status == 401:
        out["headers"] = {"WWW-Authenticate": {"description": "`Bearer`",
                                               "schema": {"type": "string"}}}
    return out


def _shape_schema(shape: type | Schema) -> Schema:
    return dict(shape) if isinstance(shape, dict) else schema_of(shape)


def _parameters(o: Operation) -> list[dict[str, Any]]:
    ps: list[dict[str, Any]] = []
    for name in o.path_params:
        ps.append({"name": name, "in": "path", "required": True,
                   "description": o.path_docs.get(name, PATH_PARAMS.get(name, "")),
                   "schema": {"type": "string"}})
    if o.query is not None:
        for f in wire_fields(o.query):
            s = dict(f.wire.schema)
            desc = s.pop("description", "")
            ps.append({"name": f.name, "in": "query", "required": f.required,
                       "description": desc, "schema": s})
    if o.idempotent:
        ps.append({"$ref": "#/components/parameters/IdempotencyKey"})
    return ps


def _operation(o: Operation) -> dict[str, Any]:
    codes = problem_codes(o)
    auth_line = f"**Auth:** {AUTH_TEXT[o.auth]}."
    if o.auth not in ("public", "any"):
        auth_line += " A token of another kind gets 404 `not_found`."
    if o.idempotent:
        auth_line += (" **Idempotency:** send an `Idempotency-Key`; the same key and body from "
                      "the same caller returns the first response again, the same key with "
                      "another body is 422 `idempotency_mismatch`.")
    description = STREAM_DESCRIPTION if o.description == "__stream__" else o.description
    out: dict[str, Any] = {
        "operationId": o.operation_id, "tags": [o.tag], "summary": o.summary,
        "description": (description + "\n\n" + auth_line).strip(),
        "security": AUTH_SECURITY[o.auth],
        "x-auth": o.auth,
    }
    params = _parameters(o)
    if params:
        out["parameters"] = params
    if o.body is not None:
        name = _NAMES.get(o.body)
        schema = ref(name) if name else model_schema(o.body)
        out["requestBody"] = {"required": True, "content": {
            FORM_MEDIA if o.form else JSON_MEDIA: {"schema": schema}}}
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": o.ok}
    if o.shape is not None:
        ok["content"] = {o.ok_media: {"schema": _shape_schema(o.shape)}}
    responses[str(o.status)] = ok
    for extra_status, (desc, shape) in o.extra_responses.items():
        responses[extra_status] = {"description": desc,
                             "content": {JSON_MEDIA: {"schema": _shape_schema(shape)}}}
    for code_status, names in codes.items():
        responses[str(code_status)] = _problem_response(code_status, names)
    responses["default"] = {
        "description": "Any other error, e.g. 405 `method_not_allowed`, 500 `internal_error`.",
        "content": {PROBLEM_MEDIA: {"schema": ref("Problem")}}}
    out["responses"] = responses
    out["x-problem-codes"] = {str(k): v for k, v in codes.items()}
    if o.operation_id == "streamTicket":
        out["x-websocket"] = X_WEBSOCKET
    out.update(o.extensions)
    return out


def operation_of(method: str, path: str) -> Operation | None:
    """The table row of (method, path template)."""
    return next((o for o in OPERATIONS if o.method == method.lower() and o.path == path), None)


def _paths() -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for o in OPERATIONS:
        paths.setdefault(o.path, {})[o.method] = _operation(o)
    return paths


def _problem_index(paths: Mapping[str, Any]) -> dict[str, Any]:
    statuses: dict[str, set[int]] = {c: set() for c in TITLES}
    for c in EXTRA_CODES:
        statuses.setdefault(c, set())
    for item in paths.values():
        for o in item.values():
            for st, codes in o["x-problem-codes"].items():
                for c in codes:
                    statuses.setdefault(c, set()).add(int(st))
    # sent by the framework around every operation
    statuses["method_not_allowed"].add(405)
    statuses["internal_error"].add(500)
    statuses["unsupported_media_type"].add(415)
    statuses["forbidden"].add(403)
    statuses["not_found"].add(404)
    return {c: {"title": TITLES.get(c, c.replace("_", " ")), "status": sorted(s)}
            for c, s in statuses.items()}


# ----------------------------------------------------------------------------- prose
STREAM_DESCRIPTION = f"""\
Returns a single-use ticket (valid {_DEFAULTS.ticket_ttl_s} s) for the live stream.

**Live stream (WebSocket) `GET /v1/stream?ticket=<ticket>`.** Connect with the subprotocol
`ige.v1.json` (text frames, JSON) or `ige.v1.msgpack` (binary frames, MessagePack; the same
objects). A missing or used ticket, no supported subprotocol or a foreign browser `Origin`
closes the socket with {L.STREAM_HANDSHAKE_REFUSED}. The ticket carries the identity of the
token that asked for it.

Client → server (schema `StreamClientMessage`):
`{{"op": "subscribe", "topic": "round:<id>" | "pool" | "application:<id>", "since_seq": n?}}`,
`{{"op": "unsubscribe", "topic": ...}}`, `{{"op": "ping"}}`.
Topics: `round:<id>` for banks (after their first offer in the round) and the operator;
`pool` (new rounds) for banks and the operator; `application:<id>` for the exporter who owns it.

Server → client (schema `StreamServerMessage`): every message has `type` and `topic`; for
round topics `seq` rises by exactly 1 per event of the round.
`snapshot` (the BOOK: on subscribe and whenever `since_seq` is too old, more than
{L.STREAM_MAX_CATCH_UP} events behind); `quote` (one offer added or revised, masked as in
BOOK, as `offer` with the new `ranks` [{{ref, rank}}]); `round_opened` (pool, with the `round`);
`round_closed` (round topics with `seq` and `closed_at`; application topics with the
exporter's `results`); `heartbeat` (`server_time`, every {_DEFAULTS.heartbeat_s:g} s);
`pong` (answer to ping, `server_time`); `error` with `code` `offer_required` (a bank subscribed
before bidding: it gets the snapshot automatically once it bids), `not_found`,
`validation_failed` or `bad_command`; the connection stays open after an error.

A client that falls behind (its queue of {_DEFAULTS.queue_size} frames is full) is closed
with code {L.STREAM_SLOW_CLIENT_CLOSE}, never allowed to slow others down: reconnect with a
new ticket and resubscribe with `since_seq` set to the last seq received."""

X_WEBSOCKET: dict[str, Any] = {
    "path": "/v1/stream",
    "query": {"ticket": "The single-use ticket from POST /v1/stream/tickets."},
    "subprotocols": {
        L.STREAM_SUBPROTOCOLS[0]: "JSON objects in text frames",
        L.STREAM_SUBPROTOCOLS[1]: "the same objects as MessagePack in binary frames",
    },
    "topics": {
        "round:<id>": "a round's book events (banks that bid in it, operator)",
        "pool": "new rounds (banks, operator)",
        "application:<id>": "the exporter's own application: round_closed with results",
    },
    "client_messages": {
        "subscribe": {"fields": {"topic": "round:<id> | pool | application:<id>",
                                 "since_seq": "optional integer (round topics)"},
                      "schema": ref("StreamSubscribe")},
        "unsubscribe": {"fields": {"topic": "a subscribed topic"},
                        "schema": ref("StreamUnsubscribe")},
        "ping": {"fields": {}, "schema": ref("StreamPing")},
    },
    "server_messages": {
        "snapshot": {"fields": "type, topic, round_id, seq, server_time, closes_at, state, "
                               "my_label, offers[BOOK_ENTRY]",
                     "schema": ref("StreamSnapshot")},
        "quote": {"fields": "type, topic, seq, offer (BOOK_ENTRY), ranks [{ref, rank}]",
                  "schema": ref("StreamQuote")},
        "round_opened": {"fields": "type, topic (pool), round (ROUND)",
                         "schema": ref("StreamRoundOpened")},
        "round_closed": {"fields": "type, topic, seq and closed_at (round topics) or results "
                                   "(application topics)",
                         "schema": ref("StreamRoundClosed")},
        "heartbeat": {"fields": "type, topic (null), server_time",
                      "schema": ref("StreamHeartbeat")},
        "pong": {"fields": "type, topic (null), server_time", "schema": ref("StreamPong")},
        "error": {"fields": "type, topic, code, detail", "schema": ref("StreamError")},
    },
    "error_codes": {
        "offer_required": "subscribed to a round before this bank's first offer in it; the "
                          "snapshot follows the first offer",
        "not_found": "no such topic for this caller",
        "validation_failed": "since_seq is not an integer",
        "bad_command": "not a subscribe/unsubscribe/ping message",
    },
    "close_codes": {
        str(L.STREAM_HANDSHAKE_REFUSED): "handshake refused: missing or used ticket, no "
                                         "supported subprotocol, or a browser Origin that is "
                                         "not allowed",
        str(L.STREAM_SLOW_CLIENT_CLOSE): "slow consumer: reconnect and resubscribe with "
                                         "since_seq",
    },
    "heartbeat_seconds": _DEFAULTS.heartbeat_s,
    "ticket_ttl_seconds": _DEFAULTS.ticket_ttl_s,
    "max_catch_up_events": L.STREAM_MAX_CATCH_UP,
    "queue_frames": _DEFAULTS.queue_size,
}

INTRO = """\
Real-time bidding for guaranteed export loans: banks bid on approved applications in
time-boxed rounds, see a masked order book live, and the exporter picks a binding offer after
the close.

**Conventions.** JSON bodies in `snake_case`. Money is a decimal **string** with 2 places
(`"1500000.00"`); rates are decimal strings in percent per year (`"31.25"`); never floats on
the wire. Timestamps are ISO 8601 in UTC (`2026-03-18T14:30:00Z`); the server clock is the only
clock. Ids are opaque strings.

**Errors** are `application/problem+json` (RFC 9457) with a stable machine `code`. Malformed
input is 422 `validation_failed` listing every offending field in `errors`; an unknown or
foreign object is 404 `not_found` (never 403: another tenant's object is never confirmed).

**Idempotency.** Every creating `POST` and the offer `PUT` accept an `Idempotency-Key`
header: the same key and body from the same caller returns the first response again; the same
key with another body is 422 `idempotency_mismatch`.

**Auth.** `Authorization: Bearer <token>` on everything but registration, activation, login,
token, health and public calendar calls. Banks get a token by OAuth2 client credentials at
`POST /v1/oauth/token`; exporters at `POST /v1/exporter/login`; the operator uses the
`IGE_ADMIN_TOKEN` secret. A token of the wrong kind gets 404.

**Time rules.** A round opens when an application is approved and closes at
`IGE_ROUND_CLOSE_TIME` (default 17:30 Europe/Istanbul) on the 7th Turkish business day
strictly after the day it opened; half-day eves (arife) count as business days unless
`IGE_HALF_DAYS_OFF=1`. Offers stay binding until the same time on the 2nd business day after
the close. `IGE_ROUND_DURATION` / `IGE_BINDING_DURATION` (ISO 8601 durations such as `PT20S`)
replace the business-day rules when set.

**Ranking and masking.** Offers rank by `apr` (all-in annual cost), then `annual_rate`, then
earlier `seq`; rank 1 is best. A bank sees other banks only under a masked label drawn at
random per round; no other bank identity, id or count leaks into a bank's view.

**Live stream.** See `POST /v1/stream/tickets` (WebSocket `/v1/stream`)."""

TAGS = [
    {"name": "public", "description": "Health, calendar and this documentation."},
    {"name": "bank", "description": "Banks: the pool, offers, the masked book, results."},
    {"name": "exporter", "description": "Exporters: account, applications, results, "
                                        "acceptance."},
    {"name": "stream", "description": "The live stream (WebSocket)."},
    {"name": "operator", "description": "The guarantee institution's operator."},
]


def _security_schemes() -> dict[str, Any]:
    return {
        "bankToken": {
            "type": "oauth2",
            "description": "Banks: OAuth2 client credentials. POST form "
                           "grant_type=client_credentials, client_id, client_secret to "
                           "/v1/oauth/token and send the access_token as "
                           "`Authorization: Bearer <token>` (valid "
                           f"{_DEFAULTS.token_ttl_s} s by default). Needed on /v1/bank/... .",
            "flows": {"clientCredentials": {"tokenUrl": "/v1/oauth/token", "scopes": {}}}},
        "exporterToken": {
            "type": "http", "scheme": "bearer",
            "description": "Exporters: the access_token from POST /v1/exporter/login "
                           "(e-mail, password, one-time code). Needed on "
                           "/v1/exporter/companies... and /v1/exporter/applications... ."},
        "operatorToken": {
            "type": "http", "scheme": "bearer",
            "description": "Operator: the IGE_ADMIN_TOKEN secret as a bearer token. "
                           "Needed on /v1/admin/... ."},
    }


@functools.lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    paths = _paths()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "IGE Kefalet Portalı bidding API",
            "version": "1",
            "summary": "Real-time bidding for guaranteed export loans.",
            "description": INTRO,
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "servers": [{"url": "/"}],
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": components(),
            "parameters": {"IdempotencyKey": {
                "name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Makes the request safe to retry: the same key and body from "
                               "the same caller returns the first response again; the same "
                               "key with another body is 422 idempotency_mismatch; a key "
                               f"longer than {L.IDEMPOTENCY_KEY_MAX} characters is 422 "
                               "validation_failed. Keys are kept 24 h.",
                "schema": {"type": "string", "minLength": 1,
                           "maxLength": L.IDEMPOTENCY_KEY_MAX}}},
            "securitySchemes": _security_schemes(),
        },
        "x-problem-codes": _problem_index(paths),
    }
