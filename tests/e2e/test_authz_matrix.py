"""The authorisation matrix: every route of the app and every stream topic, against every kind
of caller, on a real server.

The routes come from the app's own route table (``gateway.routes.routes_for`` with every
role), so a new route cannot escape: ``test_every_route_is_classified`` fails until it is given
an audience below. Callers: nobody, bank A, bank B, exporter X, exporter Y, the operator, and
four bad tokens (garbage, bank A's token signed with another key, bank A's token expired, and
bank A's token with its kind edited to ``admin``, its signature kept).

What must hold:
- a route of an audience answers its owner (not 401, not 404, no 5xx), 401 ``unauthorized`` to
  every bad token and to nobody, 404 ``not_found`` to a valid caller of another kind (never
  403), and 404 to a caller of the same kind for an object of another bank or exporter;
- public routes answer every caller alike, whatever token it sends;
- for every route taking an id, a foreign id (another bank's round it never bid in, another
  bank's offer, another exporter's application or company) and an unknown id get the same
  status and the same problem (type, code, title, detail, instance, with the id normalised);
  their times are measured (median of interleaved calls) and reported, with a bound generous
  enough never to flake (5x plus 20 ms), since a test on a shared machine cannot tell a
  millisecond's difference from noise;
- on the stream, a round or application topic of another bank or exporter, of another kind of
  caller, and an unknown one all answer the same ``error not_found``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from starlette.routing import Route, WebSocketRoute

from gateway.routes import routes_for
from gateway.settings import ROLES
from tests.conformance import check_message
from tests.support import SECRET_KEY, Api, ServerProcess
from usecases.security import TokenSigner

CONSENT = {"text_version": "MUV-2026-01", "accepted": True}
TAX_ID_X = "1100000014"  # a company whose authorised signatory every test exporter is

#: every (method, path) of the app and who it is for: "public" (no token needed), "any" (any
#: valid token), "bank", "exporter", "admin", "stream" (the WebSocket: a ticket, not a token)
AUDIENCE: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/v1/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/v1/calendar/deadline"): "public",
    ("GET", "/v1/calendar/holidays"): "public",
    ("POST", "/v1/oauth/token"): "public",
    ("POST", "/v1/exporter/register"): "public",
    ("POST", "/v1/exporter/activate"): "public",
    ("POST", "/v1/exporter/login"): "public",
    ("POST", "/v1/stream/tickets"): "any",
    ("WS", "/v1/stream"): "stream",
    ("GET", "/v1/bank/rounds"): "bank",
    ("GET", "/v1/bank/rounds/{round_id}"): "bank",
    ("GET", "/v1/bank/rounds/{round_id}/book"): "bank",
    ("GET", "/v1/bank/rounds/{round_id}/result"): "bank",
    ("POST", "/v1/bank/rounds/{round_id}/offers"): "bank",
    ("PUT", "/v1/bank/rounds/{round_id}/offers/{offer_id}"): "bank",
    ("GET", "/v1/exporter/guarantee-package"): "exporter",
    ("POST", "/v1/exporter/companies"): "exporter",
    ("GET", "/v1/exporter/companies"): "exporter",
    ("DELETE", "/v1/exporter/companies/{company_id}/consent"): "exporter",
    ("POST", "/v1/exporter/applications"): "exporter",
    ("GET", "/v1/exporter/applications"): "exporter",
    ("GET", "/v1/exporter/applications/{application_id}"): "exporter",
    ("GET", "/v1/exporter/applications/{application_id}/results"): "exporter",
    ("POST", "/v1/exporter/applications/{application_id}/accept"): "exporter",
    ("POST", "/v1/admin/banks"): "admin",
    ("GET", "/v1/admin/banks"): "admin",
    ("POST", "/v1/admin/rounds"): "admin",
    ("GET", "/v1/admin/rounds/{round_id}"): "admin",
    ("GET", "/v1/admin/applications/{application_id}"): "admin",
    ("GET", "/v1/admin/exporters"): "admin",
    ("POST", "/v1/admin/exporters/{user_id}/unlock"): "admin",
    ("GET", "/v1/admin/audit"): "admin",
    ("POST", "/v1/admin/banks/{bank_id}/users"): "admin",
    ("GET", "/v1/admin/banks/{bank_id}/users"): "admin",
    ("POST", "/v1/admin/banks/{bank_id}/users/{desk_user_id}/deactivate"): "admin",
    ("POST", "/v1/admin/banks/{bank_id}/client-secret"): "admin",
    ("POST", "/v1/admin/banks/{bank_id}/users/{desk_user_id}/activation-code"): "admin",
    ("POST", "/v1/admin/operators"): "admin",
}

#: what the owner sends: bodies that pass authorisation without creating anything (an empty
#: body is refused by validation, which comes after it)
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/exporter/applications/{application_id}/accept"): {"offer_id": "{offer_id}"},
    # the owner (the operator) creates one desk user; an unknown bank is 404 before anything
    ("POST", "/v1/admin/banks/{bank_id}/users"): {"email": "matrix-desk@example.com",
                                                  "full_name": "Matris Masa", "role": "viewer"},
    # the owner creates one operator (a console login)
    ("POST", "/v1/admin/operators"): {"email": "matrix-operator@example.com",
                                      "full_name": "Matris Operatör"},
}
PARAMS: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/v1/admin/exporters"): {"email": "nobody@example.com"},
}

BAD_TOKENS = ("nobody", "garbage", "forged", "expired", "escalated")
CALLERS = ("bank_a", "bank_b", "exporter_x", "exporter_y", "admin", *BAD_TOKENS)
KIND = {"bank_a": "bank", "bank_b": "bank", "exporter_x": "exporter",
        "exporter_y": "exporter", "admin": "admin"}
OWNER = {"bank": "bank_a", "exporter": "exporter_x", "admin": "admin"}
TIMING_CALLS = 15
#: how far apart the medians of a foreign and an unknown id may be without failing the test
TIMING_RATIO, TIMING_SLACK_S = 5.0, 0.020


def the_routes() -> set[tuple[str, str]]:
    """Every (method, path template) the app of every role serves (HEAD rides on GET)."""
    out: set[tuple[str, str]] = set()
    for r in routes_for(frozenset(ROLES)):
        if isinstance(r, WebSocketRoute):
            out.add(("WS", r.path_format))
        else:
            assert isinstance(r, Route) and r.methods, f"a route of an unknown kind: {r}"
            out |= {(m, r.path_format) for m in r.methods if m != "HEAD"}
    return out


def fill(template: str, ids: dict[str, str]) -> str:
    return re.sub(r"{([a-z_]+)}", lambda m: ids[m.group(1)], template)


def normalised(body: Any, ids: list[str]) -> Any:
    """A response body with the given ids replaced by ``<id>`` wherever they occur."""
    text = json.dumps(body, sort_keys=True)
    for i in sorted(ids, key=len, reverse=True):
        text = text.replace(i, "<id>")
    return json.loads(text)


def a_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (r.status_code, r.headers.get("content-type", "").split(";")[0]) == (
        status, "application/problem+json"), (r.request.method, r.request.url, r.text)
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["code"] == code, body
    return body


@dataclass
class World:
    srv: ServerProcess
    api: Api
    h: dict[str, dict[str, str]]  # caller -> headers
    ids: dict[str, dict[str, str]]  # whose -> {param: id}: a_done, a_open, x, unknown
    user_ids: dict[str, str] = field(default_factory=dict)

    def call(self, caller: str, method: str, template: str, ids: dict[str, str],
             body: dict[str, Any] | None = None) -> httpx.Response:
        key = (method, template)
        if body is None:
            body = {k: fill(v, ids) for k, v in BODIES.get(key, {}).items()}
        json_body = body if method in ("POST", "PUT") else None
        return self.api.http.request(method, fill(template, ids), headers=self.h[caller],
                                     json=json_body, params=PARAMS.get(key))


def unknown_like(real: str) -> str:
    """An id nobody has, of the same form and length as a real one."""
    prefix, _, rest = real.partition("_")
    return f"{prefix}_{secrets.token_hex(len(rest))[:len(rest)]}"


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def escalated(token: str) -> str:
    """The token with its kind claim changed to ``admin`` and its signature kept."""
    body, _, sig = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["k"] = "admin"
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + sig


@pytest.fixture(scope="module")
def world(module_server_factory: Any, new_exporter: Any) -> World:
    srv = module_server_factory(IGE_ROUND_DURATION="PT3S", IGE_BINDING_DURATION="PT120S")
    api = Api(srv.base_url)
    banks = {c: api.create_bank(c, f"{c} Yetki Bankası") for c in ("AZA", "AZB")}
    x, y = new_exporter(api), new_exporter(api)
    h = {"bank_a": api.bank_token(banks["AZA"]), "bank_b": api.bank_token(banks["AZB"]),
         "exporter_x": x["headers"], "exporter_y": y["headers"], "admin": api.admin,
         "nobody": {}, "garbage": {"Authorization": "Bearer not-a-token"}}
    a_id = banks["AZA"]["bank_id"]
    h["forged"] = {"Authorization": "Bearer " + TokenSigner("another-key-" + "0" * 32).issue(
        "bank", a_id, 600)}
    h["expired"] = {"Authorization": "Bearer " + TokenSigner(SECRET_KEY).issue(
        "bank", a_id, 60, now=time.time() - 3600)}
    h["escalated"] = {"Authorization": "Bearer " + escalated(token_of(h["bank_a"]))}

    # exporter X: a company, an application whose round stays open, one that closes
    company = api.http.post("/v1/exporter/companies", json={"tax_id": TAX_ID_X,
                                                            "consent": CONSENT},
                            headers=h["exporter_x"])
    assert company.status_code == 201, company.text
    done = api.open_round(exporter_user_id=x["user_id"])
    offer_done = api.offer(h["bank_a"], done["round_id"])
    assert offer_done.status_code == 201, offer_done.text
    # wait for the close of the finished round (its results are in SQL)
    deadline = time.monotonic() + 30
    while api.http.get(f"/v1/bank/rounds/{done['round_id']}/result",
                       headers=h["bank_a"]).status_code != 200:
        assert time.monotonic() < deadline, "the round did not close"
        time.sleep(0.2)
    ids = {
        "a_done": {"round_id": done["round_id"], "offer_id": offer_done.json()["offer_id"]},
        "x": {"application_id": done["application_id"],
              "company_id": company.json()["company_id"], "user_id": x["user_id"],
              "round_id": done["round_id"], "offer_id": offer_done.json()["offer_id"],
              "bank_id": a_id},
    }
    desk = api.http.post(f"/v1/admin/banks/{a_id}/users", headers=api.admin, json={
        "email": "matrix-trader@example.com", "full_name": "Matris Tüccar", "role": "trader"})
    assert desk.status_code == 201, desk.text
    ids["x"]["desk_user_id"] = desk.json()["user_id"]
    ids["unknown"] = {k: unknown_like(v) for k, v in ids["x"].items()}
    return World(srv, api, h, ids, {"x": x["user_id"], "y": y["user_id"]})


# ----------------------------------------------------------------------------- the table
def test_every_route_is_classified() -> None:
    served = the_routes()
    assert served - AUDIENCE.keys() == set(), "routes with no audience in the matrix"
    assert AUDIENCE.keys() - served == set(), "the matrix names routes the app does not serve"


# ----------------------------------------------------------------------------- the matrix
def ids_for(world: World, audience: str) -> dict[str, str]:
    """The owner's ids on the routes of an audience."""
    if audience == "bank":
        return world.ids["a_done"]
    return world.ids["x"]


