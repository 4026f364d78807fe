"""The exporter's application: company matching with consent (muvafakatname), the guarantee
application with its decision, and approval opening the round.

The rules and the scorecard are pure (``applications/``, the package and ``now`` passed in);
the integrations are ``applications.ports.Providers``. Applications of one risk group are
assessed one at a time (a lock per tax id): the group limit counts approved requests whose
round is still open or binding, so two at once could both fit.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from applications import rules, service
from applications.model import ApplicationRequest, RegistryRecord
from applications.package import GuaranteePackage, package_in_force
from auction.model import iso, ms_to_dt
from auction.rules import FieldError
from persistence.records import (
    ApplicationRecord,
    CompanyRecord,
    ConsentRecord,
    ExporterRecord,
    RoundRecord,
)
from persistence.store import Conflict
from usecases.context import Deps
from usecases.opening import Opened, Opening, RoundRequest
from usecases.outcomes import Refusal, invalid
from usecases.security import Principal, new_id

GROUP_LOCK_MS = 30_000

REFUSALS: dict[str, str] = {
    "company_not_found": "the trade registry (MERSİS) does not know this tax id",
    "company_inactive": "the trade registry lists the company as not active",
    "not_signatory": ("you are not an authorised signatory of this company in the trade "
                      "registry"),
    "consent_withdrawn": ("the company's consent (muvafakatname) is withdrawn: give it again "
                          "with POST /v1/exporter/companies to apply"),
    "reapplication_blocked": ("the company's requests were rejected twice within 3 months: it "
                              "can be assessed again after a quarterly financial period has "
                              "passed since the last rejection"),
    "not_found": "no such company for this caller",
    "conflict": ("another application of this company's risk group is being assessed; retry "
                 "in a few seconds"),
}


def refuse(code: str, **extra: Any) -> Refusal:
    return Refusal(code, REFUSALS[code], extra=extra)


#: the form's fields the guarantee package's form rules read
TERM_FIELDS = frozenset({"loan_type", "currency", "loan_amount", "guarantee_amount",
                         "tenor_months", "grace_months"})


@dataclass(frozen=True)
class ApplicationDraft:
    """The application form as far as it parsed: the request when every field did, the
    values of the fields that did (wire names, converted), and the errors of the others."""

    company_id: str | None
    request: ApplicationRequest | None
    values: Mapping[str, Any]
    errors: Sequence[FieldError] = ()


def check_form(draft: ApplicationDraft, package: GuaranteePackage
               ) -> tuple[str, ApplicationRequest] | Refusal:
    """The company and the request, or one refusal listing every bad field: the ones that did
    not parse and the package's form rules (tenor, grace, guarantee above loan) under their
    stable reason codes, so that a typo never becomes a rejection."""
    errors = list(draft.errors)
    if TERM_FIELDS.isdisjoint(e.field for e in errors):
        v = draft.values
        probe = ApplicationRequest(v["loan_type"], v["currency"], v["loan_amount"],
                                   v["guarantee_amount"], v["tenor_months"], v["grace_months"])
        errors += [FieldError(r.field or "", r.code, r.text)
                   for r in rules.check_terms(probe, package)]
    if errors or draft.request is None or draft.company_id is None:
        return invalid(errors)
    return draft.company_id, draft.request


@dataclass(frozen=True)
class CompanyState:
    company: CompanyRecord
    latest_consent: ConsentRecord | None
    consent_active: bool
    open_rounds_hidden: int | None = None  # set by a withdrawal


@dataclass(frozen=True)
class ApplicationState:
    application: ApplicationRecord
    round: RoundRecord | None


class _Ledger:
    """The exposure ledger as the assessment reads it: one short read per question."""

    def __init__(self, deps: Deps) -> None:
        self.d = deps

    async def exposure(self, tax_ids: Sequence[str]) -> Mapping[str, tuple[int, int]]:
        async with self.d.store.read() as q:
            return await q.ledger.exposure(tax_ids)


class Applying:
    def __init__(self, deps: Deps, opening: Opening) -> None:
        self.d = deps
        self.opening = opening

    def package(self) -> GuaranteePackage:
        return package_in_force(ms_to_dt(self.d.clock()))

    async def _refused(self, who: Principal, action: str, code: str,
                       **detail: Any) -> Refusal:
        """A refusal that leaves a trace: audited with what was asked."""
        async with self.d.store.unit() as tx:
            await tx.audit.add(self.d.clock(), who.actor, action, None, {"code": code, **detail})
            await tx.commit()
        return refuse(code)

    async def _state(self, company: CompanyRecord, hidden: int | None = None) -> CompanyState:
        async with self.d.store.read() as q:
            latest, active = await q.companies.consent_state(company.id)
        return CompanyState(company, latest, active, hidden)

    # -- companies and consent ----------------------------------------------------------
    async def match_company(self, who: Principal, tax_id: str) -> CompanyState | Refusal:
        """The trade-registry check (exists, active, the caller an authorised signatory) and
        the caller's consent to the text in force (once per text version)."""
        async with self.d.store.read() as q:
            user = await q.exporters.get(who.id)
        if user is None:
            return Refusal("not_found", "no such exporter")
        rec = await self.d.providers.registry.lookup(tax_id)
        for code, failed in (("company_not_found", rec is None),
                             ("company_inactive", rec is not None and not rec.active),
                             ("not_signatory", rec is not None
                              and not rec.is_signatory(user.national_id))):
            if failed:
                return await self._refused(who, "company_match_refused", code, tax_id=tax_id)
        assert rec is not None
        company, _ = await self.record_match(who, rec.to_record(),
                                             self.package().consent_text_version)
        return await self._state(company)

    async def record_match(self, who: Principal, registry: dict[str, Any], version: str
                           ) -> tuple[CompanyRecord, bool]:
        """The company refreshed from its registry record, and the caller's consent to
        ``version`` (once: False when that consent was already active, nothing new)."""
        for attempt in range(2):
            try:
                now = self.d.clock()
                async with self.d.store.unit() as tx:
                    company = await tx.companies.upsert(new_id("cmp"), registry, now)
                    new = await tx.companies.active_consent(company.id, who.id, version) is None
                    if new:
                        consent = await tx.companies.consent(company.id, who.id, version, now)
                        await tx.audit.add(now, who.actor, "company_matched", None, {
                            "company_id": company.id, "tax_id": company.tax_id,
                            "name": company.name})
                        await tx.audit.add(now, who.actor, "consent_given", None, {
                            "company_id": company.id, "consent_id": consent.id,
                            "text_version": version})
                    await tx.commit()
                return company, new
            except Conflict:
                if attempt:  # two first matches of one company raced: the loser updates
                    raise
        raise AssertionError("unreachable")

    async def companies(self, who: Principal) -> list[CompanyState]:
        async with self.d.store.read() as q:
            rows = await q.companies.all_of_user(who.id)
        return [await self._state(c) for c in rows]

    async def withdraw_consent(self, who: Principal, company_id: str
                               ) -> CompanyState | Refusal:
        """Stops new applications and hides the company's data in its open rounds."""
        async with self.d.store.read() as q:
            company = await q.companies.of_user(company_id, who.id)
        if company is None:
            return refuse("not_found")
        now = self.d.clock()
        async with self.d.store.unit() as tx:
            withdrawn, hidden = await tx.companies.withdraw(company.id, who.id, now)
            if withdrawn:
                await tx.audit.add(now, who.actor, "consent_withdrawn", None, {
                    "company_id": company.id, "consents": withdrawn,
                    "open_rounds_redacted": hidden})
                await tx.commit()
        return await self._state(company, hidden)

    # -- applications -------------------------------------------------------------------
    async def apply(self, who: Principal, draft: ApplicationDraft
                    ) -> ApplicationState | Refusal:
        """Assess and decide; on approval the offer round opens in the same unit of work."""
        pkg = self.package()
        form = check_form(draft, pkg)
        if isinstance(form, Refusal):
            return form
        company_id, req = form
        if req.preferred_banks:
            async with self.d.store.read() as q:
                known = {b.code for b in await q.banks.all()}
            unknown = [FieldError(f"preferred_banks[{i}]", "unknown_bank",
                                  f"no partner bank with code {code}")
                       for i, code in enumerate(req.preferred_banks) if code not in known]
            if unknown:
                return invalid(unknown)
        async with self.d.store.read() as q:
            company = await q.companies.of_user(company_id, who.id)
            active = company is not None and (await q.companies.consent_state(company.id))[1]
            user = await q.exporters.get(who.id)
        if company is None:
            return refuse("not_found")
        if not active:
            return await self._refused(who, "application_refused", "consent_withdrawn",
                                       company_id=company.id)
        rec = await self.d.providers.registry.lookup(company.tax_id)
        if rec is None:
            return await self._refused(who, "application_refused", "company_not_found",
                                       company_id=company.id)
        if user is None or not rec.is_signatory(user.national_id):
            return await self._refused(who, "application_refused", "not_signatory",
                                       company_id=company.id)
        group = [rec.tax_id, *(a.tax_id for a in rec.affiliates),
                 *(r.tax_id for r in req.related_companies)]
        async with self._group_lock(group) as held:
            if not held:
                return refuse("conflict")
            decided = await self._decide(who, company, user, rec, req, pkg)
        if isinstance(decided, Refusal):
            return decided
        async with self.d.store.read() as q:
            app = await q.applications.get(decided)
        assert app is not None
        return await self._with_round(app)

    async def _decide(self, who: Principal, company: CompanyRecord, user: ExporterRecord,
                      rec: RegistryRecord, req: ApplicationRequest, pkg: GuaranteePackage
                      ) -> str | Refusal:
        """Under the group lock: the re-application rule, the assessment, the decision stored
        with every input and reason, and on approval the round. Returns the application id."""
        now = self.d.clock()
        async with self.d.store.read() as q:
            rejections = await q.applications.rejection_times(rec.tax_id)
        allowed, not_before = rules.may_reapply([ms_to_dt(t) for t in rejections],
                                                ms_to_dt(now), pkg)
        if not allowed:
            assert not_before is not None
            async with self.d.store.unit() as tx:
                await tx.audit.add(now, who.actor, "application_refused", None, {
                    "code": "reapplication_blocked", "company_id": company.id,
                    "not_before": iso(not_before)})
                await tx.commit()
            return refuse("reapplication_blocked", not_before=iso(not_before))
        result = await service.assess(self.d.providers, _Ledger(self.d), rec, req, pkg)
        d = result.decision
        inputs = result.inputs.to_record()
        inputs.update(assessed_at=now, guarantee_tl=d.guarantee_tl,
                      group_exposure_tl=d.group_exposure_tl, group_limit_tl=d.group_limit_tl,
                      is_exporter=d.is_exporter)
        app = ApplicationRecord(
            new_id("app"), company.id, rec.tax_id, who.id, d.status, pkg.version,
            req.currency, req.loan_amount, req.guarantee_amount, d.guarantee_tl,
            d.scorecard.score, d.scorecard.band, req.to_record(), inputs, d.to_wire(),
            pkg.to_record(), None, now)
        opened: Opened | None = None
        async with self.d.store.unit() as tx:
            await tx.applications.add(app)
            await tx.audit.add(now, who.actor, "application_decided", None, {
                "application_id": app.id, "company_id": app.company_id, "tax_id": app.tax_id,
                "status": app.status, "score": app.score, "band": app.band,
                "package_version": app.package_version,
                "reasons": [r["code"] for r in app.decision.get("reasons", [])]})
            if d.approved:
                opened = await self.opening.add(tx, RoundRequest(
                    req.loan_type, req.currency, req.loan_amount, req.guarantee_amount,
                    req.tenor_months, req.grace_months, req.export_commitment,
                    _round_company(rec, user), rules.bank_assessment(result.inputs, d, pkg),
                    who.id, app.id), who.actor)
                rid = opened.terms.round_id
                await tx.applications.attach_round(app.id, rid)
                await tx.audit.add(now, who.actor, "application_round_opened", rid,
                                   {"application_id": app.id})
            await tx.commit()
        if opened is not None:
            await self.opening.go_live(opened)
        return app.id

    @contextlib.asynccontextmanager
    async def _group_lock(self, tax_ids: Sequence[str]) -> AsyncIterator[bool]:
        """Every tax id of the risk group locked, or none (yields False when busy)."""
        token = secrets.token_hex(8)
        held: list[str] = []
        try:
            for t in sorted(set(tax_ids)):
                if not await self.d.guards.acquire("group", t, token, GROUP_LOCK_MS):
                    break
                held.append(t)
            yield len(held) == len(set(tax_ids))
        finally:
            for t in held:
                await self.d.guards.release("group", t, token)

    async def _with_round(self, app: ApplicationRecord) -> ApplicationState:
        rnd = None
        if app.round_id:
            async with self.d.store.read() as q:
                rnd = await q.rounds.get(app.round_id)
        return ApplicationState(app, rnd)

    async def applications(self, who: Principal) -> list[ApplicationState]:
        async with self.d.store.read() as q:
            rows = await q.applications.of_user(who.id)
        return [await self._with_round(a) for a in rows]

    async def application(self, application_id: str, who: Principal | None = None
                          ) -> ApplicationState | None:
        """An application decided here: the caller's own (None: the operator's view)."""
        async with self.d.store.read() as q:
            app = await q.applications.get(application_id)
        if app is None or (who is not None and app.user_id != who.id):
            return None
        return await self._with_round(app)


def _round_company(rec: RegistryRecord, user: ExporterRecord) -> dict[str, Any]:
    return {"name": rec.name, "tax_id": rec.tax_id, "is_sme": rec.is_sme, "sector": rec.sector,
            "contact": {"name": user.full_name, "email": user.email, "phone": user.mobile}}
