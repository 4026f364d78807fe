"""A bank's user administrator and the exporter's full application form, in a real Chromium
against a real server.

The bank admin (created by the operator's API with role ``admin``) activates, signs in, sees
its own bank's desk users only, is refused a bad e-mail in Turkish, creates a trader (the
activation code shown once), the trader activates and signs in in another browser, the admin
deactivates the trader and the trader's open page session ends (its next request is the
sign-in page; its stream ticket is refused; its login is refused).

The exporter applies with related companies (one row added by the form's own button, no
script) and a preferred bank chosen by its name, sees the field errors next to their rows in
Turkish, then the decision with its reasons worded in Turkish from their codes.

Every page met: CSP, axe-core, screenshots at 390 and 1440 px, and its HTML checked for the
other bank's code, name and id.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser.test_desk import Watch, activate, check_page, login, new_user
from tests.e2e.conftest import register_exporter
from tests.support import Api, ServerProcess


def _csp_everywhere(*watches: Watch) -> None:
    for w in watches:
        assert w.documents, w.name
        for url, _, headers in w.documents:
            csp = headers.get("content-security-policy", "")
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
            assert headers.get("x-frame-options") == "DENY", url


def test_a_bank_admin_creates_a_trader_and_deactivating_them_ends_their_session(
        servers: Callable[..., ServerProcess], browser: Any, screenshots: Path) -> None:
    srv = servers(IGE_ROUND_DURATION="PT10M")
    api, base = Api(srv.base_url), srv.base_url
    mine = api.create_bank("ADMALFA", "Alfa Yönetim Bankası")
    other = api.create_bank("ADMBETA", "Beta Yönetim Bankası")
    foreign_user = new_user(api, other, "trader")
    admin = new_user(api, mine, "admin")  # the operator's API takes the new role
    assert admin["role"] == "admin"

    wa, wt = Watch("admin"), Watch("trader")
    ca, ct = browser.new_context(), browser.new_context()
    pa, pt = ca.new_page(), ct.new_page()
    pa.on("response", wa.on_response)
    pt.on("response", wt.on_response)
    totp_a = activate(pa, base, admin, wa, screenshots, shoot=False)
    login(pa, base, admin["email"], totp_a)
    assert "kullanıcı yöneticisi" in pa.locator(".who").inner_text()
    pa.locator("#nav-users").click()
    pa.wait_for_url(re.compile(r"/desk/users$"))
    listed = pa.locator("#users tbody").inner_text()
    assert admin["email"] in listed and foreign_user["email"] not in listed
    check_page(pa, wa, "desk-users", screenshots)

    # the API's parser: a bad e-mail is refused next to its field, in Turkish
    pa.fill("#user-full_name", "Deniz Kaya")
    pa.fill("#user-email", "not-an-address")
    pa.select_option("#user-role", "trader")
    pa.locator("form[action='/desk/users'] button[type=submit]").click()
    pa.wait_for_selector("#user-email-error")
    assert pa.locator("#user-email-error").inner_text() == "Geçerli bir e-posta adresi değil."
    assert pa.locator("#user-full_name").input_value() == "Deniz Kaya"
    check_page(pa, wa, "desk-users-field-errors", screenshots)
    email = f"trader-{int(time.time() * 1000) % 10**8}@alfa.example"
    pa.fill("#user-email", email)
    pa.select_option("#user-role", "trader")
    pa.locator("form[action='/desk/users'] button[type=submit]").click()
    pa.wait_for_selector("#activation-code")
    code = pa.locator("#activation-code").inner_text().strip()
    assert len(code) >= 24
    check_page(pa, wa, "desk-users-created", screenshots)
    pa.goto(base + "/desk/users")  # shown once: not on the next rendering
    assert pa.locator("#activation-code").count() == 0 and code not in pa.content()
    row = pa.locator("#users tbody tr", has_text=email)
    assert "etkinleştirme bekliyor" in row.inner_text() and "işlemci" in row.inner_text()

    # the trader activates with the code and signs in, in another browser
    trader = {"email": email, "activation_code": code}
    totp_t = activate(pt, base, trader, wt, screenshots, shoot=False)
    login(pt, base, email, totp_t)
    assert "işlemci" in pt.locator(".who").inner_text()
    assert pt.locator("#nav-users").count() == 0  # a trader does not manage users
    pt.goto(base + "/desk/users")
    assert "kullanıcı yöneticisi yönetir" in pt.locator("main").inner_text()
    pt.goto(base + "/desk/rounds")
    pt.wait_for_selector("#pool-rows")
    pa.goto(base + "/desk/users")
    assert "etkin" in pa.locator("#users tbody tr", has_text=email).inner_text()

    # the admin deactivates the trader: the trader's open session ends
    users = api.http.get(f"/v1/admin/banks/{mine['bank_id']}/users", headers=api.admin).json()
    trader_id = next(u["user_id"] for u in users["users"] if u["email"] == email)
    pa.locator(f"#user-{trader_id} button[type=submit]").click()
    pa.wait_for_selector("#deactivated")
    assert "devre dışı" in pa.locator(f"#user-{trader_id}").inner_text()
    assert pa.locator(f"#user-{trader_id} button").count() == 0
    check_page(pa, wa, "desk-users-deactivated", screenshots)
    ticket = pt.evaluate("""() => fetch('/desk/ticket', {method: 'POST', headers:
        {'X-CSRF-Token': document.querySelector('meta[name=csrf]').content}})
        .then(r => r.status)""")
    assert ticket == 403
    pt.reload()
    pt.wait_for_url(re.compile(r"/desk/login\?next=/desk/rounds$"))
    pt.fill("#email", email)
    pt.fill("#password", "a desk password, long enough")
    pt.fill("#code", totp_t.at(time.time() + 60))
    pt.locator("main form button[type=submit]").click()
    pt.wait_for_selector("#login-error")
    assert pt.url.endswith("/desk/login")

    # audited with the person; the other bank's users untouched and never shown
    trail = api.http.get("/v1/admin/audit", headers=api.admin).json()["entries"]
    mine_acts = [(e["action"], e["detail"].get("user_id")) for e in trail
                 if e["actor"] == f"desk:{admin['user_id']}"]
    assert ("desk_user_created", trader_id) in mine_acts
    assert any(uid == trader_id and action != "desk_user_created"
               for action, uid in mine_acts), mine_acts
    for html in wa.html + wt.html:
        for secret in (other["bank_code"], other["name"], other["bank_id"],
                       foreign_user["email"], foreign_user["user_id"]):
            assert secret not in html
    _csp_everywhere(wa, wt)
    ca.close()
    ct.close()


def test_an_exporter_applies_with_its_risk_group_and_a_preferred_bank(
        servers: Callable[..., ServerProcess], browser: Any, screenshots: Path) -> None:
    srv = servers(IGE_ROUND_DURATION="PT10M")
    api, base = Api(srv.base_url), srv.base_url
    preferred = api.create_bank("TERCIH", "Tercih Edilen Bankası")
    api.create_bank("DIGER", "Diğer Katılımcı Bankası")
    who = register_exporter(api, login=False)
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = Watch("exporter")
    page.on("response", watch.on_response)
    page.goto(base + "/exporter/login")
    page.fill("#email", who["email"])
    page.fill("#password", who["password"])
    page.fill("#code", who["totp"].at(time.time() + 30))
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/exporter/applications$"))
    page.goto(base + "/exporter/apply")
    page.fill("#tax_id", "1100000014")
    page.check("#consent")
    page.locator("form[action='/exporter/companies'] button").click()
    page.wait_for_selector("#matched")

    # two rows to start with; the form's own button adds a third, keeping what was typed
    assert page.locator(".related-row").count() == 2
    page.fill("#app-loan_amount", "5000000,00")
    page.fill("#app-guarantee_amount", "5000000,00")
    page.fill("#rc-0-tax_id", "1100000089")
    page.select_option("#rc-0-relation", "partner")
    page.fill("#rc-0-share_pct", "30")
    page.locator("#add-row").click()
    page.wait_for_selector("#rc-2-tax_id")
    assert page.locator(".related-row").count() == 3
    assert page.locator("#rc-0-tax_id").input_value() == "1100000089"
    assert page.locator("#app-loan_amount").input_value() == "5000000.00"
    assert "Tercih Edilen Bankası" in page.locator("#preferred").inner_text()
    # errors next to their rows, in Turkish: a bad tax id, a share above 100, a duplicate
    page.fill("#rc-1-tax_id", "123")
    page.select_option("#rc-1-relation", "sister")
    page.fill("#rc-1-share_pct", "150")
    page.fill("#rc-2-tax_id", "1100000089")
    page.select_option("#rc-2-relation", "affiliate")
    page.fill("#rc-2-share_pct", "10")
    page.check(f"#pb-{preferred['bank_code']}")
    page.locator("#apply").click()
    page.wait_for_selector("#rc-1-tax_id-error")
    assert page.locator("#rc-1-tax_id-error").inner_text() == \
        "Geçerli bir vergi kimlik numarası değil (VKN: 10 hane veya TCKN: 11 hane)."
    assert page.locator("#rc-1-share_pct-error").inner_text() == \
        "0 ile 100 arasında bir yüzde girin."
    assert page.locator("#rc-2-tax_id-error").inner_text() == \
        "Her ilişkili firmayı yalnızca bir kez girin."
    assert page.locator("#rc-1-tax_id").get_attribute("aria-invalid") == "true"
    assert page.locator(f"#pb-{preferred['bank_code']}").is_checked()
    check_page(page, watch, "exporter-apply-related-errors", screenshots)

    # the risk group: a subsidiary in concordat, 60 % owned, rejects (a hard rule)
    page.fill("#rc-1-tax_id", "1100000071")
    page.select_option("#rc-1-relation", "subsidiary")
    page.fill("#rc-1-share_pct", "60")
    page.fill("#rc-2-tax_id", "")
    page.select_option("#rc-2-relation", "")
    page.fill("#rc-2-share_pct", "")
    page.locator("#apply").click()
    page.wait_for_url(re.compile(r"/exporter/applications/app_[A-Za-z0-9_-]+$"))
    assert "reddedildi" in page.locator("#decision-h").inner_text()
    reasons = page.locator("#reasons").inner_text()
    assert "iflas, tasfiye veya konkordato" in reasons
    assert "geçme notu" in reasons and "pass mark" not in reasons
    check_page(page, watch, "exporter-decision-reasons", screenshots)
    app_id = page.url.rsplit("/", 1)[1]
    seen = api.http.get(f"/v1/admin/applications/{app_id}", headers=api.admin).json()
    assert seen["status"] == "rejected"
    assert seen["request"]["related_companies"] == [
        {"tax_id": "1100000089", "relation": "partner", "share_pct": "30.00"},
        {"tax_id": "1100000071", "relation": "subsidiary", "share_pct": "60.00"}]
    assert seen["request"]["preferred_banks"] == [preferred["bank_code"]]
    assert "bankruptcy_in_group" in [r["code"] for r in seen["decision"]["reasons"]]
    # English: the same reasons, worded in English from their codes
    page.locator("#lang-switch").click()
    page.wait_for_selector("html[lang=en]")
    assert "Bankruptcy, liquidation or concordat" in page.locator("#reasons").inner_text()
    _csp_everywhere(watch)
    ctx.close()
