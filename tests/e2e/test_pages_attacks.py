"""The web pages as an attacker meets them: every page route of the app, on real server
processes, against callers who should get nothing.

The routes come from the app's own tables (``gateway.pages.routes.PAGES`` and every route
whose path is a page's), so a new page route cannot escape: ``test_every_page_route_is_
classified`` fails until it has an audience in ``PAGE_AUDIENCE`` (the operator console's
routes go into ``OPERATOR_PAGES``, one place).

What must hold, route by route:
- no session, a forged cookie, an ended session and a session of the wrong kind (an exporter on
  the desk's pages, a desk user on the exporter's) get the sign-in page of the route's kind (or,
  for the stream tickets, a 403), and nothing changes;
- a desk viewer posting an offer, and a desk user who is not its bank's user administrator on
  the desk-user pages, are refused (403) and nothing changes;
- another bank's round and offer, another bank's desk user and another exporter's application
  answer exactly as an unknown id does (the status and the page, with the id normalised);
- a POST without its CSRF token, or with another site's ``Origin``, is refused (403) and
  nothing changes; so are a wrong ``Content-Type`` (415), an oversize body (413), too many
  fields (400) and odd values (NUL characters, bracketed and repeated names, overlong text);
- no page answers 5xx, ever; and no desk page shows another bank's name, code or id.

"Nothing changes" is the audit trail's length, the open round's unmasked offers (the
operator's view) and both banks' desk users, read through the operator's API.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp
import pytest
from starlette.routing import Mount, Route

from gateway.pages.paths import is_page
from gateway.pages.routes import PAGES
from gateway.routes import routes_for
from gateway.settings import ROLES
from tests.e2e.conftest import register_exporter
from tests.support import OFFER_BODY, Api

DESK_PASSWORD = "a desk password, long enough"
TAX_ID = "1100000014"

#: every page route (method, path template) and who it is for:
#: "public" (anyone: the sign-in, activation and registration pages, the language switch);
#: "desk" / "exporter" (a session of that kind); "desk_admin" (a desk session of its bank's
#: user administrator); "desk_ticket" / "exporter_ticket" (a session's stream ticket: JSON);
#: "desk_logout" / "exporter_logout" (ends the session: never sent a valid token here but once)
PAGE_AUDIENCE: dict[tuple[str, str], str] = {
    ("GET", "/desk"): "public",
    ("GET", "/desk/login"): "public",
    ("POST", "/desk/login"): "public",
    ("GET", "/desk/activate"): "public",
    ("POST", "/desk/activate"): "public",
    ("POST", "/lang"): "public",
    ("POST", "/desk/logout"): "desk_logout",
    ("GET", "/desk/rounds"): "desk",
    ("GET", "/desk/rounds/rows"): "desk",
    ("GET", "/desk/rounds/{round_id}"): "desk",
    ("POST", "/desk/rounds/{round_id}/offers"): "desk",
    ("POST", "/desk/rounds/{round_id}/offers/{offer_id}"): "desk",
    ("POST", "/desk/ticket"): "desk_ticket",
    ("GET", "/desk/users"): "desk_admin",
    ("POST", "/desk/users"): "desk_admin",
    ("POST", "/desk/users/{user_id}/deactivate"): "desk_admin",
    ("POST", "/desk/users/{user_id}/activation-code"): "desk_admin",
    ("GET", "/exporter"): "public",
    ("GET", "/exporter/register"): "public",
    ("POST", "/exporter/register"): "public",
    ("POST", "/exporter/activate"): "public",
    ("GET", "/exporter/login"): "public",
    ("POST", "/exporter/login"): "public",
    ("POST", "/exporter/logout"): "exporter_logout",
    ("GET", "/exporter/applications"): "exporter",
    ("POST", "/exporter/applications"): "exporter",
    ("GET", "/exporter/apply"): "exporter",
    ("POST", "/exporter/companies"): "exporter",
    ("GET", "/exporter/applications/{application_id}"): "exporter",
    ("POST", "/exporter/applications/{application_id}/accept"): "exporter",
    ("POST", "/exporter/ticket"): "exporter_ticket",
}
#: the operator console's page routes (gateway/pages/operator*.py), audience "operator": every
#: caller of this module is an outsider there and must get no page of it (the sign-in page,
#: 401, 403 or 404, never a 2xx with the console, never a 5xx); its sign-in and activation are
#: "public" (tests/browser/test_operator.py signs an operator in)
OPERATOR_PAGES: dict[tuple[str, str], str] = {
    ("GET", "/operator/login"): "public",
    ("POST", "/operator/login"): "public",
    ("GET", "/operator/activate"): "public",
    ("POST", "/operator/activate"): "public",
    ("GET", "/operator"): "operator",
    ("POST", "/operator/logout"): "operator",
    ("GET", "/operator/rounds"): "operator",
    ("GET", "/operator/rounds/{round_id}"): "operator",
    ("GET", "/operator/audit"): "operator",
    ("GET", "/operator/applications"): "operator",
    ("GET", "/operator/applications/{application_id}"): "operator",
    ("GET", "/operator/banks"): "operator",
    ("POST", "/operator/banks"): "operator",
    ("POST", "/operator/banks/{bank_id}/users"): "operator",
    ("POST", "/operator/banks/{bank_id}/secret"): "operator",
    ("POST", "/operator/banks/{bank_id}/users/{desk_user_id}/deactivate"): "operator",
    ("POST", "/operator/banks/{bank_id}/users/{desk_user_id}/activation-code"): "operator",
}
AUDIENCE = {**PAGE_AUDIENCE, **OPERATOR_PAGES}
#: the kind of session an audience wants, and where an outsider is sent
KIND = {"desk": "desk", "desk_admin": "desk", "desk_ticket": "desk", "desk_logout": "desk",
        "exporter": "exporter", "exporter_ticket": "exporter", "exporter_logout": "exporter",
        "operator": "operator"}
LOGIN = {"desk": "/desk/login", "exporter": "/exporter/login"}
#: what the owner sends to a POST route (ids filled in): valid forms, so a refusal is the
#: attack's, not the form's
FORMS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/desk/rounds/{round_id}/offers"): {k: str(v) for k, v in OFFER_BODY.items()},
    ("POST", "/desk/rounds/{round_id}/offers/{offer_id}"):
        {k: str(v) for k, v in OFFER_BODY.items()},
    ("POST", "/desk/users"): {"email": "attacker-made@example.com", "full_name": "Saldırgan",
                              "role": "admin"},
    ("POST", "/exporter/applications"): {
        "company_id": "{company_id}", "loan_type": "working_capital", "currency": "TRY",
        "loan_amount": "1000000.00", "guarantee_amount": "1000000.00", "tenor_months": "24",
        "grace_months": "6", "rc-0-tax_id": "1100000089", "rc-0-relation": "partner",
        "rc-0-share_pct": "10", "pb-ATKALFA": "1"},
    ("POST", "/exporter/companies"): {"tax_id": TAX_ID, "consent": "1"},
    ("POST", "/exporter/applications/{application_id}/accept"): {"offer_id": "{offer_id}",
                                                                 "confirm": "1"},
    ("POST", "/desk/login"): {"email": "{email}", "password": "wrong password, long one",
                              "code": "000000"},
    ("POST", "/exporter/login"): {"email": "{email}", "password": "wrong password, long one",
                                  "code": "000000"},
    ("POST", "/desk/activate"): {"email": "{email}", "activation_code": "nope",
                                 "password": DESK_PASSWORD, "password2": DESK_PASSWORD},
    ("POST", "/operator/login"): {"email": "{email}", "password": "wrong password, long one",
                                  "code": "000000"},
    ("POST", "/operator/activate"): {"email": "{email}", "activation_code": "nope",
                                     "password": DESK_PASSWORD, "password2": DESK_PASSWORD},
    ("POST", "/exporter/activate"): {"email": "{email}", "code": "000000"},
    ("POST", "/exporter/register"): {"full_name": "Kayıt Olmaz", "national_id": "123",
                                     "email": "nobody", "mobile": "1", "password": "x"},
    ("POST", "/lang"): {"lang": "en", "next": "/desk"},
}
#: values that are odd on purpose, sent in every field a route reads (never a valid form)
ODD_VALUES = ("\x00", "a\x00b", "[]", "{}", "%00", "\u202e\u0000" * 50, "9" * 4000,
              "-1e999", "NaN", "ﬁ" * 300)


def fill(template: str, ids: dict[str, str]) -> str:
    return re.sub(r"{([a-z_]+)}", lambda m: ids[m.group(1)], template)


def page_routes() -> set[tuple[str, str]]:
    """Every (method, path template) of the pages: the pages' table, and any route of the
    app's other tables whose path is a page's."""
    out: set[tuple[str, str]] = set()
    for r in [*PAGES, *routes_for(frozenset(ROLES))]:
        if isinstance(r, Mount):
            assert r.path == "/static", f"a mount among the pages: {r.path}"
            continue
        if not isinstance(r, Route) or not r.methods:
            continue
        if r in PAGES or is_page(r.path_format):
            out |= {(m, r.path_format) for m in r.methods if m != "HEAD"}
    return out


def unknown_like(real: str) -> str:
    prefix, _, rest = real.partition("_")
    return f"{prefix}_{secrets.token_hex(len(rest))[:len(rest)]}"


META_CSRF = re.compile(r'<meta name="csrf" content="([^"]+)">')


class Browser:
    """A person's browser without a browser: a cookie jar, the page's CSRF token, and every
    answer checked for a 5xx."""

    def __init__(self, base_url: str, name: str) -> None:
        self.name = name
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
        self.token = ""

    def call(self, method: str, path: str, data: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, content: bytes | None = None
             ) -> httpx.Response:
        r = self.http.request(method, path, data=data, headers=headers, content=content)
        assert r.status_code < 500, (self.name, method, path, r.status_code, r.text[:500])
        return r

    def csrf(self, path: str = "/desk/login") -> str:
        r = self.call("GET", path)
        m = META_CSRF.search(r.text)
        assert m is not None, (path, r.status_code, r.text[:300])
        self.token = m.group(1)
        return self.token

    def post(self, path: str, data: dict[str, str], with_csrf: bool = True,
             headers: dict[str, str] | None = None) -> httpx.Response:
        body = {**data, "csrf": self.token} if with_csrf else dict(data)
        return self.call("POST", path, data=body, headers=headers)

    def session(self) -> str | None:
        return self.http.cookies.get("ige_session")


def desk_person(api: Api, base: str, bank: dict[str, Any], role: str) -> tuple[Browser, str]:
    """A desk user of ``bank`` created by the operator, activated and signed in on the pages;
    (their browser, their user id)."""
    email = f"{role}-{secrets.token_hex(4)}@{bank['bank_code'].lower()}.example"
    r = api.http.post(f"/v1/admin/banks/{bank['bank_id']}/users", headers=api.admin,
                      json={"email": email, "full_name": f"{role} {bank['bank_code']}",
                            "role": role})
    assert r.status_code == 201, r.text
    made = r.json()
    b = Browser(base, f"{role}@{bank['bank_code']}")
    b.csrf("/desk/activate")
    got = b.post("/desk/activate", {"step": "password", "email": email,
                                    "activation_code": made["activation_code"],
                                    "password": DESK_PASSWORD, "password2": DESK_PASSWORD})
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', got.text)
    assert secret is not None, got.text[:500]
    totp = pyotp.TOTP(secret.group(1))
    done = b.post("/desk/activate", {"step": "code", "email": email,
                                     "activation_code": made["activation_code"],
                                     "code": totp.now()})
    assert done.status_code == 303, done.text[:500]
    b.csrf("/desk/login")
    signed = b.post("/desk/login", {"email": email, "password": DESK_PASSWORD,
                                    "code": totp.at(time.time() + 30)})
    assert signed.status_code == 303 and signed.headers["location"] == "/desk/rounds", \
        signed.text[:500]
    b.csrf("/desk/rounds")
    return b, str(made["user_id"])


def exporter_person(api: Api, base: str, name: str) -> tuple[Browser, dict[str, Any]]:
    who = register_exporter(api, login=False)
    b = Browser(base, name)
    b.csrf("/exporter/login")
    signed = b.post("/exporter/login", {"email": who["email"], "password": who["password"],
                                        "code": who["totp"].at(time.time() + 30)})
    assert signed.status_code == 303, signed.text[:500]
    b.csrf("/exporter/applications")
    return b, who


@dataclass
class World:
    api: Api
    base: str
    people: dict[str, Browser]
    ids: dict[str, dict[str, str]]  # "a": bank A's and exporter X's own; "foreign"; "unknown"
    bank_a: dict[str, str]  # bank A's API token (the book's state)
    ended: dict[str, Browser]  # by kind: a browser whose session was ended by its sign-out
    secrets_of_b: list[str] = field(default_factory=list)

    def state(self) -> tuple[Any, ...]:
        """What an attack must not change, read through the operator's API."""
        entries: list[Any] = []
        after = 0
        while True:
            page = self.api.http.get("/v1/admin/audit", params={"after_id": after},
                                     headers=self.api.admin).json()
            entries += page["entries"]
            if not page.get("next_after_id"):
                break
            after = page["next_after_id"]
        book = self.api.http.get(f"/v1/bank/rounds/{self.ids['a']['round_id']}/book",
                                 headers=self.bank_a).json()
        users = [self.api.http.get(f"/v1/admin/banks/{b}/users", headers=self.api.admin)
                 .json() for b in self.ids["banks"].values()]
        return len(entries), book["seq"], book["offers"], users

    def settled(self) -> tuple[Any, ...]:
        """The state once the persister has caught up (two equal reads 0.3 s apart)."""
        before = self.state()
        deadline = time.monotonic() + 20
        while True:
            time.sleep(0.3)
            now = self.state()
            if now == before:
                return now
            assert time.monotonic() < deadline, "the state did not settle"
            before = now