def test_every_route_against_every_caller(world: World) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    for (method, template), audience in sorted(AUDIENCE.items()):
        if audience == "stream":
            continue  # the handshake takes a ticket: test_the_stream_handshake_...
        ids = ids_for(world, audience)
        has_ids = "{" in template
        answers = {c: world.call(c, method, template, ids) for c in CALLERS}
        for caller, r in answers.items():
            seen[method, template, caller] = r.status_code
            where = (method, template, caller, r.status_code, r.text[:300])
            assert r.status_code < 500, where
            if audience == "public":
                # every caller alike, whatever token it sends
                assert r.status_code == answers["nobody"].status_code, where
                if r.headers.get("content-type", "").startswith("application/problem+json"):
                    assert r.json() == answers["nobody"].json(), where  # the token is not read
                continue
            if caller in BAD_TOKENS:
                a_problem(r, 401, "unauthorized")
                continue
            if audience == "any":
                assert r.status_code == 201, where
                continue
            kind = KIND[caller]
            if kind != audience:
                a_problem(r, 404, "not_found")  # never 403: another kind's space is empty
            elif caller == OWNER[audience] or not has_ids:
                assert r.status_code not in (401, 403, 404), where
            else:  # the same kind, another one's object
                a_problem(r, 404, "not_found")
    assert len(seen) == (len(AUDIENCE) - 1) * len(CALLERS)


