"""Builders and fakes for tests of the application flow (pure, no I/O)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from applications.model import (
    ApplicationRequest,
    DecisionInputs,
    ExportRecord,
    Exposure,
    Financials,
    GroupMember,
    RegistryRecord,
    RiskReport,
    Signatory,
)

M = 100_000_000  # a million TL in kuruş
APPLICANT_TAX_ID = "1100000014"


def request(**changes: Any) -> ApplicationRequest:
    """5 000 000.00 TRY working capital, fully guaranteed, 24 months with 6 months' grace."""
    base = ApplicationRequest(loan_type="working_capital", currency="TRY",
                              loan_amount=5 * M, guarantee_amount=5 * M, tenor_months=24,
                              grace_months=6)
    return dataclasses.replace(base, **changes)


def registry(**changes: Any) -> RegistryRecord:
    base = RegistryRecord(APPLICANT_TAX_ID, "Test İhracat A.Ş.", True, True, "textiles", None,
                          (Signatory("10000000146", "Ayşe Yılmaz"),))
    return dataclasses.replace(base, **changes)


def financials(**changes: Any) -> Financials:
    base = Financials(period="2026-Q3", revenue=100 * M, net_profit=8 * M,
                      current_assets=40 * M, current_liabilities=20 * M, total_assets=100 * M,
                      total_liabilities=50 * M, equity=50 * M)
    return dataclasses.replace(base, **changes)


def risk(**changes: Any) -> RiskReport:
    base = RiskReport(credit_score=1750, total_limits=40 * M, total_risk=10 * M)
    return dataclasses.replace(base, **changes)


def exports(**changes: Any) -> ExportRecord:
    base = ExportRecord(years_exporting=8, exports_last_12m=60 * M, exports_prev_12m=50 * M,
                        countries=10)
    return dataclasses.replace(base, **changes)


def inputs(*, req: ApplicationRequest | None = None, applicant: RegistryRecord | None = None,
           group: Sequence[GroupMember] = (), fin: Financials | str | None = "default",
           rsk: RiskReport | None = None, exp: ExportRecord | None = None,
           exposures: Sequence[Exposure] | None = None) -> DecisionInputs:
    """A healthy SME exporter's application; override any part."""
    app = applicant or registry()
    return DecisionInputs(
        request=req or request(), applicant=app, group=tuple(group),
        financials=financials() if fin == "default" else fin,  # type: ignore[arg-type]
        risk=rsk or risk(), exports=exp or exports(),
        exposures=tuple(exposures) if exposures is not None else (Exposure(app.tax_id),))


class FakeLedger:
    """An ExposureLedger from a dict: tax_id -> (granted, pending)."""

    def __init__(self, rows: Mapping[str, tuple[int, int]] | None = None) -> None:
        self.rows = dict(rows or {})
        self.asked: list[list[str]] = []

    async def exposure(self, tax_ids: Sequence[str]) -> Mapping[str, tuple[int, int]]:
        self.asked.append(list(tax_ids))
        return {t: self.rows[t] for t in tax_ids if t in self.rows}