@pytest.fixture(scope="module")
def world(module_server_factory: Any) -> Iterator[World]:
    # bindings outlast the module: a lapse during a test would be a change nobody made
    short = module_server_factory(IGE_ROUND_DURATION="PT2S", IGE_BINDING_DURATION="PT2H")
    srv = module_server_factory(IGE_ROUND_DURATION="PT30M", IGE_BINDING_DURATION="PT2H")
    api, base = Api(srv.base_url), srv.base_url
    a = api.create_bank("ATKALFA", "Alfa Saldırı Bankası")
    b = api.create_bank("ATKBETA", "Beta Saldırı Bankası")
    ha, hb = api.bank_token(a), api.bank_token(b)
    people: dict[str, Browser] = {}
    people["trader_a"], _ = desk_person(api, base, a, "trader")
    people["viewer_a"], _ = desk_person(api, base, a, "viewer")
    people["admin_a"], _ = desk_person(api, base, a, "admin")
    people["trader_b"], b_user = desk_person(api, base, b, "trader")
    people["x"], x = exporter_person(api, base, "exporter X")
    people["y"], y = exporter_person(api, base, "exporter Y")
    spare = api.http.post(f"/v1/admin/banks/{a['bank_id']}/users", headers=api.admin, json={
        "email": f"spare-{secrets.token_hex(3)}@a.example", "full_name": "Yedek",
        "role": "viewer"}).json()

    # an open round both banks bid in (X's), and a closed one only bank B bid in (Y's)
    rnd = api.open_round(exporter_user_id=x["user_id"])
    offer_a = api.offer(ha, rnd["round_id"]).json()
    offer_b = api.offer(hb, rnd["round_id"], annual_rate="39.00").json()
    closed = Api(short.base_url).open_round(exporter_user_id=y["user_id"])
    offer_closed = api.offer(hb, closed["round_id"]).json()
    deadline = time.monotonic() + 30
    while api.http.get(f"/v1/bank/rounds/{closed['round_id']}/result",
                       headers=hb).status_code != 200:
        assert time.monotonic() < deadline, "the short round did not close"
        time.sleep(0.2)
    # exporter X's company, matched on the page (for the application form)
    matched = people["x"].post("/exporter/companies", {"tax_id": TAX_ID, "consent": "1",
                                                       "consent_version": "MUV-2026-01"})
    assert matched.status_code == 303, matched.text[:500]
    companies = people["x"].call("GET", "/exporter/apply").text
    company_id = re.search(r'<option value="(cmp_[A-Za-z0-9_-]+)"', companies)
    assert company_id is not None
    ids = {
        "a": {"round_id": rnd["round_id"], "offer_id": offer_a["offer_id"],
              "user_id": spare["user_id"], "application_id": rnd["application_id"],
              "company_id": company_id.group(1), "email": "nobody@example.com"},
        "foreign": {"round_id": closed["round_id"], "offer_id": offer_b["offer_id"],
                    "user_id": b_user, "application_id": closed["application_id"]},
        "banks": {"a": a["bank_id"], "b": b["bank_id"]},
    }
    ids["unknown"] = {k: unknown_like(v) for k, v in ids["foreign"].items()}
    ended: dict[str, Browser] = {}
    for kind in ("desk", "exporter"):
        person = desk_person(api, base, a, "trader")[0] if kind == "desk" \
            else exporter_person(api, base, "ended exporter")[0]
        sid = person.session()
        assert sid and person.post(f"/{kind}/logout", {}).status_code == 303
        ended[kind] = Browser(base, f"ended {kind} session")
        ended[kind].http.cookies.set("ige_session", sid)
    w = World(api, base, people, ids, ha, ended,
              [b["bank_code"], b["name"], b["bank_id"], b_user, offer_b["offer_id"],
               offer_closed["offer_id"]])
    yield w
    for p in people.values():
        p.http.close()


