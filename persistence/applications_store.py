"""The SQL side of applications (issue #3): companies matched to exporters, consents
(muvafakatname) with text version, time and withdrawal, applications with the package version
in force and every decision input and reason, and the guarantee-exposure ledger.

Every method is one transaction, audited where it changes something. The ledger also
implements the ``applications.service.ExposureLedger`` port.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from applications.package import FX_SCALE, package_by_version, package_in_force
from persistence.tables import (
    applications,
    audit_log,
    companies,
    consents,
    exporter_users,
    guarantee_exposures,
    offer_versions,
    rounds,
)

#: round states in which an approved application's guarantee is still reserved
PENDING_STATES = ("open", "closed")
REDACTED_COMPANY: dict[str, Any] = {"name": None, "tax_id": None, "is_sme": None,
                                    "sector": None, "contact": {}, "consent_withdrawn": True}
REDACTED_ASSESSMENT: dict[str, Any] = {"consent_withdrawn": True,
                       "note": "the company withdrew its consent to share its data"}


async def _audit(conn: AsyncConnection, at: int, actor: str, action: str,
                 round_id: str | None, detail: dict[str, Any]) -> None:
    await conn.execute(insert(audit_log).values(at=at, actor=actor, action=action,
                                                round_id=round_id, detail=detail))


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


async def record_accepted_guarantee(conn: AsyncConnection, round_row: Any, binding_row: Any,
                                    now: int) -> bool:
    """Add an accepted offer's guarantee to the exposure ledger, inside the acceptance's own
    transaction (called from ``Store.accept``). The guarantee follows the offer: the round's
    guarantee amount scaled by offer amount / loan amount (a bank may lend less than asked),
    converted to TL at the rate of the package the application was decided under (the package
    in force for a round opened by the operator). Returns False when the round carries no tax
    id to book it under."""
    r = round_row
    app = (await conn.execute(select(applications).where(
        applications.c.round_id == r.id))).first()
    offer = (await conn.execute(select(offer_versions.c.amount).where(
        offer_versions.c.offer_id == binding_row.offer_id,
        offer_versions.c.version == binding_row.version))).first()
    amount = int(r.loan_amount) if offer is None else min(int(offer.amount), int(r.loan_amount))
    guarantee = int(r.guarantee_amount) * amount // int(r.loan_amount)
    if app is not None:
        tax_id = app.tax_id
        version = app.package_version
        rate = int((app.package or {}).get("fx_rates_e4", {}).get(r.currency, 0))
        if not rate:
            known = package_by_version(version)
            rate = known.fx_rates_e4[r.currency] if known else 0
    else:
        tax_id = (r.company or {}).get("tax_id")
        pkg = package_in_force(_utc(now))
        version, rate = pkg.version, pkg.fx_rates_e4.get(r.currency, 0)
    if not tax_id or not rate:
        return False
    tl = -(-guarantee * rate // FX_SCALE)
    await conn.execute(insert(guarantee_exposures).values(
        tax_id=tax_id, round_id=r.id, application_id=app.id if app is not None else None,
        offer_id=binding_row.offer_id, bank_id=binding_row.bank_id, currency=r.currency,
        guarantee_amount=guarantee, guarantee_tl=tl, fx_rate_e4=rate, package_version=version,
        granted_at=now))
    await _audit(conn, now, "system", "guarantee_recorded", r.id, {
        "tax_id": tax_id, "application_id": app.id if app is not None else None,
        "offer_id": binding_row.offer_id, "guarantee_amount": guarantee,
        "currency": r.currency, "guarantee_tl": tl, "fx_rate_e4": rate,
        "package_version": version})
    return True


class ApplicationsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def audit(self, at: int, actor: str, action: str, round_id: str | None,
                    detail: dict[str, Any]) -> None:
        async with self.engine.begin() as conn:
            await _audit(conn, at, actor, action, round_id, detail)

    async def exporter(self, user_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(exporter_users).where(exporter_users.c.id == user_id))).first()

    # -- companies and consent ----------------------------------------------------------
    async def match_company(self, *, new_company_id: str, registry: dict[str, Any],
                            user_id: str, text_version: str, now: int, actor: str
                            ) -> tuple[Any, Any, bool]:
        """Record (or refresh) the company from its registry record and the caller's consent.
        Returns (company, consent, created): ``created`` is False when the caller already had
        an active consent to the same text version (nothing new is recorded)."""
        tax_id = registry["tax_id"]
        values = dict(name=registry["name"], sector=registry.get("sector"),
                      is_sme=bool(registry["is_sme"]), active=bool(registry["active"]),
                      registry=registry, updated_at=now)
        for attempt in range(2):
            try:
                async with self.engine.begin() as conn:
                    res = await conn.execute(update(companies).where(
                        companies.c.tax_id == tax_id).values(**values))
                    if res.rowcount == 0:
                        await conn.execute(insert(companies).values(
                            id=new_company_id, tax_id=tax_id, created_at=now, **values))
                    company = (await conn.execute(select(companies).where(
                        companies.c.tax_id == tax_id))).one()
                    same = (await conn.execute(select(consents).where(
                        consents.c.company_id == company.id, consents.c.user_id == user_id,
                        consents.c.withdrawn_at.is_(None),
                        consents.c.text_version == text_version)
                        .order_by(consents.c.id.desc()))).first()
                    if same is not None:
                        return company, same, False
                    await conn.execute(insert(consents).values(
                        company_id=company.id, user_id=user_id, text_version=text_version,
                        accepted_at=now))
                    consent = (await conn.execute(select(consents).where(
                        consents.c.company_id == company.id, consents.c.user_id == user_id)
                        .order_by(consents.c.id.desc()).limit(1))).one()
                    await _audit(conn, now, actor, "company_matched", None, {
                        "company_id": company.id, "tax_id": tax_id, "name": company.name})
                    await _audit(conn, now, actor, "consent_given", None, {
                        "company_id": company.id, "consent_id": consent.id,
                        "text_version": text_version})
                    return company, consent, True
            except IntegrityError:
                if attempt:  # two first matches of one company raced: the loser updates
                    raise
        raise AssertionError("unreachable")

    async def company(self, company_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(companies).where(companies.c.id == company_id))).first()

    async def company_of_user(self, company_id: str, user_id: str) -> Any:
        """The company if this user has ever consented for it (matched it), else None."""
        async with self.engine.connect() as conn:
            linked = (await conn.execute(select(consents.c.id).where(
                consents.c.company_id == company_id, consents.c.user_id == user_id)
                .limit(1))).first()
            if linked is None:
                return None
            return (await conn.execute(
                select(companies).where(companies.c.id == company_id))).first()

    async def consent_state(self, company_id: str) -> tuple[Any, bool]:
        """(the latest consent of the company, whether any consent of it is active)."""
        async with self.engine.connect() as conn:
            latest = (await conn.execute(select(consents).where(
                consents.c.company_id == company_id).order_by(consents.c.id.desc())
                .limit(1))).first()
            active = (await conn.execute(select(func.count()).select_from(consents).where(
                consents.c.company_id == company_id,
                consents.c.withdrawn_at.is_(None)))).scalar_one()
        return latest, bool(active)

    async def companies_of(self, user_id: str) -> list[Any]:
        q = select(companies).where(companies.c.id.in_(
            select(consents.c.company_id).where(consents.c.user_id == user_id))
        ).order_by(companies.c.name, companies.c.id)
        async with self.engine.connect() as conn:
            return list(await conn.execute(q))

    async def withdraw_consent(self, company_id: str, user_id: str, now: int,
                               actor: str) -> tuple[int, int]:
        """Withdraw every active consent of the company (the consent is the company's, any of
        its authorised signatories may withdraw it) and hide the company's data in the pool:
        its open rounds show no name, tax id, contact or assessment from now on.
        Returns (consents withdrawn, rounds redacted)."""
        async with self.engine.begin() as conn:
            res = await conn.execute(update(consents).where(
                consents.c.company_id == company_id, consents.c.withdrawn_at.is_(None))
                .values(withdrawn_at=now, withdrawn_by=user_id))
            withdrawn = res.rowcount or 0
            if not withdrawn:
                return 0, 0  # already withdrawn: its open rounds are already hidden
            red = await conn.execute(update(rounds).where(
                rounds.c.state == "open",
                rounds.c.id.in_(select(applications.c.round_id).where(
                    applications.c.company_id == company_id,
                    applications.c.round_id.is_not(None))))
                .values(company=REDACTED_COMPANY, assessment=REDACTED_ASSESSMENT))
            redacted = red.rowcount or 0
            await _audit(conn, now, actor, "consent_withdrawn", None, {
                "company_id": company_id, "consents": withdrawn,
                "open_rounds_redacted": redacted})
        return withdrawn, redacted

    # -- applications -------------------------------------------------------------------
    async def rejection_times(self, tax_id: str) -> list[int]:
        q = select(applications.c.created_at).where(
            applications.c.tax_id == tax_id, applications.c.status == "rejected"
        ).order_by(applications.c.created_at)
        async with self.engine.connect() as conn:
            return [int(r.created_at) for r in await conn.execute(q)]

    async def insert_application(self, row: dict[str, Any], actor: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(applications).values(**row))
            await _audit(conn, row["created_at"], actor, "application_decided", None, {
                "application_id": row["id"], "company_id": row["company_id"],
                "tax_id": row["tax_id"], "status": row["status"], "score": row["score"],
                "band": row["band"], "package_version": row["package_version"],
                "reasons": [r["code"] for r in row["decision"].get("reasons", [])]})

    async def attach_round(self, application_id: str, round_id: str, now: int,
                           actor: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(applications).where(applications.c.id == application_id)
                               .values(round_id=round_id))
            await _audit(conn, now, actor, "application_round_opened", round_id,
                         {"application_id": application_id})

    async def application(self, application_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(applications).where(applications.c.id == application_id))).first()

    async def applications_of(self, user_id: str, limit: int = 100) -> list[Any]:
        q = select(applications).where(applications.c.user_id == user_id).order_by(
            applications.c.created_at.desc(), applications.c.id).limit(limit)
        async with self.engine.connect() as conn:
            return list(await conn.execute(q))

    # -- the guarantee-exposure ledger (applications.service.ExposureLedger) ---------------
    async def exposure(self, tax_ids: Sequence[str]) -> Mapping[str, tuple[int, int]]:
        """tax_id -> (granted: accepted offers in the ledger, pending: approved applications
        whose round is open or binding), kuruş TL."""
        ids = sorted(set(tax_ids))
        if not ids:
            return {}
        granted: dict[str, int] = defaultdict(int)
        pending: dict[str, int] = defaultdict(int)
        async with self.engine.connect() as conn:
            for r in await conn.execute(
                    select(guarantee_exposures.c.tax_id,
                           func.sum(guarantee_exposures.c.guarantee_tl).label("tl"))
                    .where(guarantee_exposures.c.tax_id.in_(ids))
                    .group_by(guarantee_exposures.c.tax_id)):
                granted[r.tax_id] = int(r.tl)
            j = applications.join(rounds, rounds.c.id == applications.c.round_id)
            for r in await conn.execute(
                    select(applications.c.tax_id,
                           func.sum(applications.c.guarantee_tl).label("tl")).select_from(j)
                    .where(and_(applications.c.tax_id.in_(ids),
                                applications.c.status == "approved",
                                rounds.c.state.in_(PENDING_STATES)))
                    .group_by(applications.c.tax_id)):
                pending[r.tax_id] = int(r.tl)
        return {t: (granted[t], pending[t]) for t in ids if granted[t] or pending[t]}

    async def ledger(self, tax_id: str | None = None) -> list[Any]:
        q = select(guarantee_exposures).order_by(guarantee_exposures.c.id)
        if tax_id is not None:
            q = q.where(guarantee_exposures.c.tax_id == tax_id)
        async with self.engine.connect() as conn:
            return list(await conn.execute(q))
