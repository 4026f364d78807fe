"""The assessment use case: ask the ports, then decide with the pure rules.

No I/O of its own: the integrations and the guarantee-exposure ledger come in as ports, the
package and the clock as arguments. The gateway (gateway/exporter_api.py) stores the result and
opens the round."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from applications import rules
from applications.model import (
    ApplicationRequest,
    Decision,
    DecisionInputs,
    Exposure,
    RegistryRecord,
)
from applications.package import GuaranteePackage
from applications.ports import Providers


class ExposureLedger(Protocol):
    """Guarantees already granted in the portal (accepted offers) and reserved by approved
    applications whose round is still open or binding, per tax id, kuruş TL."""

    async def exposure(self, tax_ids: Sequence[str]) -> Mapping[str, tuple[int, int]]:
        """tax_id -> (granted, pending); missing tax ids have none."""
        ...


class NoLedger:
    """An empty ledger (tests, what-if checks)."""

    async def exposure(self, tax_ids: Sequence[str]) -> Mapping[str, tuple[int, int]]:
        return {}


@dataclass(frozen=True)
class Assessment:
    inputs: DecisionInputs
    decision: Decision


async def gather(providers: Providers, ledger: ExposureLedger, applicant: RegistryRecord,
                 request: ApplicationRequest) -> DecisionInputs:
    """Everything the decision reads, from the four integrations and the ledger."""
    tax_ids = sorted(({a.tax_id for a in applicant.affiliates}
                      | {r.tax_id for r in request.related_companies}) - {applicant.tax_id})
    records = await asyncio.gather(*(providers.registry.lookup(t) for t in tax_ids))
    group = rules.risk_group(applicant, request.related_companies,
                             dict(zip(tax_ids, records, strict=True)))
    members = [applicant.tax_id] + [m.tax_id for m in group]
    fin, risk, exports = await asyncio.gather(
        providers.financials.latest(applicant.tax_id),
        providers.risk.report(applicant.tax_id),
        providers.exports.record(applicant.tax_id))
    member_risk = await asyncio.gather(*(providers.risk.report(t) for t in members[1:]))
    ledger_rows = await ledger.exposure(members)
    external = {applicant.tax_id: risk.kgf_guarantees}
    external.update({t: r.kgf_guarantees for t, r in zip(members[1:], member_risk, strict=True)})
    exposures = tuple(Exposure(t, external.get(t, 0), *ledger_rows.get(t, (0, 0)))
                      for t in members)
    return DecisionInputs(request, applicant, group, fin, risk, exports, exposures)


async def assess(providers: Providers, ledger: ExposureLedger, applicant: RegistryRecord,
                 request: ApplicationRequest, package: GuaranteePackage) -> Assessment:
    inputs = await gather(providers, ledger, applicant, request)
    return Assessment(inputs, rules.decide(inputs, package))