def owner_of(audience: str) -> str:
    return {"desk": "trader_a", "desk_ticket": "trader_a", "desk_logout": "trader_a",
            "desk_admin": "admin_a", "exporter": "x", "exporter_ticket": "x",
            "exporter_logout": "x", "public": "trader_a"}[audience]


def form_of(key: tuple[str, str], ids: dict[str, str]) -> dict[str, str]:
    return {k: fill(v, ids) for k, v in FORMS.get(key, {}).items()}


# ----------------------------------------------------------------------------- the table
def test_every_page_route_is_classified() -> None:
    served = page_routes()
    missing = sorted(served - AUDIENCE.keys())
    assert not missing, (
        f"page routes with no audience: {missing}; classify them in "
        "tests/e2e/test_pages_attacks.py (PAGE_AUDIENCE, or OPERATOR_PAGES for the operator "
        "console) so that the attacks below run against them")
    assert sorted(AUDIENCE.keys() - served) == [], "the table names routes the app lacks"
    unbounded = sorted(p for _, p in served if not is_page(p))
    assert not unbounded, (f"page routes outside gateway/pages/paths.py PAGE_PREFIXES (their "
                           f"forms would not get the pages' bounds): {unbounded}")


# ----------------------------------------------------------------------------- outsiders
def outsiders(world: World, kind: str) -> Iterator[tuple[str, Browser]]:
    """Callers with no session of ``kind``: none, a forged cookie, an ended session, and a
    session of the other kind."""
    none = Browser(world.base, "no session")
    yield "no session", none
    forged = Browser(world.base, "forged cookie")
    forged.http.cookies.set("ige_session", secrets.token_urlsafe(32))
    yield "forged cookie", forged
    yield "ended session", world.ended[kind]
    other = world.people["x"] if kind == "desk" else world.people["trader_a"]
    yield "other kind", other


