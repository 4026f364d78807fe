"""The pages' languages: Turkish by default, English by choice (a cookie), every user-visible
text in the gettext catalogues (``gateway/locales/<lang>/LC_MESSAGES/messages.po``, read with
Babel at start-up: no build step), and amounts, percentages and dates formatted per locale with
Babel, times in Europe/Istanbul.

The messages' ids are the English texts; ``tr`` translates every one of them
(tests/unit/test_pages_i18n.py extracts the templates' and the pages' messages and checks).
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent

LANGS = ("tr", "en")
DEFAULT = "tr"
COOKIE = "ige_lang"
ZONE = ZoneInfo("Europe/Istanbul")
LOCALES = Path(__file__).resolve().parent.parent / "locales"
DATE_TIME = "d MMMM y HH:mm"  # 29 Kasım 2026 17:30
CURRENCIES = ("TRY", "USD", "EUR")


def lang_of(cookie: str | None) -> str:
    return cookie if cookie in LANGS else DEFAULT


@lru_cache(maxsize=len(LANGS))
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of ``lang`` (the English one may be empty: its ids are its texts)."""
    po = LOCALES / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def gettext_of(lang: str) -> gettext.NullTranslations:
    return translations(lang_of(lang))


class Formats:
    """Babel's formats of one locale, for the templates and (as patterns) for the pages'
    JavaScript, which formats the live book's decimal strings the same way."""

    def __init__(self, lang: str) -> None:
        self.lang = lang_of(lang)
        self.locale = Locale.parse(self.lang)
        pattern = self.locale.percent_formats[None].pattern
        self._pct = pattern.replace("#,##0", "#,##0.00##", 1)

    def money(self, amount: str | Decimal | int | None, currency: str) -> str:
        """A decimal money string (``"5000000.00"``) as the locale writes it."""
        if amount is None:
            return ""
        return format_currency(Decimal(str(amount)), currency, locale=self.locale)

    def pct(self, rate: str | Decimal | None) -> str:
        """A percent string (``"38.50"``: percent a year) as the locale writes it."""
        if rate is None:
            return ""
        return format_percent(Decimal(str(rate)) / 100, self._pct, locale=self.locale,
                              decimal_quantization=False)

    def number(self, n: int | str | Decimal) -> str:
        return format_decimal(Decimal(str(n)), locale=self.locale)

    def when(self, value: str | int | datetime | None) -> str:
        """A moment (an ISO 8601 string, ms since the epoch or a datetime) in Istanbul."""
        if value is None or value == "":
            return ""
        if isinstance(value, int):
            dt = datetime.fromtimestamp(value / 1000, UTC)
        elif isinstance(value, str):
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            dt = value
        return format_datetime(dt, DATE_TIME, tzinfo=ZONE, locale=self.locale)

    def js(self) -> Mapping[str, str]:
        """What the JavaScript needs to format like Babel: the symbols and the patterns with
        ``{n}`` for the number (data-* attributes of the page's body)."""
        sample = Decimal("1234.56")
        plain = format_decimal(sample, "#,##0.00", locale=self.locale)
        out = {"lang": self.lang,
               "decimal": self.locale.number_symbols["latn"]["decimal"],
               "group": self.locale.number_symbols["latn"]["group"],
               "pct": format_percent(sample / 100, self._pct, locale=self.locale)
               .replace(plain, "{n}")}
        for c in CURRENCIES:
            out[f"cur{c}"] = self.money(sample, c).replace(plain, "{n}")
        return out
