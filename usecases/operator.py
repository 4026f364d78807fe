"""The guarantee institution's operator: manual intake of a round, the view of any round, the
audit trail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from applications.intake import DECIDED_BY_OPERATOR, IntakeTerms, operator_application
from applications.package import package_in_force
from auction.model import RoundTerms, ms_to_dt
from auction.rules import FieldError, validate_round_terms
from persistence.operators import AuditFilter
from persistence.records import ApplicationRecord, AuditRecord, ClosingRecord, RoundRecord
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
        rules run whenever the fields they read parsed, so one refusal lists every field; the
        exporter named must exist. The round and its application (decided by the operator,
        ``applications.intake``) are written in one unit of work."""
        errors = list(errors)
        if not RULE_FIELDS & {e.field for e in errors}:
            probe = RoundTerms("probe", values["currency"], values["loan_type"],
                               values["loan_amount"], values["guarantee_amount"],
                               values["tenor_months"], values["grace_months"],
                               bool(values.get("export_commitment")), 0, 0)
            limits = package_in_force(ms_to_dt(self.d.clock())).loan_types.get(probe.loan_type)
            errors += validate_round_terms(probe, limits)
        user = values.get("exporter_user_id")
        if user is not None and "exporter_user_id" not in {e.field for e in errors}:
            async with self.d.store.read() as q:
                if await q.exporters.get(user) is None:
                    errors.append(FieldError("exporter_user_id", "unknown_exporter",
                                             "no exporter has this user id"))
        if errors:
            return invalid(errors)
        req = RoundRequest(
            values["loan_type"], values["currency"], values["loan_amount"],
            values["guarantee_amount"], values["tenor_months"], values["grace_months"],
            values["export_commitment"], values["company"], values.get("assessment"),
            user, new_id("app"))
        now = self.d.clock()
        app = operator_application(
            IntakeTerms(req.loan_type, req.currency, req.loan_amount, req.guarantee_amount,
                        req.tenor_months, req.grace_months, req.export_commitment),
            req.company, req.assessment, user, actor, package_in_force(ms_to_dt(now)))
        async with self.d.store.unit() as tx:
            opened = await self.opening.add(tx, req, actor)
            rid = opened.terms.round_id
            known = await tx.companies.by_tax_id(app.tax_id)
            assert req.application_id is not None
            await tx.applications.add(ApplicationRecord(
                req.application_id, known.id if known else None, app.tax_id, user, app.status,
                app.package_version, req.currency, req.loan_amount, req.guarantee_amount,
                app.guarantee_tl, app.score, app.band, app.request, app.inputs, app.decision,
                app.package, rid, now))
            await tx.audit.add(now, actor, "application_decided", rid, {
                "application_id": req.application_id, "tax_id": app.tax_id,
                "user_id": user, "status": app.status, "decided_by": DECIDED_BY_OPERATOR,
                "package_version": app.package_version})
            await tx.commit()
        await self.opening.go_live(opened)
        async with self.d.store.read() as q:
            row = await q.rounds.get(rid)
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

    async def audit(self, round_id: str | None, after_id: int,
                    f: AuditFilter | None = None) -> list[AuditRecord]:
        """A page of the trail, oldest first after ``after_id``: one round's, or what ``f``
        (round, actor, action, time range) selects."""
        f = f or AuditFilter(round_id=round_id)
        async with self.d.store.read() as q:
            return await q.console.audit(f, AUDIT_PAGE, after_id=after_id, newest_first=False)