# ----------------------------------------------------------------------------- foreign ids
def id_routes(audience: str) -> list[tuple[str, str]]:
    return sorted(k for k, a in AUDIENCE.items() if a == audience and "{" in k[1])


@dataclass
class Pair:
    route: str
    caller: str
    foreign_ms: float
    unknown_ms: float


def compare(world: World, caller: str, method: str, template: str, foreign: dict[str, str],
            unknown: dict[str, str], body: dict[str, Any] | None = None) -> Pair:
    """A foreign and an unknown id answer alike: status, headers that matter, the problem
    with the ids normalised; and their medians over interleaved calls."""
    strip = [*foreign.values(), *unknown.values()]
    f = world.call(caller, method, template, foreign, body)
    u = world.call(caller, method, template, unknown, body)
    where = (method, template, caller, f.text, u.text)
    assert f.status_code == u.status_code == 404, where
    assert f.headers["content-type"] == u.headers["content-type"], where
    assert normalised(f.json(), strip) == normalised(u.json(), strip), where
    assert f.json()["code"] == "not_found", where
    times: dict[str, list[float]] = {"f": [], "u": []}
    for i in range(TIMING_CALLS * 2):
        which, ids = ("f", foreign) if i % 2 == 0 else ("u", unknown)
        t = time.perf_counter()
        world.call(caller, method, template, ids, body)
        times[which].append(time.perf_counter() - t)
    mf, mu = statistics.median(times["f"]), statistics.median(times["u"])
    return Pair(f"{method} {template}", caller, mf * 1000, mu * 1000)


