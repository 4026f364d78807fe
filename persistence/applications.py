"""The SQL side of applications: companies matched to exporters, consents (muvafakatname) with
text version, time and withdrawal, applications with the package version in force and every
decision input and reason, and the guarantee-exposure ledger (repositories of a unit of work).
``Ledger`` also implements the ``applications.service.ExposureLedger`` port."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.records import (
    ApplicationRecord,
    CompanyRecord,
    ConsentRecord,
    ExposureRecord,
    from_row,
)
from persistence.tables import (
    applications,
    companies,
    consents,
    guarantee_exposures,
    rounds,
)

#: round states in which an approved application's guarantee is still reserved
PENDING_STATES = ("open", "closed")
#: what banks see of a company in its open rounds once the company withdrew its consent
REDACTED_COMPANY: dict[str, Any] = {"name": None, "tax_id": None, "is_sme": None,
                                    "sector": None, "contact": {}, "consent_withdrawn": True}
REDACTED_ASSESSMENT: dict[str, Any] = {"consent_withdrawn": True,
                       "note": "the company withdrew its consent to share its data"}


class Companies:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def upsert(self, new_id: str, registry: dict[str, Any], now: int) -> CompanyRecord:
        """Record (or refresh) the company from its trade-registry record. Two first matches
        of one company racing: the loser's unit fails with ``Conflict`` (retry it)."""
        tax_id = registry["tax_id"]
        values = dict(name=registry["name"], sector=registry.get("sector"),
                      is_sme=bool(registry["is_sme"]), active=bool(registry["active"]),
                      registry=registry, updated_at=now)
        res = await self.conn.execute(update(companies).where(
            companies.c.tax_id == tax_id).values(**values))
        if res.rowcount == 0:
            await self.conn.execute(insert(companies).values(
                id=new_id, tax_id=tax_id, created_at=now, **values))
        row = (await self.conn.execute(select(companies).where(
            companies.c.tax_id == tax_id))).one()
        return from_row(CompanyRecord, row)

    async def get(self, company_id: str) -> CompanyRecord | None:
        row = (await self.conn.execute(
            select(companies).where(companies.c.id == company_id))).first()
        return None if row is None else from_row(CompanyRecord, row)

    async def by_tax_id(self, tax_id: str) -> CompanyRecord | None:
        row = (await self.conn.execute(
            select(companies).where(companies.c.tax_id == tax_id))).first()
        return None if row is None else from_row(CompanyRecord, row)

    async def of_user(self, company_id: str, user_id: str) -> CompanyRecord | None:
        """The company if this user has ever consented for it (matched it), else None."""
        linked = (await self.conn.execute(select(consents.c.id).where(
            consents.c.company_id == company_id, consents.c.user_id == user_id)
            .limit(1))).first()
        return None if linked is None else await self.get(company_id)

    async def all_of_user(self, user_id: str) -> list[CompanyRecord]:
        q = select(companies).where(companies.c.id.in_(
            select(consents.c.company_id).where(consents.c.user_id == user_id))
        ).order_by(companies.c.name, companies.c.id)
        return [from_row(CompanyRecord, r) for r in await self.conn.execute(q)]

    # -- consent ----------------------------------------------------------------------
    async def active_consent(self, company_id: str, user_id: str, text_version: str
                             ) -> ConsentRecord | None:
        """This user's active consent to this text version, if any."""
        row = (await self.conn.execute(select(consents).where(
            consents.c.company_id == company_id, consents.c.user_id == user_id,
            consents.c.withdrawn_at.is_(None), consents.c.text_version == text_version)
            .order_by(consents.c.id.desc()))).first()
        return None if row is None else from_row(ConsentRecord, row)

    async def consent(self, company_id: str, user_id: str, text_version: str,
                      now: int) -> ConsentRecord:
        await self.conn.execute(insert(consents).values(
            company_id=company_id, user_id=user_id, text_version=text_version,
            accepted_at=now))
        row = (await self.conn.execute(select(consents).where(
            consents.c.company_id == company_id, consents.c.user_id == user_id)
            .order_by(consents.c.id.desc()).limit(1))).one()
        return from_row(ConsentRecord, row)

    async def consent_state(self, company_id: str) -> tuple[ConsentRecord | None, bool]:
        """(the latest consent of the company, whether any consent of it is active)."""
        latest = (await self.conn.execute(select(consents).where(
            consents.c.company_id == company_id).order_by(consents.c.id.desc())
            .limit(1))).first()
        active = (await self.conn.execute(select(func.count()).select_from(consents).where(
            consents.c.company_id == company_id,
            consents.c.withdrawn_at.is_(None)))).scalar_one()
        return (None if latest is None else from_row(ConsentRecord, latest)), bool(active)

    async def withdraw(self, company_id: str, user_id: str, now: int) -> tuple[int, int]:
        """Withdraw every active consent of the company (the consent is the company's: any of
        its authorised signatories may withdraw it) and hide the company's data in the pool:
        its open rounds show no name, tax id, contact or assessment from now on.
        Returns (consents withdrawn, rounds redacted)."""
        res = await self.conn.execute(update(consents).where(
            consents.c.company_id == company_id, consents.c.withdrawn_at.is_(None))
            .values(withdrawn_at=now, withdrawn_by=user_id))
        withdrawn = int(res.rowcount or 0)
        if not withdrawn:
            return 0, 0  # already withdrawn: its open rounds are already hidden
        red = await self.conn.execute(update(rounds).where(
            rounds.c.state == "open",
            rounds.c.id.in_(select(applications.c.round_id).where(
                applications.c.company_id == company_id,
                applications.c.round_id.is_not(None))))
            .values(company=REDACTED_COMPANY, assessment=REDACTED_ASSESSMENT))
        return withdrawn, int(red.rowcount or 0)