def test_outsiders_get_the_sign_in_page_and_change_nothing(world: World) -> None:
    before = world.settled()
    for kind in ("desk", "exporter"):
        for who, b in outsiders(world, kind):
            for (method, template), audience in sorted(AUDIENCE.items()):
                if KIND.get(audience) != kind:
                    continue
                if who == "other kind" and audience.endswith("_logout"):
                    continue  # a sign-out ends the caller's own session, whatever its kind
                path = fill(template, world.ids["a"])
                data = {**form_of((method, template), world.ids["a"]), "csrf": b.token}
                r = b.call(method, path, data=data if method == "POST" else None)
                if audience.endswith("_ticket"):
                    assert r.status_code == 403, (who, method, path, r.status_code)
                    assert "ticket" not in r.json()
                elif r.status_code == 303:
                    assert r.headers["location"].startswith(LOGIN[kind]), (who, method, path)
                elif r.status_code == 401:  # a fragment a page's script fetches: "signed out"
                    assert template == "/desk/rounds/rows", (who, method, path)
                else:  # a form refused for its token before anything else
                    assert r.status_code == 403 and method == "POST", (who, method, path,
                                                                        r.status_code)
                assert world.secrets_of_b[0] not in r.text
    assert world.settled() == before


def test_operator_pages_give_nothing_to_anyone_here(world: World) -> None:
    if not OPERATOR_PAGES:  # no console yet: nothing is served under /operator
        for b in (Browser(world.base, "nobody"), *world.people.values()):
            for path in ("/operator", "/operator/login"):
                assert b.call("GET", path).status_code == 404, (b.name, path)
    for (method, template), audience in sorted(OPERATOR_PAGES.items()):
        if audience == "public":  # the console's sign-in and activation: the CSRF and body
            continue              # attacks below take them as every public page
        path = re.sub(r"{[a-z_]+}", "x_1", template)
        for b in (Browser(world.base, "nobody"), *world.people.values()):
            r = b.call(method, path, data={"csrf": b.token} if method == "POST" else None)
            assert r.status_code in (303, 401, 403, 404), (b.name, method, path, r.status_code)


