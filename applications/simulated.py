"""Simulated integrations: a trade registry, financial statements, a risk centre and export
performance, all deterministic from the tax id (no I/O, no randomness between runs).

* The sample tax ids of ``SAMPLES`` (docs/sample-companies.md) each exercise one path of the
  decision: approved SME exporter, approved non-SME, rejected on score, on each hard rule,
  over the group limit through a related company, not a signatory, inactive, unknown.
* Every other valid tax id gets a plausible, healthy company derived from a SHA-256 of the
  tax id (no hard-rule findings, no KGF guarantees outside the portal).
* The person with national id ``DEMO_SIGNATORY`` (the demo exporter's TCKN) is an authorised
  signatory of every simulated company except the "not a signatory" sample; each generic
  company also has one signatory of its own, derived from the tax id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from stdnum.tr import tckimlik

from applications.model import (
    Affiliate,
    ExportRecord,
    Financials,
    RegistryRecord,
    RiskReport,
    Signatory,
)
from applications.ports import Providers

TL = 100  # kuruş
M = 1_000_000 * TL  # a million TL in kuruş
DEMO_SIGNATORY = Signatory("10000000146", "Ayşe Yılmaz", "yönetim kurulu üyesi")
OTHER_SIGNATORY = Signatory("20000000114", "Mehmet Demir", "şirket müdürü")


@dataclass(frozen=True)
class Sample:
    """One sample company and what it exercises."""

    registry: RegistryRecord | None
    financials: Financials | None
    risk: RiskReport
    exports: ExportRecord
    path: str  # what applying with it shows
    expected: str  # approved | rejected:<code> | refused:<problem code>
    request: dict[str, Any] = field(default_factory=dict)  # the form the docs use (wire)


def _fin(revenue_m: int, profit_pct: int, ca: int, cl: int, ta: int, tl: int, **kw: object
         ) -> Financials:
    """Statements in millions of TL (profit as a percentage of revenue)."""
    return Financials(period="2026-Q3", revenue=revenue_m * M,
                      net_profit=revenue_m * M * profit_pct // 100,
                      current_assets=ca * M, current_liabilities=cl * M, total_assets=ta * M,
                      total_liabilities=tl * M, equity=(ta - tl) * M,
                      **kw)  # type: ignore[arg-type]


def _reg(tax_id: str, name: str, sector: str, *, is_sme: bool = True, active: bool = True,
         insolvency: str | None = None, signatories: tuple[Signatory, ...] = (DEMO_SIGNATORY,),
         affiliates: tuple[Affiliate, ...] = (), founded: int = 2005) -> RegistryRecord:
    return RegistryRecord(tax_id, name, active, is_sme, sector, insolvency, signatories,
                          affiliates, founded)


GOOD_FIN = _fin(180, 8, 60, 32, 140, 75)
GOOD_RISK = RiskReport(credit_score=1750, total_limits=40 * M, total_risk=18 * M)
GOOD_EXPORTS = ExportRecord(years_exporting=8, exports_last_12m=110 * M,
                            exports_prev_12m=95 * M, countries=14)
STD_REQUEST: dict[str, Any] = {
    "loan_type": "working_capital", "currency": "TRY", "loan_amount": "5000000.00",
    "guarantee_amount": "5000000.00", "tenor_months": 24, "grace_months": 6}

SAMPLES: dict[str, Sample] = {
    "1100000014": Sample(
        _reg("1100000014", "Anadolu Tekstil İhracat A.Ş.", "textiles"),
        GOOD_FIN, GOOD_RISK, GOOD_EXPORTS,
        "approved SME exporter (100 % guarantee allowed)", "approved", STD_REQUEST),
    "1100000022": Sample(
        _reg("1100000022", "Marmara Otomotiv Yan Sanayi A.Ş.", "automotive parts",
             is_sme=False, founded=1988),
        _fin(2400, 6, 900, 610, 2100, 1350),
        RiskReport(credit_score=1620, bounced_cheques=0, protested_bills=1,
                   total_limits=900 * M, total_risk=560 * M, kgf_guarantees=40 * M),
        ExportRecord(years_exporting=20, exports_last_12m=1300 * M, exports_prev_12m=1250 * M,
                     countries=31),
        "approved non-SME exporter (200 M TL group limit; 40 M TL of KGF guarantees at other "
        "banks already count)", "approved",
        {**STD_REQUEST, "loan_amount": "60000000.00", "guarantee_amount": "48000000.00",
         "loan_type": "investment", "tenor_months": 60, "grace_months": 12}),
    "1100000030": Sample(
        _reg("1100000030", "Ege Mobilya Ltd. Şti.", "furniture"),
        _fin(30, -2, 9, 10, 40, 36),
        RiskReport(credit_score=1150, bounced_cheques=1, protested_bills=1,
                   total_limits=10 * M, total_risk=9_500_000 * TL),
        ExportRecord(years_exporting=1, exports_last_12m=1_500_000 * TL,
                     exports_prev_12m=2 * M, countries=2),
        "rejected on score (weak ratios, risk-centre score 1150, little export history)",
        "rejected:score_below_pass_mark", STD_REQUEST),
    "1100000047": Sample(
        _reg("1100000047", "Karadeniz Fındık Gıda Ltd. Şti.", "food"),
        GOOD_FIN, RiskReport(credit_score=980, non_performing=True, total_limits=20 * M,
                             total_risk=21 * M), GOOD_EXPORTS,
        "rejected: non-performing loans at the risk centre", "rejected:non_performing_loan",
        STD_REQUEST),
    "1100000055": Sample(
        _reg("1100000055", "Trakya Tarım Ürünleri A.Ş.", "agriculture"),
        GOOD_FIN, RiskReport(credit_score=1380, watch_list=True, total_limits=30 * M,
                             total_risk=26 * M), GOOD_EXPORTS,
        "rejected: loans under close monitoring (group 2 watch list)",
        "rejected:watch_list_loan", STD_REQUEST),
    "1100000063": Sample(
        _reg("1100000063", "Konya Makine Sanayi A.Ş.", "machinery",
             affiliates=(Affiliate("1100000071", "subsidiary", 600_000),)),
        GOOD_FIN, GOOD_RISK, GOOD_EXPORTS,
        "rejected: its 60 %-owned subsidiary Konya Döküm is in concordat",
        "rejected:bankruptcy_in_group", STD_REQUEST),
    "1100000071": Sample(
        _reg("1100000071", "Konya Döküm A.Ş.", "foundry", insolvency="concordat"),
        _fin(45, -6, 12, 20, 60, 58), RiskReport(credit_score=1050, total_limits=15 * M,
                                                 total_risk=15 * M),
        ExportRecord(years_exporting=3, exports_last_12m=5 * M, exports_prev_12m=9 * M),
        "rejected: the company itself is in concordat (konkordato)",
        "rejected:bankruptcy_in_group", STD_REQUEST),
    "1100000089": Sample(
        _reg("1100000089", "Akdeniz Seramik A.Ş.", "ceramics"),
        _fin(90, 5, 30, 20, 80, 50, overdue_tax_debt=1_200_000 * TL,
             overdue_ssi_debt=300_000 * TL),
        GOOD_RISK, GOOD_EXPORTS,
        "rejected: 1.5 M TL overdue tax and social-security debt, above 20 % of a 5 M TL "
        "loan (it would pass for a loan of 7.5 M TL or more)",
        "rejected:public_debt_above_limit", STD_REQUEST),
    "1100000098": Sample(
        _reg("1100000098", "Çukurova Kimya A.Ş.", "chemicals"),
        GOOD_FIN, RiskReport(credit_score=1560, total_limits=25 * M, total_risk=12 * M,
                             kgf_guarantees=2 * M, unpaid_guarantee_commission=1_800 * TL),
        GOOD_EXPORTS,
        "rejected: guarantee commission from an earlier period unpaid",
        "rejected:unpaid_guarantee_commission", STD_REQUEST),
    "1100000101": Sample(
        _reg("1100000101", "İzmir Deri Mamulleri A.Ş.", "leather",
             affiliates=(Affiliate("1100000119", "sister", 500_000),)),
        GOOD_FIN, GOOD_RISK, GOOD_EXPORTS,
        "rejected: over the 12 M TL SME group limit through its related company İzmir Deri "
        "Pazarlama (11.5 M TL of KGF guarantees); 500 000 TL would still fit",
        "rejected:group_limit_exceeded", {**STD_REQUEST, "loan_amount": "1000000.00",
                                          "guarantee_amount": "1000000.00"}),
    "1100000119": Sample(
        _reg("1100000119", "İzmir Deri Pazarlama Ltd. Şti.", "leather trade",
             affiliates=(Affiliate("1100000101", "sister", 500_000),)),
        GOOD_FIN, RiskReport(credit_score=1640, total_limits=30 * M, total_risk=14 * M,
                             kgf_guarantees=11_500_000 * TL), GOOD_EXPORTS,
        "related company holding 11.5 M TL of KGF guarantees (rejected: group limit)",
        "rejected:group_limit_exceeded", {**STD_REQUEST, "loan_amount": "1000000.00",
                                          "guarantee_amount": "1000000.00"}),
    "1100000127": Sample(
        _reg("1100000127", "Bursa İpek Dokuma A.Ş.", "textiles",
             signatories=(OTHER_SIGNATORY,)),
        GOOD_FIN, GOOD_RISK, GOOD_EXPORTS,
        "refused at company matching: the demo person is not an authorised signatory "
        "(only national id 20000000114 is)", "refused:not_signatory"),
    "1100000135": Sample(
        _reg("1100000135", "Eski Liman Ticaret Ltd. Şti.", "trade", active=False),
        None, RiskReport(credit_score=0), ExportRecord(0, 0, 0),
        "refused at company matching: the registry lists the company as not active",
        "refused:company_inactive"),
    "1100000142": Sample(
        None, None, RiskReport(credit_score=0), ExportRecord(0, 0, 0),
        "refused at company matching: unknown to the trade registry",
        "refused:company_not_found"),
    "1100000150": Sample(
        _reg("1100000150", "Orta Anadolu Un Sanayi A.Ş.", "flour milling"),
        _fin(70, 7, 25, 14, 60, 30), RiskReport(credit_score=1590, total_limits=20 * M,
                                                total_risk=9 * M),
        ExportRecord(years_exporting=0, exports_last_12m=0, exports_prev_12m=0),
        "SME without exports: the guarantee rate is capped at 85 % (rejected at 100 %, "
        "approved at 85 % only if the score passes)", "rejected:guarantee_rate_above_cap",
        STD_REQUEST),
    "1100000168": Sample(
        _reg("1100000168", "Gaziantep Halı A.Ş.", "carpets"),
        _fin(120, 9, 40, 22, 100, 52, overdue_tax_debt=400_000 * TL,
             overdue_ssi_debt=250_000 * TL),
        GOOD_RISK, GOOD_EXPORTS,
        "approved with a condition: 650 000 TL overdue tax and social-security debt (13 % of "
        "the loan, at most 20 %) is paid first from the loan", "approved", STD_REQUEST),
    "1100000176": Sample(
        _reg("1100000176", "Kapadokya Turizm A.Ş.", "tourism", is_sme=False),
        _fin(800, 11, 300, 140, 900, 420),
        RiskReport(credit_score=1710, total_limits=300 * M, total_risk=120 * M),
        ExportRecord(years_exporting=0, exports_last_12m=0, exports_prev_12m=0,
                     fx_earning=True),
        "approved non-SME FX earner without goods exports (100 % guarantee allowed)",
        "approved", STD_REQUEST),
}


# ----------------------------------------------------------------------------- generic companies
def _digest(tax_id: str) -> bytes:
    return hashlib.sha256(("ige-simulated:" + tax_id).encode()).digest()


def _pick(d: bytes, i: int, lo: int, hi: int) -> int:
    """A number lo..hi from two bytes of the digest."""
    return lo + int.from_bytes(d[2 * i:2 * i + 2], "big") % (hi - lo + 1)


_NAMES = ("Yıldız", "Doğu", "Batı", "Güney", "Kuzey", "Hisar", "Mavi", "Yeşil", "Altın",
          "Toros", "Fırat", "Kızılırmak", "Boğaziçi", "Anka", "Lale", "Çınar")
_SECTORS = ("textiles", "machinery", "food", "automotive parts", "chemicals", "furniture",
            "electronics", "plastics")


def _derived_signatory(d: bytes) -> Signatory:
    base = f"{3 + d[0] % 6}{int.from_bytes(d[1:5], 'big') % 10**8:08d}"
    return Signatory(base + tckimlik.calc_check_digits(base), "Yetkili Kişi")


def generic_registry(tax_id: str) -> RegistryRecord:
    d = _digest(tax_id)
    is_sme = d[20] % 4 != 0
    name = f"{_NAMES[d[21] % len(_NAMES)]} {_SECTORS[d[22] % len(_SECTORS)].title()} " \
           f"{'Ltd. Şti.' if is_sme else 'A.Ş.'}"
    return RegistryRecord(tax_id, name, True, is_sme, _SECTORS[d[22] % len(_SECTORS)], None,
                          (DEMO_SIGNATORY, _derived_signatory(d)), (), 1980 + d[23] % 40)


def generic_financials(tax_id: str) -> Financials:
    d = _digest(tax_id)
    scale = 1 if generic_registry(tax_id).is_sme else 20
    revenue = _pick(d, 0, 20, 200) * scale
    ta = revenue * _pick(d, 1, 60, 110) // 100
    tl = ta * _pick(d, 2, 30, 70) // 100
    ca = ta * _pick(d, 3, 40, 60) // 100
    cl = tl * _pick(d, 4, 40, 70) // 100
    return _fin(revenue, _pick(d, 5, 2, 12), ca, max(cl, 1), ta, tl)


def generic_risk(tax_id: str) -> RiskReport:
    d = _digest(tax_id)
    limits = _pick(d, 6, 10, 80) * M
    return RiskReport(credit_score=_pick(d, 7, 1300, 1890), bounced_cheques=d[16] % 5 // 4,
                      total_limits=limits, total_risk=limits * _pick(d, 8, 20, 85) // 100)


def generic_exports(tax_id: str) -> ExportRecord:
    d = _digest(tax_id)
    revenue = generic_financials(tax_id).revenue
    last = revenue * _pick(d, 9, 10, 70) // 100
    return ExportRecord(years_exporting=_pick(d, 10, 1, 15), exports_last_12m=last,
                        exports_prev_12m=last * 100 // _pick(d, 11, 90, 125),
                        countries=_pick(d, 12, 1, 25))


# ----------------------------------------------------------------------------- the providers
class SimulatedRegistry:
    async def lookup(self, tax_id: str) -> RegistryRecord | None:
        s = SAMPLES.get(tax_id)
        return s.registry if s is not None else generic_registry(tax_id)


class SimulatedFinancials:
    async def latest(self, tax_id: str) -> Financials | None:
        s = SAMPLES.get(tax_id)
        return s.financials if s is not None else generic_financials(tax_id)


class SimulatedRiskCentre:
    async def report(self, tax_id: str) -> RiskReport:
        s = SAMPLES.get(tax_id)
        return s.risk if s is not None else generic_risk(tax_id)


class SimulatedExportPerformance:
    async def record(self, tax_id: str) -> ExportRecord:
        s = SAMPLES.get(tax_id)
        return s.exports if s is not None else generic_exports(tax_id)


def providers() -> Providers:
    return Providers(SimulatedRegistry(), SimulatedFinancials(), SimulatedRiskCentre(),
                     SimulatedExportPerformance())