class Applications:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def rejection_times(self, tax_id: str) -> list[int]:
        q = select(applications.c.created_at).where(
            applications.c.tax_id == tax_id, applications.c.status == "rejected"
        ).order_by(applications.c.created_at)
        return [int(r.created_at) for r in await self.conn.execute(q)]

    async def add(self, app: ApplicationRecord) -> None:
        await self.conn.execute(insert(applications).values(
            id=app.id, company_id=app.company_id, tax_id=app.tax_id, user_id=app.user_id,
            status=app.status, package_version=app.package_version, currency=app.currency,
            loan_amount=app.loan_amount, guarantee_amount=app.guarantee_amount,
            guarantee_tl=app.guarantee_tl, score=app.score, band=app.band,
            request=app.request, inputs=app.inputs, decision=app.decision,
            package=app.package, round_id=app.round_id, created_at=app.created_at))

    async def attach_round(self, application_id: str, round_id: str) -> None:
        await self.conn.execute(update(applications).where(applications.c.id == application_id)
                                .values(round_id=round_id))

    async def get(self, application_id: str) -> ApplicationRecord | None:
        row = (await self.conn.execute(
            select(applications).where(applications.c.id == application_id))).first()
        return None if row is None else from_row(ApplicationRecord, row)

    async def of_round(self, round_id: str) -> ApplicationRecord | None:
        row = (await self.conn.execute(
            select(applications).where(applications.c.round_id == round_id))).first()
        return None if row is None else from_row(ApplicationRecord, row)

    async def of_user(self, user_id: str, limit: int = 100) -> list[ApplicationRecord]:
        q = select(applications).where(applications.c.user_id == user_id).order_by(
            applications.c.created_at.desc(), applications.c.id).limit(limit)
        return [from_row(ApplicationRecord, r) for r in await self.conn.execute(q)]


class Ledger:
    """The guarantee-exposure ledger: guarantees granted through the portal."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, row: ExposureRecord) -> None:
        """One per round (a second is a ``Conflict`` of the unit)."""
        await self.conn.execute(insert(guarantee_exposures).values(
            tax_id=row.tax_id, round_id=row.round_id, application_id=row.application_id,
            offer_id=row.offer_id, bank_id=row.bank_id, currency=row.currency,
            guarantee_amount=row.guarantee_amount, guarantee_tl=row.guarantee_tl,
            fx_rate_e4=row.fx_rate_e4, package_version=row.package_version,
            granted_at=row.granted_at))

    async def exposure(self, tax_ids: Sequence[str]) -> Mapping[str, tuple[int, int]]:
        """tax_id -> (granted: accepted offers in the ledger, pending: approved applications
        whose round is open or binding), kuruş TL."""
        ids = sorted(set(tax_ids))
        if not ids:
            return {}
        granted: dict[str, int] = defaultdict(int)
        pending: dict[str, int] = defaultdict(int)
        for r in await self.conn.execute(
                select(guarantee_exposures.c.tax_id,
                       func.sum(guarantee_exposures.c.guarantee_tl).label("tl"))
                .where(guarantee_exposures.c.tax_id.in_(ids))
                .group_by(guarantee_exposures.c.tax_id)):
            granted[r.tax_id] = int(r.tl)
        j = applications.join(rounds, rounds.c.id == applications.c.round_id)
        for r in await self.conn.execute(
                select(applications.c.tax_id,
                       func.sum(applications.c.guarantee_tl).label("tl")).select_from(j)
                .where(and_(applications.c.tax_id.in_(ids),
                            applications.c.status == "approved",
                            rounds.c.state.in_(PENDING_STATES)))
                .group_by(applications.c.tax_id)):
            pending[r.tax_id] = int(r.tl)
        return {t: (granted[t], pending[t]) for t in ids if granted[t] or pending[t]}

    async def rows(self, tax_id: str | None = None) -> list[ExposureRecord]:
        q = select(guarantee_exposures).order_by(guarantee_exposures.c.id)
        if tax_id is not None:
            q = q.where(guarantee_exposures.c.tax_id == tax_id)
        return [from_row(ExposureRecord, r) for r in await self.conn.execute(q)]