# ----------------------------------------------------------------------------- roles
def test_a_viewer_may_not_offer_and_only_the_admin_manages_desk_users(world: World) -> None:
    before = world.settled()
    viewer, trader = world.people["viewer_a"], world.people["trader_a"]
    rid, oid = world.ids["a"]["round_id"], world.ids["a"]["offer_id"]
    offer = {k: str(v) for k, v in OFFER_BODY.items()}
    for path in (f"/desk/rounds/{rid}/offers", f"/desk/rounds/{rid}/offers/{oid}"):
        r = viewer.post(path, {**offer, "annual_rate": "10.00", "idem": secrets.token_hex(8)})
        assert r.status_code == 403 and "yalnızca" in r.text  # "only a trader may offer"
    for b in (viewer, trader):
        assert b.call("GET", "/desk/users").status_code == 403
        assert b.post("/desk/users", form_of(("POST", "/desk/users"), {})).status_code == 403
        for act in ("deactivate", "activation-code"):
            r = b.post(f"/desk/users/{world.ids['a']['user_id']}/{act}", {})
            assert r.status_code == 403, act
        assert "deactivate" not in b.call("GET", "/desk/rounds").text
    assert world.settled() == before


# ----------------------------------------------------------------------------- foreign ids
def normalised(html: str, ids: dict[str, str]) -> str:
    for v in ids.values():
        html = html.replace(v, "{id}")
    html = re.sub(r'data-server-now="\d+"', "", html)
    html = re.sub(r'name="idem" value="[^"]*"', "", html)
    return re.sub(r'data-closes="\d+"', "", html)


