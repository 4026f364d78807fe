"""The bank desk and the exporter in a real Chromium, end to end against real server processes:
two desk users of two banks in two browser contexts watch one round live, through the forms,
the stream and a cut of the stream, until it closes on its own; the exporter, in a third, sees
no offer data before the close, then the results, and accepts once.

Every page met is checked on the way: its Content-Security-Policy and frame headers, axe-core
(no serious or critical violation), screenshots at 390 px and 1440 px (var/screenshots/), and
its HTML collected for the masking check at the end (no page of one bank ever names the other
bank: its code, name, id, client id or user).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp

from gateway.pages.i18n import Formats
from tests.support import OFFER_BODY, Api, ServerProcess

ROUND_SECONDS = 75  # long enough for every step below on a loaded machine; it closes by itself
PASSWORD = "a desk password, long enough"
WAIT_MS = 8000  # "without reload" changes: waited for up to this long, never slept for


class Watch:
    """What the test saw of one browser context: every document response's headers and every
    page's HTML (for the masking check)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.documents: list[tuple[str, int, dict[str, str]]] = []
        self.html: list[str] = []

    def on_response(self, response: Any) -> None:
        if response.request.resource_type == "document":
            self.documents.append((response.url, response.status, response.all_headers()))


def check_page(page: Any, watch: Watch, name: str, shots: Path) -> None:
    """axe-core, both screenshots and the page's HTML for the masking check."""
    from axe_playwright_python.sync_playwright import Axe

    page.wait_for_load_state("load")
    watch.html.append(page.content())
    found = Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found
           if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{name}: axe-core: {bad}"
    for width, height in ((390, 844), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def new_user(api: Api, bank: dict[str, Any], role: str = "trader") -> dict[str, Any]:
    email = f"desk-{bank['bank_code'].lower()}-{int(time.time() * 1000) % 10**8}@example.com"
    r = api.http.post(f"/v1/admin/banks/{bank['bank_id']}/users",
                      json={"email": email, "full_name": f"Trader {bank['bank_code']}",
                            "role": role}, headers=api.admin)
    assert r.status_code == 201, r.text
    out = dict(r.json())
    assert out["active"] is False and out["activation_url"] == "/desk/activate"
    return out


def activate(page: Any, base: str, user: dict[str, Any], watch: Watch, shots: Path,
             shoot: bool) -> pyotp.TOTP:
    """The two steps of activation as a person does them: code and password, then the QR
    page and a first one-time code."""
    page.goto(base + "/desk/activate")
    if shoot:
        check_page(page, watch, "desk-activate", shots)
    page.fill("#email", user["email"])
    page.fill("#activation_code", user["activation_code"])
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_selector("#totp-secret")
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml")
    if shoot:
        check_page(page, watch, "desk-activate-qr", shots)
    totp = pyotp.TOTP(page.locator("#totp-secret").inner_text().strip())
    page.fill("#code", totp.now())
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/desk/login\?activated=1"))
    return totp


def login(page: Any, base: str, email: str, totp: pyotp.TOTP) -> None:
    page.goto(base + "/desk/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#code", totp.at(time.time() + 30))  # activation used the current time step
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/desk/rounds$"))


def book_rows(page: Any) -> list[dict[str, Any]]:
    return list(page.eval_on_selector_all("#book-rows tr", """rows => rows.map(r => ({
        ref: r.dataset.ref, cells: Array.from(r.children).map(c => c.textContent.trim()),
        cls: r.className}))"""))


def wait_js(page: Any, expression: str, timeout_ms: int = WAIT_MS) -> None:
    """Wait until a JavaScript expression is true in the page, polling from here: the page's
    CSP (no eval) refuses Playwright's in-page ``wait_for_function``."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            rows = book_rows(page) if page.locator("#book-rows").count() else []
            raise AssertionError(f"not true within {timeout_ms} ms: {expression}; "
                                 f"the book: {rows}; connection: "
                                 f"{page.evaluate('document.body.dataset.conn')}")
        time.sleep(0.05)


def wait_rows(page: Any, n: int) -> None:
    wait_js(page, f"document.querySelectorAll('#book-rows tr').length === {n}")


def same_as_api(page: Any, api: Api, headers: dict[str, str], round_id: str) -> None:
    """The page's book, built from the stream, is the book a fresh load gives (the numbers
    formatted by the page's script as Babel formats them for the page's language)."""
    r = api.http.get(f"/v1/bank/rounds/{round_id}/book", headers=headers)
    assert r.status_code == 200, r.text
    fmt = Formats(page.evaluate("document.documentElement.lang"))
    want = [(o["ref"], str(o["rank"]), fmt.pct(o["apr"]), fmt.pct(o["annual_rate"]),
             str(o["version"])) for o in r.json()["offers"]]
    got = [(row["ref"], re.sub(r"\D.*", "", row["cells"][0]), row["cells"][2],
            row["cells"][3], row["cells"][9]) for row in book_rows(page)]
    assert got == want


def register_exporter(page: Any, base: str, email: str, watch: Watch, shots: Path
                      ) -> pyotp.TOTP:
    """Register, activate with the QR page's key, sign in: as a person does, on the pages."""
    page.goto(base + "/exporter/register")
    check_page(page, watch, "exporter-register", shots)
    page.fill("#reg-full_name", "Ayşe Yılmaz")
    page.fill("#reg-national_id", "10000000146")
    page.fill("#reg-email", email)
    page.fill("#reg-mobile", "+905321234567")
    page.fill("#reg-password", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_selector("#totp-secret")
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml")
    check_page(page, watch, "exporter-activate-qr", shots)
    totp = pyotp.TOTP(page.locator("#totp-secret").inner_text().strip())
    page.fill("#code", totp.now())
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/exporter/login\?activated=1"))
    check_page(page, watch, "exporter-login", shots)
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#code", totp.at(time.time() + 30))
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/exporter/applications$"))
    return totp


def test_two_desks_and_the_exporter_follow_one_round_live_until_it_closes(
        servers: Callable[..., ServerProcess], browser: Any, screenshots: Path) -> None:
    env = {"IGE_ROUND_DURATION": f"PT{ROUND_SECONDS}S", "IGE_BINDING_DURATION": "PT10M"}
    front = servers(**env)  # the browsers' server: pages and their stream
    back = servers(**env)  # the API clients' server (the same deployment)
    api = Api(back.base_url)
    base = front.base_url
    b1 = api.create_bank("PGALPHA", "Alfa Sayfa Bankası")
    b2 = api.create_bank("PGBETA", "Beta Sayfa Bankası")
    u1, u2 = new_user(api, b1), new_user(api, b2)
    h1, h2 = api.bank_token(b1), api.bank_token(b2)

    w1, w2 = Watch("bank 1"), Watch("bank 2")
    c1, c2 = browser.new_context(), browser.new_context()
    p1, p2 = c1.new_page(), c2.new_page()
    p1.on("response", w1.on_response)
    p2.on("response", w2.on_response)

    # -- activation (QR) and login, for both
    t1 = activate(p1, base, u1, w1, screenshots, shoot=True)
    t2 = activate(p2, base, u2, w2, screenshots, shoot=False)
    p1.goto(base + "/desk/login")
    check_page(p1, w1, "desk-login", screenshots)
    login(p1, base, u1["email"], t1)
    login(p2, base, u2["email"], t2)
    w3 = Watch("exporter")
    c3 = browser.new_context()
    p3 = c3.new_page()
    p3.on("response", w3.on_response)
    exporter_email = f"exporter-{int(time.time() * 1000) % 10**8}@example.com"
    register_exporter(p3, base, exporter_email, w3, screenshots)
    exporter_id = api.http.get("/v1/admin/exporters", params={"email": exporter_email},
                               headers=api.admin).json()["exporters"][0]["user_id"]

    # -- bank 1 on the pool: a round opens and appears without a reload
    p1.evaluate("window.__sameDocument = true")
    rnd = api.open_round(exporter_user_id=exporter_id)
    rid = rnd["round_id"]
    p1.wait_for_selector(f"#pool-rows tr[data-round='{rid}']")
    assert p1.evaluate("window.__sameDocument") is True
    row = p1.locator(f"#pool-rows tr[data-round='{rid}']").inner_text()
    assert "Anadolu Tekstil" in row and "₺5.000.000,00" in row and "24 ay" in row
    check_page(p1, w1, "desk-pool", screenshots)

    # -- the round before bank 1's first offer: the application, the form, and no book
    p1.goto(f"{base}/desk/rounds/{rid}")
    p2.goto(f"{base}/desk/rounds/{rid}")
    assert p1.locator("#book-locked").is_visible()
    assert not p1.locator("#book-wrap").is_visible()
    assert p1.locator("#book-rows tr").count() == 0
    check_page(p1, w1, "desk-round-before-offer", screenshots)

    # -- the form refuses with the API's rules, errors next to the fields, in Turkish
    p1.fill("#new-annual_rate", "0")
    p1.fill("#new-amount", "6000000,00")
    p1.locator("#new-annual_rate").locator("xpath=ancestor::form").locator(
        "button[type=submit]").click()
    p1.wait_for_selector("#new-annual_rate-error")
    assert p1.locator("#new-annual_rate-error").inner_text() == "Sıfırdan büyük olmalı."
    assert p1.locator("#new-amount-error").inner_text() == \
        "Talep edilen kredi tutarını aşamaz."
    assert p1.locator("#new-annual_rate").get_attribute("aria-invalid") == "true"
    check_page(p1, w1, "desk-round-field-errors", screenshots)

    # -- bank 1 offers through the form: its book shows only its own offer
    p1.fill("#new-annual_rate", "38,50")
    p1.fill("#new-amount", "5000000,00")
    p1.locator("#new-annual_rate").locator("xpath=ancestor::form").locator(
        "button[type=submit]").click()
    p1.wait_for_selector("#done")
    wait_rows(p1, 1)
    rows = book_rows(p1)
    assert "mine" in rows[0]["cls"] and "(siz)" in rows[0]["cells"][1]
    assert p1.locator("#book-locked").is_hidden()
    wait_js(p1, "document.body.dataset.conn === 'live'")

    # -- bank 2 offers through the API: bank 1's book updates without a reload, and bank 2's
    # page (which showed no book) gets its book the moment its bank has an offer
    p1.evaluate("window.__sameDocument = true")
    p2.evaluate("window.__sameDocument = true")
    r = api.offer(h2, rid, annual_rate="39.00")
    assert r.status_code == 201, r.text
    b2_offer = r.json()["offer_id"]
    wait_rows(p1, 2)
    wait_rows(p2, 2)
    assert p1.evaluate("window.__sameDocument") is True
    assert p2.evaluate("window.__sameDocument") is True
    same_as_api(p1, api, h1, rid)
    same_as_api(p2, api, h2, rid)
    check_page(p1, w1, "desk-round-book", screenshots)

    # -- the exporter, meanwhile: its application, the countdown, and no offer data at all
    p3.goto(base + "/exporter/applications")
    check_page(p3, w3, "exporter-applications", screenshots)
    p3.locator("main table a").first.click()
    p3.wait_for_selector("#no-offers")
    assert p3.locator("#results").count() == 0 and p3.locator("svg").count() == 0
    wait_js(p3, "/\\d\\d:\\d\\d:\\d\\d/.test("
                "document.querySelector('.countdown').textContent)")
    check_page(p3, w3, "exporter-status-open", screenshots)
    before_close = p3.content()
    for secret in (b1["bank_code"], b1["name"], b2["bank_code"], b2["name"], "38,50", "39,00",
                   "Banka "):
        assert secret not in before_close, f"the exporter's page shows {secret!r} before the close"

    # -- bank 2 switches to English (remembered), bank 1 revises to below bank 2's offer
    # ... bank 2 takes the lead first, so that bank 1's revision moves it up
    r = api.http.put(f"/v1/bank/rounds/{rid}/offers/{b2_offer}", headers=h2,
                     json={**OFFER_BODY, "annual_rate": "37.00"})
    assert r.status_code == 200, r.text
    wait_js(p1, "document.querySelector('#book-rows tr.mine .rank')"
                ".textContent.trim().startsWith('2')")
    p2.locator("#lang-switch").click()
    p2.wait_for_selector("html[lang='en']")
    p2.goto(f"{base}/desk/rounds/{rid}")  # remembered across pages
    assert p2.locator("html").get_attribute("lang") == "en"
    wait_rows(p2, 2)
    p2.evaluate("window.__sameDocument = true")
    p1.locator("article.my-offer summary", has_text="Bu teklifi revize et").click()
    p1.fill("#rev-1-annual_rate", "34,00")
    p1.locator("#rev-1-annual_rate").locator("xpath=ancestor::form").locator(
        "button[type=submit]").click()
    p1.wait_for_selector("#done")
    # bank 2, watching, sees bank 1's offer move to the top without a reload, marked as moved
    wait_js(p2, "(() => { const r = document.querySelector('#book-rows tr');"
                " return r && !r.classList.contains('mine') && r.classList.contains('up'); })()")
    assert p2.evaluate("window.__sameDocument") is True
    same_as_api(p2, api, h2, rid)
    check_page(p2, w2, "desk-round-book-en", screenshots)
    p2.locator("#book-section").screenshot(path=str(screenshots / "desk-book-section.png"))
    assert "sürüm 2" in p1.locator("article.my-offer h3").first.inner_text()

    # -- the stream is cut: bank 1's page says so, and after it comes back the book built
    # from the stream (since_seq) is the one a fresh load gives
    p1.evaluate("window.__sameDocument = true")
    front.stop()
    p1.wait_for_selector("#conn:not([hidden])")
    assert "Bağlantı koptu" in p1.locator("#conn").inner_text()
    check_page(p1, w1, "desk-round-connection-lost", screenshots)
    r = api.http.put(f"/v1/bank/rounds/{rid}/offers/{b2_offer}", headers=h2,
                     json={**OFFER_BODY, "annual_rate": "35.50"})
    assert r.status_code == 200, r.text
    front.start()  # the same port; the sessions live in Redis
    p1.wait_for_selector("#conn", state="hidden", timeout=15_000)
    wait_js(p1, "document.body.dataset.conn === 'live'")
    assert p1.evaluate("window.__sameDocument") is True
    same_as_api(p1, api, h1, rid)

    # -- a form posted without its CSRF token is refused, with a page saying so, and so is one
    # with the token from another site's page (its Origin); neither makes an offer
    seq = api.http.get(f"/v1/bank/rounds/{rid}/book", headers=h1).json()["seq"]
    terms = {"annual_rate": "30.00", "amount": "5000000.00", "tenor_months": "24",
             "grace_months": "6", "repayment_every_months": "3", "upfront_fee": "0"}
    refused = c1.request.post(f"{base}/desk/rounds/{rid}/offers", form=terms)
    assert refused.status == 403
    assert "reddedildi" in refused.text()
    assert "content-security-policy" in refused.headers
    token = p1.locator('meta[name="csrf"]').get_attribute("content")
    cross = c1.request.post(f"{base}/desk/rounds/{rid}/offers", form={**terms, "csrf": token},
                            headers={"Origin": "http://elsewhere.example"})
    assert cross.status == 403
    assert api.http.get(f"/v1/bank/rounds/{rid}/book", headers=h1).json()["seq"] == seq

    # -- the round closes on its own: both pages show the final ranks and the reference
    closes = api.http.get(f"/v1/bank/rounds/{rid}", headers=h1).json()["closes_at"]
    left_s = max(0.0, _seconds_until(closes))
    for page in (p1, p2):
        page.wait_for_selector("#reference", timeout=int((left_s + 30) * 1000))
    result1 = api.http.get(f"/v1/bank/rounds/{rid}/result", headers=h1).json()
    assert p1.locator("#reference").inner_text() == result1["reference_number"]
    assert p2.locator("#reference").inner_text() == result1["reference_number"]
    ranks1 = [o["final_rank"] for o in result1["my_offers"]]
    assert p1.locator("#final-ranks tbody td.num").first.inner_text() == str(ranks1[0])
    assert "İhracatçı henüz seçim yapmadı." in p1.locator("#chosen").inner_text()
    assert "has not chosen yet" in p2.locator("#chosen").inner_text()
    check_page(p1, w1, "desk-round-closed", screenshots)
    check_page(p2, w2, "desk-round-closed-en", screenshots)

    # -- the exporter's page turned into the results by itself: table, chart, reference
    p3.wait_for_selector("#reference", timeout=15_000)
    assert p3.locator("#reference").inner_text() == result1["reference_number"]
    assert p3.locator("#results tbody tr").count() == 2
    assert p3.locator("#results tbody tr").first.locator("th").inner_text() == b1["name"]
    assert "★" in p3.locator("figure.chart").inner_text()
    check_page(p3, w3, "exporter-results", screenshots)
    p3.locator("section:has(#results-h)").screenshot(
        path=str(screenshots / "exporter-results-section.png"))
    # accepting asks for confirmation, then works once
    p3.locator("#accept").click()
    p3.wait_for_selector("#accept-error")
    assert "onaylamak" in p3.locator("#accept-error").inner_text()
    p3.check("#confirm")
    p3.locator("#accept").click()
    p3.wait_for_selector("#accepted")
    assert p3.locator("#results tr.chosen th").inner_text() == b1["name"]
    assert p3.locator("#accept").count() == 0  # nothing left to accept
    check_page(p3, w3, "exporter-accepted", screenshots)
    token3 = p3.locator('meta[name="csrf"]').get_attribute("content")
    app_id = p3.url.split("/exporter/applications/")[1].split("?")[0]
    again = c3.request.post(f"{base}/exporter/applications/{app_id}/accept", form={
        "csrf": token3, "confirm": "1", "offer_id": result1["my_offers"][0]["offer_id"]})
    assert again.status == 409 and "zaten kabul edildi" in again.text()
    p1.reload()
    assert "İhracatçı bankanızı seçti." in p1.locator("#chosen").inner_text()
    p2.reload()
    assert "chose another offer" in p2.locator("#chosen").inner_text()

    # -- what each bank's pages showed never named the other bank
    for watch, other, other_user in ((w1, b2, u2), (w2, b1, u1)):
        html = "\n".join(watch.html)
        for secret in (other["bank_code"], other["name"], other["bank_id"],
                       other["client_id"], other_user["email"], other_user["user_id"]):
            assert secret not in html, f"{watch.name}'s pages show {secret!r}"
    # -- and every page came with its security headers
    for watch in (w1, w2, w3):
        assert watch.documents
        for url, _status, headers in watch.documents:
            csp = headers.get("content-security-policy", "")
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
            assert "default-src 'self'" in csp and "object-src 'none'" in csp, url
            assert headers.get("x-frame-options") == "DENY", url
    # -- signing out ends the session: its cookie opens nothing any more
    p1.locator("form[action='/desk/logout'] button").click()
    p1.wait_for_url(re.compile(r"/desk/login$"))
    gone = c1.request.get(f"{base}/desk/rounds/{rid}", max_redirects=0)
    assert gone.status == 303 and gone.headers["location"].startswith("/desk/login")
    assert c1.request.post(f"{base}/desk/ticket", headers={"X-CSRF-Token": token}).status == 403
    c1.close()
    c2.close()
    c3.close()


def _seconds_until(iso: str) -> float:
    from datetime import UTC, datetime

    return (datetime.fromisoformat(iso.replace("Z", "+00:00"))
            - datetime.now(UTC)).total_seconds()
