"""The guarantee institution's operator: manual intake of a round, the view of any round, the
audit trail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from applications.package import package_in_force
from auction.model import RoundTerms, ms_to_dt
from auction.rules import FieldError, validate_round_terms
from persistence.records import AuditRecord, ClosingRecord, RoundRecord
from usecases.context import Deps
from usecases.opening import Opening, RoundRequest
from usecases.outcomes import NOT_FOUND_ROUND, Refusal, invalid
from usecases.security import new_id

AUDIT_PAGE = 1000
#: the fields the round rules read: they run only when all of these parsed
RULE_FIELDS = frozenset({"loan_type", "currency", "loan_amount", "guarantee_amount",
                         "tenor_months", "grace_months"})


@dataclass(frozen=True)
class RoundView:
    round: RoundRecord
    closing: ClosingRecord | None


class Operator:
    def __init__(self, deps: Deps, opening: Opening) -> None:
        self.d = deps
        self.opening = opening

    async def intake(self, values: Mapping[str, Any], errors: Sequence[FieldError],
                     actor: str) -> RoundRecord | Refusal:
        """Open a round approved outside the portal (or after a manual review): the round
        rules run whenever the fields they read parsed, so one refusal lists every field."""
        errors = list(errors)
        if not RULE_FIELDS & {e.field for e in errors}:
            probe = RoundTerms("probe", values["currency"], values["loan_type"],
                               values["loan_amount"], values["guarantee_amount"],
                               values["tenor_months"], values["grace_months"],
                               bool(values.get("export_commitment")), 0, 0)
            limits = package_in_force(ms_to_dt(self.d.clock())).loan_types.get(probe.loan_type)
            errors += validate_round_terms(probe, limits)
        if errors:
            return invalid(errors)
        user = values.get("exporter_user_id")
        t = await self.opening.open_round(RoundRequest(
            values["loan_type"], values["currency"], values["loan_amount"],
            values["guarantee_amount"], values["tenor_months"], values["grace_months"],
            values["export_commitment"], values["company"], values.get("assessment"),
            user, new_id("app") if user else None), actor)
        async with self.d.store.read() as q:
            row = await q.rounds.get(t.round_id)
        assert row is not None
        return row

    async def round(self, round_id: str) -> RoundView | Refusal:
        async with self.d.store.read() as q:
            row = await q.rounds.get(round_id)
            closing = await q.rounds.closing(round_id) if row else None
        if row is None:
            return NOT_FOUND_ROUND
        return RoundView(row, closing)

    async def rounds(self, state: str, limit: int) -> list[RoundRecord]:
        async with self.d.store.read() as q:
            return await q.rounds.page([state], limit, None)

    async def audit(self, round_id: str | None, after_id: int) -> list[AuditRecord]:
        async with self.d.store.read() as q:
            return await q.audit.page(round_id, AUDIT_PAGE, after_id)