def test_foreign_ids_answer_exactly_as_unknown_ones(world: World) -> None:
    before = world.settled()
    foreign, unknown = world.ids["foreign"], world.ids["unknown"]
    checked = 0
    for (method, template), audience in sorted(PAGE_AUDIENCE.items()):
        params = set(re.findall(r"{([a-z_]+)}", template))
        if not params:
            continue
        who = world.people[owner_of(audience)]
        own = world.ids["a"]
        # only the id under test is foreign or unknown; the others are the caller's own
        for p in sorted(params):
            if template.endswith("/offers/{offer_id}") and p == "round_id":
                continue  # a foreign offer is tried in the caller's own round
            f_ids, u_ids = {**own, p: foreign[p]}, {**own, p: unknown[p]}
            if audience.startswith("exporter") and p == "application_id":
                f_ids["offer_id"] = u_ids["offer_id"] = world.ids["a"]["offer_id"]
            answers = []
            for ids in (f_ids, u_ids):
                data = {**form_of((method, template), ids), "idem": secrets.token_hex(8)} \
                    if method == "POST" else None
                path = fill(template, ids)
                r = who.post(path, data) if method == "POST" else who.call(method, path)
                answers.append((r.status_code, normalised(r.text, {p: ids[p]})))
            (fs, fb), (us, ub) = answers
            assert fs == us == 404, (method, template, p, fs, us)
            assert fb == ub, (method, template, p)
            checked += 1
    assert checked >= 6
    assert world.settled() == before