def test_foreign_and_unknown_ids_answer_alike(world: World) -> None:
    a_done, x, unknown = world.ids["a_done"], world.ids["x"], world.ids["unknown"]
    pairs: list[Pair] = []
    # bank B on bank A's finished round (B never bid in it) and on A's offer
    for method, template in id_routes("bank"):
        pairs.append(compare(world, "bank_b", method, template, a_done, unknown))
        body = {"annual_rate": "38.50"} if method in ("POST", "PUT") else None
        if body:  # a body the rules refuse, too: the round's rules are not named to B
            compare(world, "bank_b", method, template, a_done, unknown, body)
    # exporter Y on exporter X's application and company
    for method, template in id_routes("exporter"):
        pairs.append(compare(world, "exporter_y", method, template, x, unknown))
    # the operator sees everything: an unknown id is a 404 like any
    for method, template in id_routes("admin"):
        a_problem(world.call("admin", method, template, unknown), 404, "not_found")
    report = [f"{p.route} as {p.caller}: foreign {p.foreign_ms:.2f} ms, unknown "
              f"{p.unknown_ms:.2f} ms" for p in pairs]
    print("\nmedian of", TIMING_CALLS, "calls each:\n" + "\n".join(report))
    for p in pairs:
        hi, lo = max(p.foreign_ms, p.unknown_ms), min(p.foreign_ms, p.unknown_ms)
        assert hi <= TIMING_RATIO * lo + TIMING_SLACK_S * 1000, report


