"""Ports: what the decision-support system needs from the outside world. Real integrations
(MERSİS, the company's financial statements, the TBB Risk Centre, export performance data)
implement these; ``applications.simulated`` implements all four deterministically from the
tax id for demos and tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from applications.model import ExportRecord, Financials, RegistryRecord, RiskReport


class TradeRegistry(Protocol):
    """The trade registry (MERSİS)."""

    async def lookup(self, tax_id: str) -> RegistryRecord | None:
        """The company, or None when the registry does not know the tax id."""
        ...


class FinancialStatements(Protocol):
    async def latest(self, tax_id: str) -> Financials | None:
        """The latest statements with the tax / social-security debt letters; None if none."""
        ...


class RiskCentre(Protocol):
    async def report(self, tax_id: str) -> RiskReport:
        ...


class ExportPerformance(Protocol):
    async def record(self, tax_id: str) -> ExportRecord:
        ...


@dataclass(frozen=True)
class Providers:
    """The four integrations, wired once at start-up (the composition root)."""

    registry: TradeRegistry
    financials: FinancialStatements
    risk: RiskCentre
    exports: ExportPerformance