# ----------------------------------------------------------------------------- CSRF
def test_a_post_without_its_token_or_from_another_site_is_refused(world: World) -> None:
    before = world.settled()
    for (method, template), audience in sorted(AUDIENCE.items()):
        if method != "POST" or audience == "operator":
            continue
        who = world.people[owner_of(audience)]
        path = fill(template, world.ids["a"])
        data = {**form_of((method, template), world.ids["a"]), "idem": secrets.token_hex(8)}
        if audience.endswith("_ticket"):
            assert who.call("POST", path).status_code == 403
            r = who.call("POST", path, headers={"X-CSRF-Token": who.token,
                                                "Origin": "https://evil.example"})
            assert r.status_code == 403 and "ticket" not in r.json()
            continue
        no_token = who.post(path, data, with_csrf=False)
        assert no_token.status_code == 403, (path, no_token.status_code)
        wrong = who.post(path, {**data, "csrf": "x" * 43}, with_csrf=False)
        assert wrong.status_code == 403, (path, wrong.status_code)
        evil = who.post(path, data, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403, (path, evil.status_code)
        assert "ige_session" not in evil.headers.get("set-cookie", "")
    # the sessions are all still there (a refused logout ended nothing)
    assert world.people["trader_a"].call("GET", "/desk/rounds").status_code == 200
    assert world.people["x"].call("GET", "/exporter/applications").status_code == 200
    assert world.settled() == before


# ----------------------------------------------------------------------------- bodies
def test_bad_bodies_are_refused_clearly_and_change_nothing(world: World) -> None:
    before = world.settled()
    for (method, template), audience in sorted(AUDIENCE.items()):
        if method != "POST" or audience == "operator":
            continue
        who = world.people[owner_of(audience)]
        path = fill(template, world.ids["a"])
        tok = {"X-CSRF-Token": who.token}
        for ctype, body in (("application/json", b'{"csrf": "%s"}' % who.token.encode()),
                            ("text/plain", b"csrf=" + who.token.encode()),
                            ("multipart/form-data; boundary=x",
                             b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--')):
            r = who.call("POST", path, content=body, headers={"Content-Type": ctype, **tok})
            assert r.status_code == 415, (path, ctype, r.status_code)
        form = "application/x-www-form-urlencoded"
        big = b"csrf=" + who.token.encode() + b"&pad=" + b"a" * 9000
        r = who.call("POST", path, content=big, headers={"Content-Type": form})
        assert r.status_code == 413, (path, r.status_code)
        many = "&".join(f"f{i}=1" for i in range(260)).encode()
        r = who.call("POST", path, content=b"csrf=" + who.token.encode() + b"&" + many,
                     headers={"Content-Type": form})
        # a ticket route reads no form: its token is a header, missing here
        assert r.status_code == (403 if audience.endswith("_ticket") else 400), (
            path, r.status_code)
        if audience.endswith(("_logout", "_ticket")) or \
                template.endswith(("/deactivate", "/activation-code")):
            continue  # the token is all they read: a valid one would do what they do
        names = set(form_of((method, template), world.ids["a"])) | {"step", "next", "idem"}
        for odd in ODD_VALUES:
            fields = [("csrf", who.token)] + [(n, odd) for n in sorted(names)]
            fields += [(n + "[0][a]", odd) for n in sorted(names)][:5]
            fields += [(n, odd) for n in sorted(names)][:3]  # a repeated name
            r = who.call("POST", path, content=httpx.QueryParams(fields).__str__().encode(),
                         headers={"Content-Type": form})
            assert r.status_code in (303, 400, 401, 403, 404, 409, 413, 422), (
                path, repr(odd[:10]), r.status_code)
            if r.status_code == 303:  # only the language switch takes anything: to a page here
                assert template == "/lang" and r.headers["location"].startswith("/"), path
    assert world.people["trader_a"].call("GET", "/desk/rounds").status_code == 200
    assert world.settled() == before


# ----------------------------------------------------------------------------- masking
def test_no_desk_page_names_another_bank(world: World) -> None:
    rid = world.ids["a"]["round_id"]
    for name in ("trader_a", "viewer_a", "admin_a"):
        b = world.people[name]
        for path in ("/desk/rounds", "/desk/rounds/rows", f"/desk/rounds/{rid}", "/desk/users",
                     f"/desk/rounds/{world.ids['foreign']['round_id']}",
                     f"/desk/users/{world.ids['foreign']['user_id']}/deactivate",
                     f"/desk/users/{world.ids['foreign']['user_id']}/activation-code"):
            r = b.post(path, {}) if path.endswith(("/deactivate", "/activation-code")) \
                else b.call("GET", path)
            shown = r.text.replace(path, "")  # the page names its own address (lang's next)
            for secret in world.secrets_of_b:
                assert secret not in shown, (name, path, secret)
    book = world.people["trader_a"].call("GET", f"/desk/rounds/{rid}").text
    assert "Banka " in book  # the other bank is there, masked
    # the user administrator sees the bank's book as a viewer does, with no offer form
    as_admin = world.people["admin_a"].call("GET", f"/desk/rounds/{rid}").text
    assert "kullanıcı yöneticisisiniz" in as_admin and "Banka " in as_admin
    assert f'action="/desk/rounds/{rid}/offers"' not in as_admin


# ----------------------------------------------------------------------------- once
def test_the_application_form_sent_twice_makes_one_application(world: World) -> None:
    x = world.people["x"]
    form = x.call("GET", "/exporter/apply").text
    idem = re.search(r'name="idem" value="([^"]+)"', form)
    assert idem is not None
    data = {**form_of(("POST", "/exporter/applications"), world.ids["a"]),
            "idem": idem.group(1)}
    before = len(re.findall(r'href="/exporter/applications/app_', x.call(
        "GET", "/exporter/applications").text))
    first = x.post("/exporter/applications", data)
    again = x.post("/exporter/applications", data)
    assert first.status_code == again.status_code == 303, (first.text[:300], again.text[:300])
    assert first.headers["location"] == again.headers["location"]
    after = len(re.findall(r'href="/exporter/applications/app_', x.call(
        "GET", "/exporter/applications").text))
    assert after == before + 1
    other = x.post("/exporter/applications", {**data, "loan_amount": "2000000.00"})
    assert other.status_code == 409 and "başka değerlerle" in other.text
    # approved: its round tells bank A (preferred) that it is, and bank B nothing at all
    app_id = first.headers["location"].rsplit("/", 1)[1]
    seen = world.api.http.get(f"/v1/admin/applications/{app_id}",
                              headers=world.api.admin).json()
    assert seen["status"] == "approved" and seen["request"]["preferred_banks"] == ["ATKALFA"]
    rid = seen["round"]["round_id"]
    page_a = world.people["trader_a"].call("GET", f"/desk/rounds/{rid}").text
    page_b = world.people["trader_b"].call("GET", f"/desk/rounds/{rid}").text
    assert 'id="preferred"' in page_a and 'id="preferred"' not in page_b
    assert "ATKALFA" not in page_b and "Alfa Saldırı" not in page_b
