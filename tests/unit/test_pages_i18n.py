"""The pages' languages and formats: every message of the templates and the page modules is in
the Turkish catalogue (extracted as ``make messages`` does), and amounts, percentages and
times come out of Babel as each locale writes them, in Europe/Istanbul."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from gateway.pages import i18n
from gateway.pages.web import ENVIRONMENTS
from tests.support import ROOT

KEYWORDS = {"_": None, "gettext": None, "N_": None}


def _messages() -> set[str]:
    method_map = [("gateway/pages/**.py", "python"), ("gateway/templates/**.html", "jinja2")]
    options = {"gateway/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    return {m[2] for m in extract_from_dir(str(ROOT), method_map, options, KEYWORDS)
            if isinstance(m[2], str)}


def _catalog(lang: str) -> dict[str, str]:
    po = Path(i18n.LOCALES) / lang / "LC_MESSAGES" / "messages.po"
    cat = read_po(io.BytesIO(po.read_bytes()), locale=lang)
    return {str(m.id): str(m.string) for m in cat if m.id}


def test_every_message_of_the_pages_has_a_turkish_translation() -> None:
    found = _messages()
    assert len(found) > 100  # the extraction did find the templates' messages
    tr = _catalog("tr")
    missing = sorted(m for m in found if not tr.get(m))
    assert not missing, f"not translated in tr: {missing}"
    assert sorted(set(tr) - found) == [], "messages no page uses any more"
    assert set(_catalog("en")) == set(tr)  # English: the ids are the texts


def test_the_catalogues_are_the_pages_translations() -> None:
    assert i18n.gettext_of("tr").gettext("Open rounds") == "Açık turlar"
    assert i18n.gettext_of("en").gettext("Open rounds") == "Open rounds"
    assert i18n.gettext_of("de").gettext("Open rounds") == "Açık turlar"  # Turkish default
    html = ENVIRONMENTS["tr"].get_template("error.html").render(
        title="t", message="m", page=None, session=None, csrf="c", path="/", js={},
        server_now=0)
    assert "Masaya dön" in html and '<html lang="tr">' in html


def test_amounts_percentages_and_times_are_written_as_each_locale_writes_them() -> None:
    tr, en = i18n.Formats("tr"), i18n.Formats("en")
    assert tr.money("5000000.00", "TRY") == "₺5.000.000,00"
    assert en.money("5000000.00", "USD") == "$5,000,000.00"
    assert tr.pct("38.5") == "%38,50" and tr.pct("36.1234") == "%36,1234"
    assert en.pct("38.5") == "38.50%"
    # 14:30 UTC is 17:30 in Istanbul (UTC+3 all year)
    assert tr.when("2026-11-29T14:30:00Z") == "29 Kasım 2026 17:30"
    assert en.when(1_795_962_600_000) == "29 November 2026 17:30"
    js = tr.js()
    assert (js["decimal"], js["group"], js["pct"], js["curTRY"]) == (",", ".", "%{n}", "₺{n}")
