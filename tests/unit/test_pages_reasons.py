"""A decision's reasons on the pages: worded by their code from the catalogue, in the page's
language, with the decision record's numbers formatted by Babel; an unknown code, or a record
without the numbers its wording needs, is shown as the record words it. And the application
form's pure helpers: the related-company rows and where an error of the API's fields goes."""

from __future__ import annotations

from typing import Any

import pytest

from applications import rules
from applications.model import RELATIONS, Exposure
from applications.package import KGF_HD_2026_1 as P
from applications.testing import APPLICANT_TAX_ID, M, financials, inputs, request, risk
from gateway.pages import i18n
from gateway.pages.exporter_apply import (
    RELATION_NAMES,
    _error_key,
    _related_values,
)
from gateway.pages.reasons import REASONS, worded


def _say(reason: dict[str, Any], lang: str) -> str:
    return worded(reason, i18n.Formats(lang), i18n.gettext_of(lang).gettext)


def _reasons(**kw: Any) -> dict[str, dict[str, Any]]:
    return {r["code"]: r for r in rules.decide(inputs(**kw), P).to_wire()["reasons"]}


def test_a_passing_score_is_worded_in_each_language_with_its_numbers() -> None:
    r = _reasons()["score_passed"]
    assert set(r["params"]) == {"score", "band", "pass_mark"}
    tr, en = _say(r, "tr"), _say(r, "en")
    assert tr.startswith(f"Puan {r['params']['score']} (sınıf {r['params']['band']})")
    assert "geçme notu" in tr and r["text"] != tr
    assert en == (f"Score {r['params']['score']} (band {r['params']['band']}) reaches the pass "
                  f"mark {r['params']['pass_mark']}.")


def test_the_group_limit_reason_writes_its_amounts_as_babel_does() -> None:
    got = _reasons(req=request(guarantee_amount=5 * M),
                   exposures=[Exposure(APPLICANT_TAX_ID, external=10 * M)])
    r = got["group_limit_exceeded"]
    assert r["params"]["limit_try"] == "12000000.00"
    tr = _say(r, "tr")
    assert "₺12.000.000,00" in tr and "₺10.000.000,00" in tr and "₺2.000.000,00" in tr
    assert tr.startswith("Risk grubunun kefalet limiti")
    en = _say(r, "en")
    assert "TRY12,000,000.00" in en and "(requested: TRY5,000,000.00)" in en


def test_debt_commission_and_cap_reasons_are_worded_with_their_numbers() -> None:
    got = _reasons(fin=financials(overdue_tax_debt=3 * M),
                   rsk=risk(unpaid_guarantee_commission=1500_00))
    assert "₺3.000.000,00" in _say(got["public_debt_above_limit"], "tr")
    assert "%20" in _say(got["public_debt_above_limit"], "tr")
    assert _say(got["unpaid_guarantee_commission"], "tr") == \
        "Önceki dönemlerden ₺1.500,00 tutarında kefalet komisyonu ödenmemiş."
    cap = {"code": "guarantee_rate_above_cap", "text": "recorded",
           "params": {"cap_pct": "85.00", "who": "sme"}}
    assert _say(cap, "tr") == "ihracatçı olmayan KOBİ'ler için kefalet oranı en fazla %85,00 " \
                              "olabilir."
    assert _say(cap, "en") == "The guarantee rate may be at most 85.00% for SMEs that are not " \
                              "exporters."


@pytest.mark.parametrize("reason", [
    {"code": "some_new_rule", "text": "as recorded"},  # a code the pages do not know
    {"code": "score_passed", "text": "as recorded"},  # decided before numbers were recorded
    {"code": "score_passed", "text": "as recorded", "params": {"score": "90"}},  # partial
    {"code": "group_limit_exceeded", "text": "as recorded",
     "params": {"limit_try": "x", "exposure_try": "1", "related": "1", "left_try": "1",
                "requested_try": "1"}},  # a number that is none
    {"code": "guarantee_rate_above_cap", "text": "as recorded",
     "params": {"cap_pct": "85", "who": "someone"}},  # a group of companies not known
])
def test_what_cannot_be_worded_is_shown_as_the_record_words_it(reason: dict[str, Any]
                                                               ) -> None:
    assert _say(reason, "tr") == _say(reason, "en") == "as recorded"


def test_reasons_without_numbers_are_worded_from_the_code_alone() -> None:
    r = {"code": "non_performing_loan", "text": "the risk centre classifies..."}
    assert _say(r, "tr") == "Risk Merkezi firmanın kredilerini takipteki alacak olarak " \
                            "sınıflandırıyor."
    assert all(code in REASONS for code in ("company_inactive", "watch_list_loan",
                                            "bankruptcy_in_group", "financials_missing",
                                            "operator_intake"))


def test_every_relation_of_the_api_has_a_name_on_the_form() -> None:
    assert tuple(RELATION_NAMES) == RELATIONS


def test_blank_rows_are_ignored_and_errors_land_on_the_row_they_belong_to() -> None:
    rows = [{"tax_id": "", "relation": "", "share_pct": ""},
            {"tax_id": "1100000014", "relation": "partner", "share_pct": "12,5"},
            {"tax_id": "", "relation": "", "share_pct": ""},
            {"tax_id": "123", "relation": "sister", "share_pct": "30"}]
    values, where = _related_values(rows)
    assert values == [{"tax_id": "1100000014", "relation": "partner", "share_pct": "12.5"},
                      {"tax_id": "123", "relation": "sister", "share_pct": "30"}]
    assert where == [1, 3]
    assert _error_key("related_companies[1].tax_id", where) == ("rc-3-tax_id", "tax_id")
    assert _error_key("related_companies[0].share_pct", where) == ("rc-1-share_pct",
                                                                   "share_pct")
    assert _error_key("related_companies", where) == ("related_companies", None)
    assert _error_key("related_companies[7].tax_id", where) == ("related_companies", None)
    assert _error_key("preferred_banks[0]", where) == ("preferred_banks", None)
    assert _error_key("guarantee_amount", where) == ("guarantee_amount", None)
