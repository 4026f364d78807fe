"""The guarantee rules of PORTAL.md §4 at intake, the hard rules and the decision: table-driven,
with values just inside and just outside every limit."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from applications import rules
from applications.model import (
    Affiliate,
    Exposure,
    GroupMember,
    RelatedCompany,
)
from applications.package import KGF_HD_2026_1 as P
from applications.testing import (
    APPLICANT_TAX_ID,
    M,
    exports,
    financials,
    inputs,
    registry,
    request,
    risk,
)

NON_EXPORTER = exports(years_exporting=0, exports_last_12m=0, exports_prev_12m=0)


def codes(reasons: list[Any] | tuple[Any, ...]) -> list[str]:
    return [r.code for r in reasons]


# ----------------------------------------------------------------------------- form terms
@pytest.mark.parametrize("changes, expected", [
    ({}, []),
    ({"tenor_months": 6, "grace_months": 0}, []),  # the minimum tenor
    ({"tenor_months": 5, "grace_months": 0}, ["tenor_below_minimum"]),
    ({"tenor_months": 60}, []),  # working capital: at most 5 years
    ({"tenor_months": 61}, ["tenor_above_maximum"]),
    ({"loan_type": "investment", "tenor_months": 120}, []),  # investment: at most 10 years
    ({"loan_type": "investment", "tenor_months": 121}, ["tenor_above_maximum"]),
    ({"loan_type": "investment", "tenor_months": 6, "grace_months": 0}, []),
    ({"loan_type": "investment", "tenor_months": 5, "grace_months": 0},
     ["tenor_below_minimum"]),
    ({"grace_months": 12}, []),  # working capital: grace at most 1 year
    ({"grace_months": 13}, ["grace_above_maximum"]),
    ({"loan_type": "investment", "tenor_months": 60, "grace_months": 36}, []),
    ({"loan_type": "investment", "tenor_months": 60, "grace_months": 37},
     ["grace_above_maximum"]),
    ({"grace_months": -1}, ["grace_negative"]),
    ({"tenor_months": 8, "grace_months": 8}, ["grace_not_below_tenor"]),
    ({"tenor_months": 8, "grace_months": 7}, []),
    ({"guarantee_amount": 5 * M}, []),  # equal to the loan
    ({"guarantee_amount": 5 * M + 1}, ["guarantee_above_loan"]),
    ({"guarantee_amount": 0}, ["guarantee_not_positive"]),
    ({"loan_amount": 0, "guarantee_amount": 1}, ["loan_amount_not_positive"]),
    ({"currency": "GBP"}, ["currency_not_configured"]),
    ({"loan_type": "leasing"}, ["loan_type_unknown"]),
    ({"tenor_months": 3, "grace_months": 13, "guarantee_amount": 6 * M},
     ["guarantee_above_loan", "tenor_below_minimum", "grace_above_maximum"]),
])
def test_form_terms(changes: dict[str, Any], expected: list[str]):
    got = rules.check_terms(request(**changes), P)
    assert codes(got) == expected
    assert all(r.kind == "intake" and r.field for r in got)


# ----------------------------------------------------------------------------- rate caps
@pytest.mark.parametrize("is_sme, exporter, guarantee, ok", [
    (True, False, 4_25_000_000, True),  # SME, not an exporter: 85 % of 5 M
    (True, False, 4_25_000_001, False),
    (False, False, 4_00_000_000, True),  # non-SME, not an exporter: 80 %
    (False, False, 4_00_000_001, False),
    (True, True, 5 * M, True),  # exporters: 100 %, SME...
    (False, True, 5 * M, True),  # ...and non-SME
])
def test_guarantee_rate_caps(is_sme: bool, exporter: bool, guarantee: int, ok: bool):
    i = inputs(req=request(guarantee_amount=guarantee), applicant=registry(is_sme=is_sme),
               exp=exports() if exporter else NON_EXPORTER)
    got = codes(rules.check_eligibility(i, P)[0])
    assert ("guarantee_rate_above_cap" not in got) is ok


def test_fx_earning_companies_without_goods_exports_get_the_exporter_cap():
    i = inputs(req=request(guarantee_amount=5 * M), applicant=registry(is_sme=False),
               exp=dataclasses.replace(NON_EXPORTER, fx_earning=True))
    assert rules.check_eligibility(i, P)[0] == []


# ----------------------------------------------------------------------------- group limit
@pytest.mark.parametrize("is_sme, loan, guarantee, currency, external, ok", [
    (True, 6 * M, 5 * M, "TRY", 7 * M, True),  # 7 M + 5 M = 12 M: exactly the SME limit
    (True, 6 * M, 5 * M + 1, "TRY", 7 * M, False),  # one kuruş over
    (True, 12 * M, 12 * M, "TRY", 0, True),
    (True, 12 * M + 1, 12 * M + 1, "TRY", 0, False),
    (False, 60 * M, 50 * M, "TRY", 150 * M, True),  # non-SME: 200 M
    (False, 60 * M, 50 * M + 1, "TRY", 150 * M, False),
    (True, 300_000_01, 300_000_00, "USD", 0, True),  # 300 000 USD x 40 = 12 M TL
    (True, 300_000_01, 300_000_01, "USD", 0, False),  # + 0.40 TL
    (True, 266_666_67, 266_666_66, "EUR", 0, True),  # x 45 = 11 999 999.70 TL
    (True, 266_666_67, 266_666_67, "EUR", 0, False),  # = 12 000 000.15 TL
])
def test_group_limit_at_the_edges(is_sme: bool, loan: int, guarantee: int, currency: str,
                                  external: int, ok: bool):
    i = inputs(req=request(loan_amount=loan, guarantee_amount=guarantee, currency=currency),
               applicant=registry(is_sme=is_sme),
               exposures=[Exposure(APPLICANT_TAX_ID, external=external)])
    reasons, guarantee_tl, exposure, limit = rules.check_eligibility(i, P)
    assert ("group_limit_exceeded" not in codes(reasons)) is ok
    assert exposure == external
    assert limit == (12_000_000_00 if is_sme else 200_000_000_00)
    assert guarantee_tl == P.to_tl(guarantee, currency)


def test_everything_counts_towards_the_group_limit_each_company_once():
    related = "1100000119"
    i = inputs(req=request(loan_amount=2 * M, guarantee_amount=2 * M),
               group=[GroupMember(related, "sister", 50_0000, "registry", registry(
                   tax_id=related))],
               exposures=[Exposure(APPLICANT_TAX_ID, external=1 * M, granted=2 * M, pending=3 * M),
                          Exposure(related, external=2 * M, granted=1 * M, pending=1 * M),
                          Exposure(related, external=2 * M, granted=1 * M, pending=1 * M)])
    reasons, _, exposure, _ = rules.check_eligibility(i, P)
    assert exposure == 10 * M  # the duplicate row of the related company counts once
    assert "group_limit_exceeded" not in codes(reasons)  # 10 M + 2 M = 12 M
    over = dataclasses.replace(i, request=request(loan_amount=2 * M, guarantee_amount=2 * M + 1))
    text = next(r for r in rules.check_eligibility(over, P)[0]
                if r.code == "group_limit_exceeded").text
    assert "10000000.00 TL already counts" in text and "2000000.00 TL of guarantee is left" in text


def test_an_inactive_company_is_refused_at_intake():
    got = rules.check_eligibility(inputs(applicant=registry(active=False)), P)[0]
    assert codes(got) == ["company_inactive"]


# ----------------------------------------------------------------------------- the risk group
def test_risk_group_merges_declared_and_registry_companies_once_larger_share_wins():
    applicant = registry(affiliates=(Affiliate("1100000063", "subsidiary", 30_0000),
                                     Affiliate("1100000071", "sister", 10_0000)))
    declared = [RelatedCompany("1100000071", "subsidiary", 40_0000),
                RelatedCompany("1100000089", "partner", 5_0000),
                RelatedCompany(APPLICANT_TAX_ID, "parent", 100_0000)]  # itself: ignored
    known = {"1100000063": registry(tax_id="1100000063"), "1100000071": None}
    group = rules.risk_group(applicant, declared, known)  # type: ignore[arg-type]
    assert [(m.tax_id, m.share_e4, m.source, m.registry is not None) for m in group] == [
        ("1100000063", 30_0000, "registry", True),
        ("1100000071", 40_0000, "registry", False),
        ("1100000089", 5_0000, "declared", False),
    ]


# ----------------------------------------------------------------------------- hard rules
def member(share_e4: int, insolvency: str | None = "concordat",
           known: bool = True) -> GroupMember:
    rec = registry(tax_id="1100000071", name="Konya Döküm A.Ş.", insolvency=insolvency)
    return GroupMember("1100000071", "subsidiary", share_e4, "declared", rec if known else None)


@pytest.mark.parametrize("kw, expected", [
    ({}, []),
    ({"rsk": risk(non_performing=True)}, ["non_performing_loan"]),
    ({"rsk": risk(watch_list=True)}, ["watch_list_loan"]),
    ({"rsk": risk(unpaid_guarantee_commission=1)}, ["unpaid_guarantee_commission"]),
    ({"rsk": risk(unpaid_guarantee_commission=0)}, []),
    ({"applicant": registry(insolvency="bankruptcy")}, ["bankruptcy_in_group"]),
    ({"applicant": registry(insolvency="liquidation")}, ["bankruptcy_in_group"]),
    ({"group": [member(25_0000)]}, ["bankruptcy_in_group"]),  # owned 25 %: counts
    ({"group": [member(24_9900)]}, []),  # 24.99 %: does not
    ({"group": [member(90_0000, insolvency=None)]}, []),
    ({"group": [member(90_0000, known=False)]}, []),  # unknown to the registry
    ({"rsk": risk(non_performing=True, watch_list=True, unpaid_guarantee_commission=5),
      "group": [member(60_0000)]},
     ["non_performing_loan", "watch_list_loan", "bankruptcy_in_group",
      "unpaid_guarantee_commission"]),
])
def test_hard_rules(kw: dict[str, Any], expected: list[str]):
    got = [r for r in rules.check_hard_rules(inputs(**kw), P) if r.rejects]
    assert codes(got) == expected
    assert all(r.kind == "hard_rule" for r in got)


@pytest.mark.parametrize("tax, ssi, restructured, broken, currency, loan, expected", [
    (0, 0, False, False, "TRY", 5 * M, []),
    (60_000_000, 40_000_000, False, False, "TRY", 5 * M, ["public_debt_paid_first"]),  # 20 %
    (60_000_000, 40_000_001, False, False, "TRY", 5 * M, ["public_debt_above_limit"]),
    (1 * M, 0, False, False, "TRY", 5 * M, ["public_debt_paid_first"]),
    (3 * M, 0, True, False, "TRY", 5 * M, ["public_debt_restructured"]),  # restructured: fine
    (3 * M, 0, True, True, "TRY", 5 * M, ["public_debt_above_limit"]),  # ...unless broken
    (1 * M, 0, False, False, "USD", 125_000_00, ["public_debt_paid_first"]),  # 5 M TL loan
    (1 * M + 1, 0, False, False, "USD", 125_000_00, ["public_debt_above_limit"]),
])
def test_tax_and_social_security_debt_at_most_20_percent_of_the_loan(
        tax: int, ssi: int, restructured: bool, broken: bool, currency: str, loan: int,
        expected: list[str]):
    i = inputs(req=request(currency=currency, loan_amount=loan, guarantee_amount=loan),
               fin=financials(overdue_tax_debt=tax, overdue_ssi_debt=ssi,
                              debt_restructured=restructured, restructuring_broken=broken))
    got = rules.check_hard_rules(i, P)
    assert codes(got) == expected
    assert [r.rejects for r in got] == [c == "public_debt_above_limit" for c in expected]


# ----------------------------------------------------------------------------- the decision
def test_a_healthy_sme_exporter_is_approved_with_a_note():
    d = rules.decide(inputs(), P)
    assert d.status == "approved" and d.approved
    assert codes(d.reasons) == ["score_passed"]
    assert d.scorecard.band in ("A", "B") and d.package_version == P.version
    assert d.guarantee_tl == 5 * M and d.is_exporter


def test_a_rejection_lists_every_reason_rejecting_ones_first():
    i = inputs(req=request(guarantee_amount=5 * M),
               rsk=risk(credit_score=900, non_performing=True, unpaid_guarantee_commission=10,
                        bounced_cheques=4, total_risk=60 * M),
               fin=financials(net_profit=-5 * M, equity=1 * M, total_liabilities=99 * M,
                              overdue_tax_debt=100_000),
               exp=NON_EXPORTER,
               exposures=[Exposure(APPLICANT_TAX_ID, external=10 * M)])
    d = rules.decide(i, P)
    assert d.status == "rejected"
    assert codes(d.reasons) == [
        "guarantee_rate_above_cap", "group_limit_exceeded", "non_performing_loan",
        "unpaid_guarantee_commission", "score_below_pass_mark", "public_debt_paid_first"]
    assert [r.kind for r in d.reasons] == ["intake", "intake", "hard_rule", "hard_rule",
                                           "score", "note"]


def test_a_hard_rule_rejects_whatever_the_score():
    d = rules.decide(inputs(rsk=risk(watch_list=True)), P)
    assert d.scorecard.passed and d.status == "rejected"
    assert codes(d.reasons) == ["watch_list_loan", "score_passed"]


def test_missing_statements_are_noted_and_score_as_missing():
    d = rules.decide(inputs(fin=None), P)
    assert "financials_missing" in codes(d.reasons)
    fin_factors = [f for f in d.scorecard.factors if f.group == "financials"]
    assert all(f.value is None and f.points == 0 for f in fin_factors)


def test_the_decision_wire_form_has_score_band_reasons_and_factors():
    w = rules.decide(inputs(), P).to_wire()
    assert set(w) == {"score", "band", "pass_mark", "reasons", "factors", "package_version"}
    assert w["reasons"] == [{"code": "score_passed", "kind": "note",
                             "text": w["reasons"][0]["text"],
                             "params": {"score": str(w["score"]), "band": w["band"],
                                        "pass_mark": str(w["pass_mark"])}}]
    assert len(w["factors"]) == len(P.scorecard.weights)


def test_banks_see_the_assessment_and_preferred_banks_only_as_a_flag():
    i = inputs(req=request(preferred_banks=("AKBNK", "ZIRAAT")),
               fin=financials(overdue_tax_debt=10 * 100_00))
    d = rules.decide(i, P)
    a = rules.bank_assessment(i, d, P)
    assert a["score"] == d.scorecard.score and a["band"] == d.scorecard.band
    assert a["preferred_banks"] == ["AKBNK", "ZIRAAT"]
    assert a["risk"]["credit_band"] == "very_high" and a["risk"]["non_performing"] is False
    assert a["exports"]["is_exporter"] is True
    assert a["financials"]["revenue"] == "100000000.00"
    assert a["group"] == {"related_companies": 0, "exposure_try": "0.00",
                          "limit_try": "12000000.00"}
    assert [n["code"] for n in a["notes"]] == ["public_debt_paid_first"]
