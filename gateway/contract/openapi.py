"""The OpenAPI 3.1 document (``GET /v1/openapi.json``), generated from the request models
(``requests.py``), the response declarations (``responses.py``) and the table of operations
(``operations.py``). Built once per process (``spec()``).

The schemas are ``components.py``'s. The live stream (WebSocket) is described in
``POST /v1/stream/tickets`` and in its ``x-websocket`` extension.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from auction.feed import catch_up_limit
from gateway.contract import limits as L
from gateway.contract.components import EXTRA_CODES, NAMES, components, model_schema, schema_of
from gateway.contract.operations import (
    FORM_MEDIA,
    JSON_MEDIA,
    OPERATIONS,
    PATH_PARAMS,
    Operation,
)
from gateway.contract.reading import wire_fields
from gateway.contract.schema import Schema, ref
from gateway.problems import TITLES, TYPE_BASE
from gateway.settings import Settings

__all__ = ["AUTH_TEXT", "CATCH_UP_EVENTS", "EXTRA_CODES", "INTRO", "PROBLEM_MEDIA",
           "STREAM_DESCRIPTION", "TICKET_DESCRIPTION",
           "X_WEBSOCKET", "operation_of", "problem_codes", "spec"]

PROBLEM_MEDIA = "application/problem+json"
_DEFAULTS = Settings()

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
    if o.method in BODY_METHODS:  # gateway/bounds.py, ahead of every route
        add(408, "request_timeout")
        add(413, "payload_too_large")
        add(415, "unsupported_media_type")
    if o.path in RATE_LIMITED_PATHS:  # gateway/ratelimit.py
        add(429, "rate_limited")
    add(503, "unavailable")
    if o.path in REPLICATED_PATHS:  # IGE_REDIS_REPLICA_ACKS (auction/redis/acks.py)
        add(503, "replication_pending")
    return {k: codes[k] for k in sorted(codes)}


#: methods whose body the gateway bounds (media type, size, time)
BODY_METHODS = frozenset({"post", "put", "patch", "delete"})
#: the routes anyone may call, rate limited per address and account
RATE_LIMITED_PATHS = frozenset({"/v1/oauth/token", "/v1/exporter/register",
                                "/v1/exporter/activate", "/v1/exporter/login"})


#: the routes whose answer waits for Redis replicas when IGE_REDIS_REPLICA_ACKS is set
REPLICATED_PATHS = frozenset({"/v1/bank/rounds/{round_id}/offers",
                              "/v1/bank/rounds/{round_id}/offers/{offer_id}"})


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
    if status == 429:
        out["headers"] = {"Retry-After": {"description": "Seconds until the limit's window ends.",
                                          "schema": {"type": "integer", "minimum": 1}}}
    if status == 503:
        out["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying (a "
                                          "backing service failed; an offer's retry carries "
                                          "its Idempotency-Key).",
                                          "schema": {"type": "integer", "minimum": 1}}}
    return out


def _shape_schema(shape: type | Schema) -> Schema:
    return dict(shape) if isinstance(shape, dict) else schema_of(shape)


def _parameters(o: Operation) -> list[dict[str, Any]]:
    ps: list[dict[str, Any]] = []
    for name in o.path_params:
        ps.append({"name": name, "in": "path", "required": True,
                   "description": o.path_docs.get(name, PATH_PARAMS.get(name, "")),
                   "schema": {"type": "string", "pattern": f"^{L.PATH_ID_REGEX}$"}})
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
    description = (TICKET_DESCRIPTION + "\n\n" + STREAM_DESCRIPTION
                   if o.description == "__stream__" else o.description)
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
        name = NAMES.get(o.body)
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
        if str(code_status) in o.extra_responses:
            continue  # the operation's own body for that status (/readyz's 503: its checks)
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
#: how many missed events a resubscription with ``since_seq`` gets replayed (more: a
#: snapshot): the events must fit in the connection's send queue, less the frames waiting in it
CATCH_UP_EVENTS = catch_up_limit(_DEFAULTS.queue_size)

TICKET_DESCRIPTION = (f"Returns a single-use ticket (valid {_DEFAULTS.ticket_ttl_s} s) for the "
                      "live stream.")

STREAM_DESCRIPTION = f"""\
**Live stream (WebSocket) `GET /v1/stream?ticket=<ticket>`.** Connect with the subprotocol
`ige.v1.json` (text frames, JSON) or `ige.v1.msgpack` (binary frames, MessagePack; the same
objects), with a ticket from `POST /v1/stream/tickets` (single use, valid
{_DEFAULTS.ticket_ttl_s} s), which carries the identity of the token that asked for it. A
missing or used ticket, no supported subprotocol or a foreign browser `Origin` is refused at
the handshake with HTTP {L.STREAM_HANDSHAKE_STATUS}: the WebSocket never opens.

