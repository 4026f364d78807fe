"""The operator's console in a real Chromium against a real server process: an operator created
with the admin token activates (QR code) and signs in; sees the rounds counted by state; opens a
round with offers of two banks and sees both banks' real names and every version; filters the
audit trail; creates a bank whose client secret is shown once and works at /v1/oauth/token;
rotates it (the old one fails, the new one works); creates a desk user (the activation code
shown once) who activates and signs in in another browser context; deactivates them (their
page then signs them out); reads a decision record; switches to English. A form without its
CSRF token is refused, and a desk or exporter session gets nothing from the console (nor the
operator's from their pages).

Every page met is checked: its Content-Security-Policy and frame headers, axe-core (no serious
or critical violation), screenshots at 390 and 1440 px (var/screenshots/operator-*).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp

from tests.browser.test_desk import Watch, check_page
from tests.browser.test_desk import activate as desk_activate
from tests.browser.test_desk import login as desk_login
from tests.browser.test_desk import new_user as new_desk_user
from tests.e2e.conftest import register_exporter
from tests.support import OFFER_BODY, Api, ServerProcess

PASSWORD = "an operator password, long enough"
ROUND_SECONDS = 40  # the first round closes while the operator signs in; the second stays open


def operator_activates(page: Any, base: str, who: dict[str, Any], watch: Watch,
                       shots: Path) -> pyotp.TOTP:
    page.goto(base + "/operator/activate")
    check_page(page, watch, "operator-activate", shots)
    page.fill("#email", who["email"])
    page.fill("#activation_code", who["activation_code"])
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_selector("#totp-secret")
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml")
    check_page(page, watch, "operator-activate-qr", shots)
    totp = pyotp.TOTP(page.locator("#totp-secret").inner_text().strip())
    page.fill("#code", totp.now())
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/operator/login\?activated=1"))
    return totp


def operator_signs_in(page: Any, base: str, email: str, totp: pyotp.TOTP, watch: Watch,
                      shots: Path) -> None:
    page.goto(base + "/operator/login")
    check_page(page, watch, "operator-login", shots)
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#code", totp.at(time.time() + 30))  # activation used the current time step
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/operator$"))


def wait_closed(api: Api, round_id: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = api.http.get(f"/v1/admin/rounds/{round_id}", headers=api.admin).json()
        if r.get("reference_number"):
            return dict(r)
        assert time.monotonic() < deadline, f"the round did not close: {r}"
        time.sleep(0.3)


def texts(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def token_status(api: Api, client_id: str, secret: str) -> int:
    return api.http.post("/v1/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id,
        "client_secret": secret}).status_code


def test_an_operator_runs_the_console(servers: Callable[..., ServerProcess], browser: Any,
                                      screenshots: Path) -> None:
    srv = servers(IGE_ROUND_DURATION=f"PT{ROUND_SECONDS}S", IGE_BINDING_DURATION="PT10M")
    base = srv.base_url
    api = Api(base)
    b1 = api.create_bank("OPALPHA", "Alfa Konsol Bankası")
    b2 = api.create_bank("OPBETA", "Beta Konsol Bankası")
    h1, h2 = api.bank_token(b1), api.bank_token(b2)
    done = api.open_round()  # closes while the operator signs in
    first = api.offer(h1, done["round_id"], annual_rate="39.00")
    assert first.status_code == 201, first.text
    assert api.offer(h2, done["round_id"], annual_rate="38.75").status_code == 201
    revised = api.http.put(f"/v1/bank/rounds/{done['round_id']}/offers/"
                           f"{first.json()['offer_id']}",
                           json={**OFFER_BODY, "annual_rate": "38.25"}, headers=h1)
    assert revised.status_code == 200 and revised.json()["version"] == 2, revised.text

    # the admin token creates an operator; the person activates with the QR code, signs in
    made = api.http.post("/v1/admin/operators", json={
        "email": "olcay@kgf.example", "full_name": "Olcay Operatör"}, headers=api.admin)
    assert made.status_code == 201, made.text
    who = made.json()
    assert who["active"] is False and who["activation_url"] == "/operator/activate"
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = Watch("operator")
    page.on("response", watch.on_response)
    totp = operator_activates(page, base, who, watch, screenshots)
    operator_signs_in(page, base, who["email"], totp, watch, screenshots)

    # counts by state: one round closed, one open
    closed = wait_closed(api, done["round_id"])
    live = api.open_round(company={**done["company"], "name": "Ege Canlı Makina A.Ş."})
    assert api.offer(h2, live["round_id"]).status_code == 201
    page.goto(base + "/operator")
    counts = {s: page.locator(f"#counts [data-state={s}] .count-n").inner_text()
              for s in ("open", "closed", "accepted", "lapsed")}
    assert counts == {"open": "1", "closed": "1", "accepted": "0", "lapsed": "0"}, counts
    assert "Açık" in page.locator("#counts").inner_text()  # Turkish by default
    check_page(page, watch, "operator-dashboard", screenshots)
    page.locator("#counts [data-state=closed] a").click()
    page.wait_for_url(re.compile(r"/operator/rounds\?state=closed$"))
    assert done["round_id"] in page.locator("#rounds").inner_text()
    assert live["round_id"] not in page.content()
    check_page(page, watch, "operator-rounds", screenshots)

    # the closed round, unmasked: both banks by name, every version, the result
    page.locator(f"#rounds a[href='/operator/rounds/{done['round_id']}']").click()
    page.wait_for_selector("#offers-h")
    names = texts(page, "article.offer .bank-name")
    assert names == ["Alfa Konsol Bankası", "Beta Konsol Bankası"], names  # 38.25 beats 38.75
    assert page.locator("#reference").inner_text() == closed["reference_number"]
    alpha = page.locator(f"#offer-{first.json()['offer_id']}")
    versions = alpha.locator("tbody tr")
    assert versions.count() == 2
    assert versions.nth(0).locator("td").nth(2).inner_text() == "%38,25"
    assert versions.nth(1).locator("td").nth(2).inner_text() == "%39,00"
    assert "OPALPHA" in alpha.inner_text() and "sıra 1" in alpha.inner_text()
    events = page.locator("#audit-rows").inner_text()
    for action in ("round_opened", "offer_submitted", "offer_revised", "round_closed"):
        assert action in events, action
    check_page(page, watch, "operator-round", screenshots)

    # its decision record, as the API gives it
    page.locator("#application-link").click()
    page.wait_for_selector("#decision-status")
    record = api.http.get(f"/v1/admin/applications/{done['application_id']}",
                          headers=api.admin).json()
    assert page.locator("#application-id").inner_text() == record["application_id"]
    assert page.locator("#package-version").inner_text() == record["package_version"]
    assert "operator_intake" in page.locator("#reasons").inner_text()
    assert page.locator("#package dl.tree").count() > 0
    check_page(page, watch, "operator-application", screenshots)
    page.goto(base + "/operator/applications")
    assert page.locator("#applications tbody tr").count() == 2
    check_page(page, watch, "operator-applications", screenshots)
    page.fill("#application_id", "app_" + "0" * 20)
    page.locator("#find-application button").click()
    page.wait_for_selector("#application_id-error")

    # the audit trail: filters, a bad one named next to its field
    page.goto(base + "/operator/audit")
    check_page(page, watch, "operator-audit", screenshots)
    page.fill("#f-action", "offer_revised")
    page.locator("#audit-filters button[type=submit]").click()
    page.wait_for_url(re.compile(r"action=offer_revised"))
    rows = page.locator("#audit-rows tbody tr")
    assert rows.count() == 1
    assert f"bank:{b1['bank_id']}" in rows.nth(0).inner_text()
    page.fill("#f-action", "")
    page.fill("#f-round_id", live["round_id"])
    page.locator("#audit-filters button[type=submit]").click()
    page.wait_for_url(re.compile(r"round_id=" + live["round_id"]))
    assert set(texts(page, "#audit-rows tbody td:nth-child(4)")) == \
        {"round_opened", "offer_submitted", "application_decided"}
    page.goto(base + "/operator/audit?since=yesterday")
    assert page.locator("#f-since-error").is_visible()
    assert page.locator("#audit-rows").count() == 0
    check_page(page, watch, "operator-audit-error", screenshots)

    # a bank: its client secret shown once, and it works
    page.goto(base + "/operator/banks")
    page.fill("#bank_code", "OPGAMMA")
    page.fill("#bank_name", "Gama Konsol Bankası")
    page.locator("#new-bank button[type=submit]").click()
    page.wait_for_selector("#shown-secret")
    client_id = page.locator("#shown-client-id").inner_text().strip()
    secret = page.locator("#shown-secret").inner_text().strip()
    check_page(page, watch, "operator-bank-created", screenshots)
    assert token_status(api, client_id, secret) == 200
    page.reload()
    assert page.locator("#shown-secret").count() == 0 and secret not in page.content()
    gamma = next(b for b in api.http.get("/v1/admin/banks", headers=api.admin).json()["banks"]
                 if b["bank_code"] == "OPGAMMA")
    trail = api.http.get("/v1/admin/audit", params={"action": "bank_created"},
                         headers=api.admin).json()["entries"]
    assert trail[-1]["actor"] == f"operator:{who['user_id']}"

    # a desk user: the activation code shown once; they activate and sign in elsewhere
    section = page.locator(f"#bank-{gamma['bank_id']}")
    section.locator("summary").click()
    section.locator("input[name=email]").fill("trader@gama.example")
    section.locator("input[name=full_name]").fill("Gül Gama")
    section.locator("select[name=role]").select_option("trader")
    section.locator("form.new-user button").click()
    page.wait_for_selector("#shown-activation-code")
    code = page.locator("#shown-activation-code").inner_text().strip()
    check_page(page, watch, "operator-banks", screenshots)
    page.reload()
    assert page.locator("#shown-activation-code").count() == 0 and code not in page.content()
    # the code was lost before use: a new one, shown once; the first one is void
    first = code
    page.locator(f"#bank-{gamma['bank_id']} tr[data-user='trader@gama.example'] "
                 "form[action$='/activation-code'] button").click()
    page.wait_for_selector("#shown-activation-code")
    code = page.locator("#shown-activation-code").inner_text().strip()
    assert code != first and "trader@gama.example" in page.locator("#once-h").inner_text()
    check_page(page, watch, "operator-activation-renewed", screenshots)
    page.reload()
    assert page.locator("#shown-activation-code").count() == 0 and code not in page.content()
    desk_ctx = browser.new_context()
    desk = desk_ctx.new_page()
    desk_watch = Watch("desk")
    desk_totp = desk_activate(desk, base, {"email": "trader@gama.example",
                                           "activation_code": code}, desk_watch, screenshots,
                              False)
    desk_login(desk, base, "trader@gama.example", desk_totp)
    assert "Gül Gama" in desk.locator(".who").inner_text()

    # the bank's client secret rotated: the new one shown once, the old one refused
    page.goto(base + "/operator/banks")
    page.locator(f"#bank-{gamma['bank_id']} form.rotate button").click()
    page.wait_for_selector("#shown-secret")
    rotated = page.locator("#shown-secret").inner_text().strip()
    assert rotated != secret and page.locator("#shown-client-id").inner_text() == client_id
    check_page(page, watch, "operator-secret-rotated", screenshots)
    assert token_status(api, client_id, secret) == 401
    assert token_status(api, client_id, rotated) == 200
    page.reload()
    assert page.locator("#shown-secret").count() == 0 and rotated not in page.content()

    # the desk user deactivated: their page in the other browser signs them out
    row = page.locator(f"#bank-{gamma['bank_id']} tr[data-user='trader@gama.example']")
    assert row.locator(".user-state").inner_text() == "etkin"
    row.locator("button.danger").click()
    page.wait_for_selector("#done")
    row = page.locator(f"#bank-{gamma['bank_id']} tr[data-user='trader@gama.example']")
    assert row.locator(".user-state").inner_text() == "devre dışı"
    assert row.locator("button").count() == 0
    desk.goto(base + "/desk/rounds")
    desk.wait_for_url(re.compile(r"/desk/login"))
    assert desk.locator(".who").count() == 0
    trail = api.http.get("/v1/admin/audit", params={"actor": f"operator:{who['user_id']}"},
                         headers=api.admin).json()["entries"]
    assert {"bank_created", "desk_user_created", "client_secret_rotated",
            "desk_user_deactivated"} <= {e["action"] for e in trail}

    # the console's language: English by choice
    page.goto(base + "/operator/audit")
    page.locator("#lang-switch").click()
    page.wait_for_url(re.compile(r"/operator/audit$"))
    assert page.locator("h1").inner_text() == "Audit trail"
    assert page.locator("html").get_attribute("lang") == "en"
    check_page(page, watch, "operator-audit-en", screenshots)

    # a form without its CSRF token is refused, and nothing is made
    r = page.request.post(base + "/operator/banks", form={"bank_code": "OPNOCSRF",
                                                          "name": "Yok Bankası"})
    assert r.status == 403
    codes = {b["bank_code"] for b in api.http.get("/v1/admin/banks",
                                                   headers=api.admin).json()["banks"]}
    assert "OPNOCSRF" not in codes

    for url, status, headers in watch.documents:
        if "/operator" not in url:
            continue
        csp = headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "style-src 'self'" in csp, url
        assert "unsafe-inline" not in csp, url
        assert headers.get("x-frame-options") == "DENY", url
        assert status < 500, url
    desk_ctx.close()
    ctx.close()


def _session(base: str, login_path: str, email: str, password: str, totp: pyotp.TOTP,
             home: str) -> httpx.Client:
    """A browser session signed in on a page, as a person does (CSRF token, password, code)."""
    c = httpx.Client(base_url=base, timeout=30)
    form = c.get(login_path)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    r = c.post(login_path, data={"csrf": csrf.group(1), "email": email, "password": password,
                                 "code": totp.at(time.time() + 30)})
    assert r.status_code == 303 and r.headers["location"] == home, r.text
    own = re.search(r'<meta name="csrf" content="([^"]+)"', c.get(home).text)
    assert own is not None
    c.headers["x-csrf-token"] = own.group(1)  # the session's own token: forms pass CSRF
    return c


def test_each_kind_of_session_stays_in_its_own_part_of_the_site(
        servers: Callable[..., ServerProcess], browser: Any, screenshots: Path) -> None:
    """A desk user's and an exporter's sessions get the console's sign-in from every console
    page (GET and POST alike, nothing made), and an operator's session the desk's and the
    exporter's sign-in from theirs."""
    from gateway.pages import desk, desk_users, exporter, exporter_apply, operator, operator_banks

    srv = servers()
    base = srv.base_url
    api = Api(base)
    bank = api.create_bank()
    rnd = api.open_round()
    made = api.http.post("/v1/admin/operators", json={
        "email": "ops@kgf.example", "full_name": "Op Two"}, headers=api.admin).json()
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = Watch("operator")
    op_totp = operator_activates(page, base, made, watch, screenshots)
    user = new_desk_user(api, bank)
    desk_totp = desk_activate(page, base, user, watch, screenshots, False)
    x = register_exporter(api, login=False)
    sessions = {
        "desk": _session(base, "/desk/login", user["email"], "a desk password, long enough",
                         desk_totp, "/desk/rounds"),
        "exporter": _session(base, "/exporter/login", x["email"], x["password"], x["totp"],
                             "/exporter/applications"),
        "operator": _session(base, "/operator/login", made["email"], PASSWORD, op_totp,
                             "/operator"),
    }
    ids = {"round_id": rnd["round_id"], "application_id": rnd["application_id"],
           "bank_id": bank["bank_id"], "desk_user_id": user["user_id"],
           "user_id": user["user_id"], "offer_id": "off_x"}
    parts = {"operator": (operator.ROUTES + operator_banks.ROUTES, "/operator/login"),
             "desk": (desk.ROUTES + desk_users.ROUTES, "/desk/login"),
             "exporter": (exporter.ROUTES + exporter_apply.ROUTES, "/exporter/login")}
    public = {"/operator/login", "/operator/activate", "/desk/login", "/desk/activate",
              "/exporter/login", "/exporter/register", "/exporter/activate", "/lang"}
    checked = 0
    for part, (routes, login_path) in parts.items():
        for route in routes:
            path = re.sub(r"{([a-z_]+)}", lambda m: ids[m.group(1)], route.path_format)
            if path in public or path.endswith(("/logout", "/ticket")):
                continue
            for kind, c in sessions.items():
                if kind == part:
                    continue
                for method in sorted(route.methods - {"HEAD"}):
                    r = c.request(method, path, data={"csrf": c.headers["x-csrf-token"],
                                                      "bank_code": "OPNEVER", "name": "Never",
                                                      "email": "never@example.com",
                                                      "full_name": "Never", "role": "viewer"}
                                  if method == "POST" else None)
                    where = (kind, method, path, r.status_code, r.text[:200])
                    assert r.status_code in (303, 401), where  # 401: the pool's rows
                    if r.status_code == 303:
                        assert r.headers["location"].startswith(login_path), where
                    checked += 1
    assert checked > 20
    banks = api.http.get("/v1/admin/banks", headers=api.admin).json()["banks"]
    assert "OPNEVER" not in {b["bank_code"] for b in banks}
    users = api.http.get(f"/v1/admin/banks/{bank['bank_id']}/users", headers=api.admin).json()
    assert "never@example.com" not in {u["email"] for u in users["users"]}
    ctx.close()