# ----------------------------------------------------------------------------- the stream
async def first_error(ws: Any, topic: str) -> dict[str, Any]:
    await ws.send(json.dumps({"op": "subscribe", "topic": topic}))
    while True:
        msg = check_message(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        if msg["type"] != "heartbeat":
            return dict(msg)


async def test_foreign_unknown_and_other_kinds_topics_answer_alike(world: World) -> None:
    a_done, x, unknown = world.ids["a_done"], world.ids["x"], world.ids["unknown"]
    # (caller, a topic of someone else's or of another kind, an unknown one of the same form)
    cases = [
        ("bank_b", f"round:{a_done['round_id']}", f"round:{unknown['round_id']}"),
        ("bank_b", f"application:{x['application_id']}",
         f"application:{unknown['application_id']}"),
        ("exporter_y", f"application:{x['application_id']}",
         f"application:{unknown['application_id']}"),
        ("exporter_x", f"round:{a_done['round_id']}", f"round:{unknown['round_id']}"),
        ("exporter_x", "pool", "pool:" + unknown["round_id"]),
        ("admin", f"application:{x['application_id']}",
         f"application:{unknown['application_id']}"),
    ]
    for caller, theirs, nobodys in cases:
        async with websockets.connect(
                f"{world.srv.ws_url}?ticket={world.api.ticket(world.h[caller])}",
                subprotocols=["ige.v1.json"]) as ws:
            got = [await first_error(ws, t) for t in (theirs, nobodys)]
        strip = [theirs, nobodys]
        assert all(m["type"] == "error" and m["code"] == "not_found" for m in got), got
        assert normalised(got[0], strip) == normalised(got[1], strip), (caller, got)
    # the owners are served: bank A its finished round, exporter X its application
    for caller, topic, kind in [("bank_a", f"round:{a_done['round_id']}", "snapshot"),
                                ("exporter_x", f"application:{x['application_id']}", None)]:
        async with websockets.connect(
                f"{world.srv.ws_url}?ticket={world.api.ticket(world.h[caller])}",
                subprotocols=["ige.v1.json"]) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": topic}))
            await ws.send(json.dumps({"op": "ping"}))
            msgs = []
            while not msgs or msgs[-1]["type"] != "pong":
                msgs.append(check_message(json.loads(await asyncio.wait_for(ws.recv(), 10))))
            assert not [m for m in msgs if m["type"] == "error"], (caller, msgs)
            if kind:
                assert kind in [m["type"] for m in msgs], (caller, msgs)


async def test_the_stream_handshake_wants_a_live_ticket_of_its_own(world: World) -> None:
    """No ticket, a made-up one, one already used, a bearer token in its place: all refused
    alike at the handshake."""
    used = world.api.ticket(world.h["bank_a"])
    async with websockets.connect(f"{world.srv.ws_url}?ticket={used}",
                                  subprotocols=["ige.v1.json"]):
        pass
    statuses = []
    for query in ("", "?ticket=", f"?ticket={secrets.token_urlsafe(24)}", f"?ticket={used}",
                  f"?ticket={token_of(world.h['bank_a'])[:100]}"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(world.srv.ws_url + query,
                                          subprotocols=["ige.v1.json"]):
                pass
        statuses.append(refused.value.response.status_code)
    assert len(set(statuses)) == 1 and statuses[0] in (401, 403), statuses