Client → server (schema `StreamClientMessage`):
`{{"op": "subscribe", "topic": "round:<id>" | "pool" | "application:<id>", "since_seq": n?}}`,
`{{"op": "unsubscribe", "topic": ...}}`, `{{"op": "ping"}}`.
Topics: `round:<id>` for banks (after their first offer in the round) and the operator;
`pool` (new rounds) for banks and the operator; `application:<id>` for the exporter who owns it.

Server → client (schema `StreamServerMessage`): every message has `type` and `topic`; for
round topics `seq` rises by exactly 1 per event of the round.
`snapshot` (the BOOK: on subscribe without `since_seq`, and when `since_seq` is in the future
or too far behind: the missed events are replayed as quotes only if they fit in the
connection's send queue, so with the default queue of {_DEFAULTS.queue_size} frames at most
{CATCH_UP_EVENTS} events behind, fewer while frames wait in it, and never more than
{L.STREAM_MAX_CATCH_UP}); `quote` (one offer added or revised, masked as in
BOOK, as `offer` with its new `rank`, and the `book_size`; it does not restate the other
offers' ranks: clients keep the order by the ranking key every entry carries, `apr`, then
`annual_rate`, then `seq`, replacing the entry with the same `ref`; a fresh snapshot always
equals the book built from quotes); `round_opened` (pool, with the `round`);
`round_closed` (round topics with `seq` and `closed_at`; application topics with the
exporter's `results`); `heartbeat` (`server_time`, every {_DEFAULTS.heartbeat_s:g} s);
`pong` (answer to ping, `server_time`); `error` with `code` `offer_required` (a bank subscribed
before bidding: it gets the snapshot automatically once it bids), `not_found`,
`validation_failed`, `bad_command` or `unavailable` (subscribe again); the connection stays open
after an error.

A client that falls behind (its queue of {_DEFAULTS.queue_size} frames is full) is closed
with code {L.STREAM_SLOW_CLIENT_CLOSE}, never allowed to slow others down: reconnect with a
new ticket and resubscribe with `since_seq` set to the last seq received. A client that sends
commands faster than {_DEFAULTS.ws_command_rate[0]} per {_DEFAULTS.ws_command_rate[1]:g} s
(a burst, refilled evenly) is closed with code {L.STREAM_FLOOD_CLOSE}; a message larger than
{L.STREAM_MAX_FRAME // 1024} KiB closes the connection with 1009."""

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
        "quote": {"fields": "type, topic, seq, offer (BOOK_ENTRY, with its new rank), "
                            "book_size",
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
        "validation_failed": "since_seq is not an integer 0..2^63-1",
        "bad_command": "not a subscribe/unsubscribe/ping message",
        "unavailable": "the server cannot follow the topic right now: subscribe again",
        "too_many_topics": "the connection follows as many topics as it may: unsubscribe one",
    },
    "handshake_refused": {
        "status": L.STREAM_HANDSHAKE_STATUS,
        "when": "missing or used ticket (a ticket presented is used up even when refused), "
                "too many WebSockets of this caller, no supported subprotocol, or a browser "
                "Origin that is not allowed: the HTTP answer to the upgrade; the WebSocket "
                "never opens"},
    "close_codes": {
        str(L.STREAM_SLOW_CLIENT_CLOSE): "slow consumer: reconnect and resubscribe with "
                                         "since_seq",
        str(L.STREAM_FLOOD_CLOSE): "too many commands (more than the connection's command "
                                   "rate): reconnect, and send fewer",
        str(L.STREAM_SESSION_ENDED): "the web page's browser session ended (signed out, "
                                     "account deactivated, or past its absolute limit); "
                                     "API clients never see it",
    },
    "heartbeat_seconds": _DEFAULTS.heartbeat_s,
    "ticket_ttl_seconds": _DEFAULTS.ticket_ttl_s,
    "max_catch_up_events": L.STREAM_MAX_CATCH_UP,
    "catch_up_events": CATCH_UP_EVENTS,
    "queue_frames": _DEFAULTS.queue_size,
    "max_message_bytes": L.STREAM_MAX_FRAME,
    "commands": {"burst": _DEFAULTS.ws_command_rate[0],
                 "per_seconds": _DEFAULTS.ws_command_rate[1]},
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
                               "key with another body is 422 idempotency_mismatch; an "
                               "empty key (field error `empty`) or one longer than "
                               f"{L.IDEMPOTENCY_KEY_MAX} characters (`too_long`) is 422 "
                               "validation_failed. Keys are kept 24 h.",
                "schema": {"type": "string", "minLength": 1,
                           "maxLength": L.IDEMPOTENCY_KEY_MAX}}},
            "securitySchemes": _security_schemes(),
        },
        "x-problem-codes": _problem_index(paths),
    }
