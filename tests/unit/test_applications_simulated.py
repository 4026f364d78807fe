"""The simulated integrations: deterministic from the tax id, the sample tax ids hit every path
of the decision, and docs/sample-companies.md says what the code does."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from stdnum.tr import tckimlik, vkn

from applications import service, simulated
from applications.model import ApplicationRequest, RelatedCompany
from applications.package import KGF_HD_2026_1 as P
from applications.ports import Providers
from applications.testing import FakeLedger
from auction.model import money_to_minor

DOC = Path(__file__).resolve().parents[2] / "docs" / "sample-companies.md"
DEMO_TCKN = simulated.DEMO_SIGNATORY.national_id


def to_request(form: dict[str, Any]) -> ApplicationRequest:
    return ApplicationRequest(form["loan_type"], form["currency"],
                              money_to_minor(form["loan_amount"]),
                              money_to_minor(form["guarantee_amount"]), form["tenor_months"],
                              form["grace_months"])


async def outcome(providers: Providers, tax_id: str, form: dict[str, Any] | None = None,
                  ledger: Any = None) -> str:
    """What the portal does for the demo signatory applying with this company."""
    rec = await providers.registry.lookup(tax_id)
    if rec is None:
        return "refused:company_not_found"
    if not rec.active:
        return "refused:company_inactive"
    if not rec.is_signatory(DEMO_TCKN):
        return "refused:not_signatory"
    form = form or simulated.SAMPLES[tax_id].request or simulated.STD_REQUEST
    a = await service.assess(providers, ledger or service.NoLedger(), rec, to_request(form), P)
    if a.decision.approved:
        return "approved"
    return "rejected:" + next(r.code for r in a.decision.reasons if r.rejects)


@pytest.mark.parametrize("tax_id", list(simulated.SAMPLES))
async def test_each_sample_company_takes_its_path(tax_id: str):
    assert await outcome(simulated.providers(), tax_id) == simulated.SAMPLES[tax_id].expected


def test_every_path_of_the_issue_has_a_sample():
    expected = {s.expected for s in simulated.SAMPLES.values()}
    assert expected >= {
        "approved", "rejected:score_below_pass_mark", "rejected:non_performing_loan",
        "rejected:watch_list_loan", "rejected:bankruptcy_in_group",
        "rejected:public_debt_above_limit", "rejected:unpaid_guarantee_commission",
        "rejected:group_limit_exceeded", "rejected:guarantee_rate_above_cap",
        "refused:not_signatory", "refused:company_inactive", "refused:company_not_found"}
    approved = [s for s in simulated.SAMPLES.values() if s.expected == "approved"]
    assert {s.registry.is_sme for s in approved if s.registry} == {True, False}


def test_sample_tax_ids_and_signatories_have_valid_check_digits():
    for tax_id, s in simulated.SAMPLES.items():
        assert vkn.is_valid(tax_id), tax_id
        if s.registry is not None:
            assert s.registry.tax_id == tax_id
            for sig in s.registry.signatories:
                assert tckimlik.is_valid(sig.national_id)
            for a in s.registry.affiliates:
                assert a.tax_id in simulated.SAMPLES


def _doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| (\d{10,11}) \|.*?\| `([a-z_]+)(?:: ([a-z_]+))?`", line)
        if m:
            rows[m.group(1)] = m.group(2) + (":" + m.group(3) if m.group(3) else "")
    return rows


def test_the_sample_companies_document_matches_the_simulation():
    assert _doc_rows() == {t: s.expected for t, s in simulated.SAMPLES.items()}
    text = DOC.read_text()
    assert DEMO_TCKN in text and simulated.OTHER_SIGNATORY.national_id in text


@pytest.mark.parametrize("tax_id", ["1234567890", "1000011117", "2000000010", "3000000011",
                                    "12345678950"])
async def test_any_other_tax_id_is_a_deterministic_healthy_company(tax_id: str):
    a, b = simulated.providers(), simulated.providers()
    for p in (a, b):
        assert await p.registry.lookup(tax_id) == await a.registry.lookup(tax_id)
        assert await p.financials.latest(tax_id) == await a.financials.latest(tax_id)
        assert await p.risk.report(tax_id) == await a.risk.report(tax_id)
        assert await p.exports.record(tax_id) == await a.exports.record(tax_id)
    rec = await a.registry.lookup(tax_id)
    assert rec is not None and rec.active and rec.insolvency is None
    assert rec.is_signatory(DEMO_TCKN)
    assert all(tckimlik.is_valid(s.national_id) for s in rec.signatories)
    risk = await a.risk.report(tax_id)
    assert not (risk.non_performing or risk.watch_list or risk.unpaid_guarantee_commission)
    assert 1300 <= risk.credit_score <= 1900 and risk.kgf_guarantees == 0


async def test_previous_acceptances_of_a_related_company_count_towards_the_limit():
    providers = simulated.providers()
    # Anadolu Tekstil has 5 M TL granted and 5 M TL pending: 10 M + 5 M > 12 M
    ledger = FakeLedger({"1100000014": (5 * 10**8, 5 * 10**8)})
    assert await outcome(providers, "1100000014", ledger=ledger) == \
        "rejected:group_limit_exceeded"
    # another company declaring it as related carries its exposure too
    rec = await providers.registry.lookup("1000011117")
    assert rec is not None
    req = to_request(simulated.STD_REQUEST)
    req = replace(req, related_companies=(RelatedCompany("1100000014", "sister", 30_0000),))
    a = await service.assess(providers, ledger, rec, req, P)
    assert [r.code for r in a.decision.reasons if r.rejects] == ["group_limit_exceeded"]
    assert ledger.asked[-1] == ["1000011117", "1100000014"]
    assert [(e.tax_id, e.total) for e in a.inputs.exposures] == [
        ("1000011117", 0), ("1100000014", 10 * 10**8)]

