"""Keyboard only: each kind of person signs in, and a desk trader offers, without a mouse;
every control of the main pages of each part is reached with Tab, in a real Chromium against
the demo (``ige demo``, as ``make run`` starts it: its data makes every page non-empty).

What "usable by keyboard" means here: every visible link, button, field and summary of the
page takes the focus by Tab alone (none is skipped or trapped), a focused control shows it
(an outline), and the flows a person needs most end where they should by typing and Enter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from gateway.redis_server import free_port
from tests.e2e.test_demo import Demo, credentials, start

pytestmark = pytest.mark.slow

FOCUSABLE = ("a[href], button, input:not([type=hidden]), select, textarea, summary, "
             "[tabindex]:not([tabindex='-1'])")
#: marks every visible focusable control with its index (not the fields of a closed
#: ``<details>``: its summary opens it); returns how many there are
MARK = """(sel) => {
  const els = [...document.querySelectorAll(sel)].filter(e => !e.disabled
      && e.checkVisibility({checkVisibilityCSS: true, contentVisibilityAuto: true}));
  els.forEach((e, i) => { e.dataset.kb = String(i); });
  return els.length;
}"""
ACTIVE = "() => document.activeElement ? (document.activeElement.dataset.kb ?? null) : null"
OUTLINE = """() => { const s = getComputedStyle(document.activeElement);
  return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0
      || s.boxShadow !== 'none'; }"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = start(tmp_path_factory.mktemp("kb") / "var", free_port())
    try:
        yield d
    finally:
        d.stop()


def tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Tab until ``selector`` has the focus (fails if it never does)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} never took the focus by Tab")


def every_control_by_tab(page: Any, name: str) -> None:
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); "
                  "window.scrollTo(0, 0); }")
    n = page.evaluate(MARK, FOCUSABLE)
    assert n > 0, name
    seen: set[str] = set()
    unmarked_outline = []
    for _ in range(2 * n + 10):  # a few unmarked stops (the document) are allowed
        page.keyboard.press("Tab")
        got = page.evaluate(ACTIVE)
        if got is not None:
            seen.add(got)
            if not page.evaluate(OUTLINE):
                unmarked_outline.append(got)
        if len(seen) == n:
            break
    missed = sorted(set(map(str, range(n))) - seen, key=int)
    assert not missed, (name, [page.evaluate(
        "(i) => document.querySelector(`[data-kb='${i}']`).outerHTML.slice(0, 120)", m)
        for m in missed[:5]])
    assert not unmarked_outline, (name, "focused with no visible outline", unmarked_outline[:5])


def sign_in_by_keyboard(page: Any, base: str, part: str, who: dict[str, Any], step: int,
                        home: str) -> None:
    page.goto(f"{base}/{part}/login")
    tab_to(page, "#email")
    page.keyboard.type(who["email"])
    tab_to(page, "#password")
    page.keyboard.type(who["password"])
    tab_to(page, "#code")
    page.keyboard.type(pyotp.TOTP(pyotp.parse_uri(who["totp_uri"]).secret).at(
        time.time() + 30 * step))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.startswith(base + home), page.url


def test_a_desk_trader_signs_in_and_offers_by_keyboard_alone(demo: Demo, browser: Any,
                                                             screenshots: Path) -> None:
    trader = next(u for u in credentials(demo.data)["desk_users"].values()
                  if u["bank"] == "ZIRAAT")  # it has offered in no demo round
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in_by_keyboard(page, demo.base, "desk", trader, 1, "/desk/rounds")
    every_control_by_tab(page, "desk pool")
    page.evaluate("() => document.activeElement.blur()")
    tab_to(page, "a[href^='/desk/rounds/rnd_']")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/desk/rounds/rnd_" in page.url
    every_control_by_tab(page, "desk round")
    page.evaluate("() => document.activeElement.blur()")
    tab_to(page, "#new-annual_rate")
    page.keyboard.press("Control+A")
    page.keyboard.type("37,25")
    tab_to(page, "form[action$='/offers'] button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("tr.mine")  # its own offer, in its book now
    assert "37,25" in page.locator("tr.mine").first.inner_text()
    page.screenshot(path=str(screenshots / "keyboard-desk-offer-1440.png"), full_page=True)
    ctx.close()


def test_the_exporter_and_the_operator_reach_every_control_by_keyboard(
        demo: Demo, browser: Any) -> None:
    creds = credentials(demo.data)
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in_by_keyboard(page, demo.base, "exporter", creds["exporter"], 1,
                        "/exporter/applications")
    every_control_by_tab(page, "exporter applications")
    page.goto(demo.base + "/exporter/apply")
    every_control_by_tab(page, "exporter apply")
    ctx.close()
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in_by_keyboard(page, demo.base, "operator", creds["operator"], 1, "/operator")
    for path in ("/operator", "/operator/rounds?state=open", "/operator/audit",
                 "/operator/banks", "/operator/applications"):
        page.goto(demo.base + path)
        every_control_by_tab(page, path)
    ctx.close()
