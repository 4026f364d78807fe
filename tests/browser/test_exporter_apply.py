"""The exporter applies on the pages, in a real Chromium against a real server: the company
matched in the (simulated) trade registry with the consent text shown and ticked, the
application form with the API's rules and its errors next to the fields, the decision at once
and the round's countdown, with no offer data."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser.test_desk import Watch, check_page, wait_js
from tests.e2e.conftest import register_exporter
from tests.support import Api, ServerProcess


def test_an_exporter_matches_its_company_and_applies_through_the_forms(
        servers: Callable[..., ServerProcess], browser: Any, screenshots: Path) -> None:
    srv = servers(IGE_ROUND_DURATION="PT10M")
    api = Api(srv.base_url)
    who = register_exporter(api, login=False)  # activated with the current code
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = Watch("exporter")
    page.on("response", watch.on_response)
    page.goto(srv.base_url + "/exporter/login")
    page.fill("#email", who["email"])
    page.fill("#password", who["password"])
    page.fill("#code", who["totp"].at(time.time() + 30))
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/exporter/applications$"))
    page.locator("#new-application").click()
    page.wait_for_selector("#consent-text")
    assert page.locator("#app-loan_amount").count() == 0  # no form before a company
    check_page(page, watch, "exporter-apply-company", screenshots)

    # the consent must be given, and the registry must know the company
    page.fill("#tax_id", "1100000014")
    page.locator("form[action='/exporter/companies'] button").click()
    page.wait_for_selector("#match-error")
    assert "kutuyu işaretleyin" in page.locator("#match-error").inner_text()
    page.fill("#tax_id", "1100000014")
    page.check("#consent")
    page.locator("form[action='/exporter/companies'] button").click()
    page.wait_for_selector("#matched")
    assert "Anadolu Tekstil" in page.locator("#app-company_id").inner_text()

    # the application form: the rules' errors next to their fields, in Turkish
    page.fill("#app-loan_amount", "5000000,00")
    page.fill("#app-guarantee_amount", "6000000,00")
    page.locator("#apply").click()
    page.wait_for_selector("#app-guarantee_amount-error")
    assert page.locator("#app-guarantee_amount-error").inner_text() == \
        "Kefalet tutarı kredi tutarını aşamaz."
    check_page(page, watch, "exporter-apply-form-errors", screenshots)
    page.fill("#app-guarantee_amount", "5000000,00")
    page.locator("#apply").click()
    page.wait_for_url(re.compile(r"/exporter/applications/app_[A-Za-z0-9_-]+$"))

    # the decision at once, the round open with its countdown, and no offer data
    assert "onaylandı" in page.locator("#decision-h").inner_text()
    page.wait_for_selector("#no-offers")
    wait_js(page, "/\\d\\d:\\d\\d:\\d\\d/.test(document.querySelector('.countdown')"
                  ".textContent)")
    check_page(page, watch, "exporter-status-after-applying", screenshots)
    app_id = page.url.rsplit("/", 1)[1]
    seen = api.http.get(f"/v1/admin/applications/{app_id}", headers=api.admin).json()
    assert (seen["status"], seen["user_id"], seen["company"]["tax_id"]) == \
        ("approved", who["user_id"], "1100000014")
    assert seen["round"]["state"] == "open"
    for _, _, headers in watch.documents:
        assert "script-src 'self'" in headers.get("content-security-policy", "")
    ctx.close()

