"""The SQL side of applications on real SQLite and PostgreSQL: companies and consents,
applications with their decisions, and the guarantee-exposure ledger booked by the acceptance
in its own unit of work."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from sqlalchemy import select

from applications.package import KGF_HD_2026_1 as P
from auction.book import Event
from auction.model import OfferVersion, RoundTerms
from auction.rules import label_pool, new_ref
from persistence.applications import REDACTED_COMPANY
from persistence.records import ApplicationRecord, CompanyRecord, ConsentRecord
from persistence.tables import audit_log, consents, guarantee_exposures
from tests.integration.conftest import T0, Sql, bank_id, offer_terms
from usecases.security import Principal

HOUR = 3_600_000
M = 100_000_000  # a million in minor units
TAX = "1100000014"
REGISTRY = {"tax_id": TAX, "name": "Anadolu Tekstil İhracat A.Ş.", "active": True,
            "is_sme": True, "sector": "textiles", "insolvency": None, "signatories": [],
            "affiliates": [], "founded_year": 2005}


async def match(sql: Sql, user: str = "usr_1", version: str = "MUV-2026-01",
                registry: dict[str, Any] | None = None, at: int = T0
                ) -> tuple[CompanyRecord, ConsentRecord, bool]:
    sql.clock.now = at
    company, created = await sql.applying.record_match(Principal("exporter", user),
                                                       registry or REGISTRY, version)
    async with sql.store.read() as q:
        consent = await q.companies.active_consent(company.id, user, version)
    assert consent is not None
    return company, consent, created


async def consent_state(sql: Sql, company_id: str) -> tuple[ConsentRecord | None, bool]:
    async with sql.store.read() as q:
        return await q.companies.consent_state(company_id)


async def actions(sql: Sql, action: str) -> list[Any]:
    async with sql.store.read() as q:
        return [r for r in await q.audit.page(None, 10_000) if r.action == action]


async def ledger(sql: Sql, tax_id: str | None = None) -> list[Any]:
    async with sql.store.read() as q:
        return await q.ledger.rows(tax_id)


async def exposure(sql: Sql, tax_ids: list[str]) -> Any:
    async with sql.store.read() as q:
        return await q.ledger.exposure(tax_ids)


# ----------------------------------------------------------------------------- companies
async def test_matching_records_the_company_and_one_consent_per_text_version(sql: Sql):
    company, consent, created = await match(sql)
    assert created and company.tax_id == TAX and company.is_sme and company.active
    assert company.registry == REGISTRY
    assert (consent.text_version, consent.accepted_at, consent.withdrawn_at) == \
        ("MUV-2026-01", T0, None)
    again, same, created2 = await match(sql, at=T0 + 5)
    assert (again.id, same.id, created2) == (company.id, consent.id, False)
    _, newer, created3 = await match(sql, version="MUV-2027-01", at=T0 + 9)
    assert created3 and newer.id != consent.id
    latest, active = await consent_state(sql, company.id)
    assert latest is not None and (latest.text_version, active) == ("MUV-2027-01", True)
    assert len(await actions(sql, "consent_given")) == 2
    assert len(await actions(sql, "company_matched")) == 2


async def test_two_signatories_share_one_company_and_only_they_see_it(sql: Sql):
    c1, _, _ = await match(sql, "usr_1")
    c2, _, _ = await match(sql, "usr_2", registry={**REGISTRY, "name": "Anadolu Tekstil A.Ş."})
    assert c1.id == c2.id
    async with sql.store.read() as q:
        got = await q.companies.get(c1.id)
        assert got is not None and got.name == "Anadolu Tekstil A.Ş."  # refreshed
        assert [c.id for c in await q.companies.all_of_user("usr_1")] == [c1.id]
        assert await q.companies.of_user(c1.id, "usr_2") is not None
        assert await q.companies.of_user(c1.id, "usr_3") is None
        assert await q.companies.all_of_user("usr_3") == []


async def test_concurrent_first_matches_of_one_company_make_one_row(sql: Sql, sql2: Sql):
    got = await asyncio.gather(match(sql, "usr_1"), match(sql2, "usr_2"))
    assert got[0][0].id == got[1][0].id
    async with sql.store.engine.connect() as conn:
        assert len(list(await conn.execute(select(consents)))) == 2


# ----------------------------------------------------------------------------- rounds helpers
async def open_round(sql: Sql, *, app_id: str | None, currency: str = "TRY",
                     loan: int = 5 * M, guarantee: int = 5 * M, tax_id: str = TAX,
                     closes_at: int = T0 + HOUR) -> RoundTerms:
    t = RoundTerms("rnd_" + secrets.token_hex(10), currency, "working_capital", loan, guarantee,
                   24, 6, True, T0, closes_at)
    company = {"name": "X", "tax_id": tax_id, "is_sme": True, "sector": "s", "contact": {}}
    async with sql.store.unit() as tx:
        await tx.rounds.add(t, company, {"score": 90, "band": "A"}, "usr_1", app_id,
                            label_pool())
        if app_id is not None:
            await tx.applications.attach_round(app_id, t.round_id)
        await tx.commit()
    return t


async def close_with_offers(sql: Sql, t: RoundTerms, amounts: list[int],
                            binding_until: int = T0 + 3 * HOUR) -> list[OfferVersion]:
    events, versions = [], []
    for seq, amount in enumerate(amounts, start=1):
        v = OfferVersion(t.round_id, "off_" + secrets.token_hex(8), new_ref(), bank_id(),
                         f"Banka {seq}", 1, seq, T0 + seq, 400_000 + seq,
                         offer_terms(390_000 + seq, amount=amount))
        versions.append(v)
        events.append(Event(t.round_id, seq, "quote", v))
    events.append(Event(t.round_id, len(amounts) + 1, "round_closed", at_ms=T0 + HOUR))
    assert await sql.persist(t.round_id, 0, events)
    assert await sql.close(t.round_id, T0 + HOUR, binding_until, len(amounts) + 1, versions,
                           2026)
    return versions


def application_row(app_id: str, company_id: str, *, status: str = "approved",
                    tax_id: str = TAX, guarantee_tl: int = 5 * M, at: int = T0,
                    currency: str = "TRY") -> ApplicationRecord:
    return ApplicationRecord(
        id=app_id, company_id=company_id, tax_id=tax_id, user_id="usr_1", status=status,
        package_version=P.version, currency=currency, loan_amount=5 * M,
        guarantee_amount=5 * M, guarantee_tl=guarantee_tl, score=93, band="A",
        request={"loan_type": "working_capital", "loan_amount": 5 * M},
        inputs={"applicant": REGISTRY, "big": 2**62, "risk": {"credit_score": 1750}},
        decision={"score": 93, "band": "A", "reasons": [{"code": "score_passed", "text": "ok",
                                                         "kind": "note"}]},
        package=P.to_record(), round_id=None, created_at=at)


async def add_application(sql: Sql, row: ApplicationRecord) -> None:
    async with sql.store.unit() as tx:
        await tx.applications.add(row)
        await tx.commit()


async def approved(sql: Sql, company_id: str, **kw: Any) -> tuple[str, RoundTerms]:
    app_id = "app_" + secrets.token_hex(8)
    row = application_row(app_id, company_id, currency=kw.get("currency", "TRY"),
                          guarantee_tl=kw.pop("guarantee_tl", 5 * M))
    await add_application(sql, row)
    t = await open_round(sql, app_id=app_id, **kw)
    return app_id, t


# ----------------------------------------------------------------------------- consent withdrawal
async def test_withdrawing_consent_ends_it_and_hides_the_company_in_open_rounds(sql: Sql):
    company, _, _ = await match(sql, "usr_1")
    await match(sql, "usr_2")
    _, live = await approved(sql, company.id)
    _, done = await approved(sql, company.id)
    await close_with_offers(sql, done, [5 * M])
    sql.clock.now = T0 + 50
    usr_2 = Principal("exporter", "usr_2")
    state = await sql.applying.withdraw_consent(usr_2, company.id)
    assert not isinstance(state, Exception) and state.open_rounds_hidden == 1
    latest, active = await consent_state(sql, company.id)
    assert latest is not None
    assert not active and latest.withdrawn_at == T0 + 50 and latest.withdrawn_by == "usr_2"
    hidden = await sql.round(live.round_id)
    assert hidden is not None and hidden.company == REDACTED_COMPANY
    assert hidden.assessment is not None and hidden.assessment["consent_withdrawn"]
    kept = await sql.round(done.round_id)  # closed: the bidders already had the data
    assert kept is not None and kept.company["tax_id"] == TAX
    [entry] = await actions(sql, "consent_withdrawn")
    assert entry.detail == {"company_id": company.id, "consents": 2, "open_rounds_redacted": 1}
    sql.clock.now = T0 + 60
    again = await sql.applying.withdraw_consent(usr_2, company.id)  # idempotent
    assert again.open_rounds_hidden == 0
    assert len(await actions(sql, "consent_withdrawn")) == 1
    _, _, created = await match(sql, "usr_1", at=T0 + 70)  # consenting again lifts it
    assert created and (await consent_state(sql, company.id))[1]


# ----------------------------------------------------------------------------- applications
async def test_an_application_reads_back_exactly_with_its_decision(sql: Sql):
    row = application_row("app_1", "cmp_1")
    await add_application(sql, row)
    async with sql.store.read() as q:
        got = await q.applications.get("app_1")
    assert got == row  # every field exact: 2**62 survives the JSON column
    async with sql.store.unit() as tx:
        await tx.applications.attach_round("app_1", "rnd_1")
        await tx.commit()
    async with sql.store.read() as q:
        attached = await q.applications.get("app_1")
        assert attached is not None and attached.round_id == "rnd_1"
        by_round = await q.applications.of_round("rnd_1")
        assert by_round is not None and by_round.id == "app_1"


async def test_rejections_are_listed_per_company_oldest_first(sql: Sql):
    for i, (tax, status, at) in enumerate([(TAX, "rejected", T0 + 20), (TAX, "approved", T0),
                                           (TAX, "rejected", T0 + 10),
                                           ("1100000030", "rejected", T0)]):
        await add_application(sql, application_row(f"app_{i}", "cmp_1", status=status,
                                                   tax_id=tax, at=at))
    async with sql.store.read() as q:
        assert await q.applications.rejection_times(TAX) == [T0 + 10, T0 + 20]
        assert await q.applications.rejection_times("1100000030") == [T0]
        assert await q.applications.rejection_times("1100000022") == []
        assert [r.id for r in await q.applications.of_user("usr_1")] == [
            "app_0", "app_2", "app_1", "app_3"]


# ----------------------------------------------------------------------------- the ledger
async def test_exposure_is_pending_while_open_or_binding_then_granted_once_accepted(sql: Sql):
    company, _, _ = await match(sql)
    app_id, t = await approved(sql, company.id)
    assert await exposure(sql, [TAX, "1100000119"]) == {TAX: (0, 5 * M)}  # open: reserved
    [best] = await close_with_offers(sql, t, [5 * M])
    assert await exposure(sql, [TAX]) == {TAX: (0, 5 * M)}  # binding: still reserved
    assert await sql.accept(t.round_id, best.offer_id, "usr_1", T0 + 2 * HOUR) is None
    assert await exposure(sql, [TAX]) == {TAX: (5 * M, 0)}  # granted, no longer pending
    [entry] = await ledger(sql, TAX)
    assert (entry.round_id, entry.application_id, entry.offer_id, entry.bank_id) == \
        (t.round_id, app_id, best.offer_id, best.bank_id)
    assert (entry.guarantee_amount, entry.guarantee_tl, entry.fx_rate_e4,
            entry.package_version, entry.granted_at) == \
        (5 * M, 5 * M, 10_000, P.version, T0 + 2 * HOUR)
    [audit] = [r for r in await sql.audit(t.round_id) if r.action == "guarantee_recorded"]
    assert audit.detail["guarantee_tl"] == 5 * M


async def test_a_lapsed_round_reserves_nothing(sql: Sql):
    company, _, _ = await match(sql)
    _, t = await approved(sql, company.id)
    await close_with_offers(sql, t, [5 * M], binding_until=T0 + 2 * HOUR)
    assert await sql.lapse_due(T0 + 2 * HOUR) == [t.round_id]
    assert await exposure(sql, [TAX]) == {}


async def test_a_smaller_foreign_currency_offer_books_a_proportional_guarantee_in_tl(sql: Sql):
    company, _, _ = await match(sql)
    # 100 000.00 USD loan, 80 000.00 USD guarantee; the bank lends 75 000.00 USD
    _, t = await approved(sql, company.id, currency="USD", loan=100_000_00,
                          guarantee=80_000_00, guarantee_tl=3_200_000_00)
    offers = await close_with_offers(sql, t, [75_000_00, 100_000_00])
    assert await sql.accept(t.round_id, offers[0].offer_id, "usr_1", T0 + 2 * HOUR) is None
    [entry] = await ledger(sql, TAX)
    assert (entry.currency, entry.guarantee_amount, entry.fx_rate_e4, entry.guarantee_tl) == \
        ("USD", 60_000_00, 40 * 10_000, 2_400_000_00)  # 60 000 USD x 40 = 2 400 000 TL


async def test_a_refused_acceptance_books_nothing_and_a_second_one_nothing_more(sql: Sql):
    company, _, _ = await match(sql)
    _, t = await approved(sql, company.id)
    offers = await close_with_offers(sql, t, [5 * M, 5 * M])
    late = await sql.accept(t.round_id, offers[0].offer_id, "usr_1", T0 + 3 * HOUR)
    assert late == "binding_expired"
    assert await ledger(sql) == []
    assert await sql.accept(t.round_id, offers[0].offer_id, "usr_1", T0 + 2 * HOUR) is None
    again = await sql.accept(t.round_id, offers[1].offer_id, "usr_1", T0 + 2 * HOUR)
    assert again == "already_accepted"
    assert len(await ledger(sql)) == 1


async def test_concurrent_acceptances_book_the_guarantee_exactly_once(sql: Sql, sql2: Sql):
    company, _, _ = await match(sql)
    _, t = await approved(sql, company.id)
    o1, o2 = await close_with_offers(sql, t, [5 * M, 5 * M])
    got = await asyncio.gather(sql.accept(t.round_id, o1.offer_id, "usr_1", T0 + 2 * HOUR),
                               sql2.accept(t.round_id, o2.offer_id, "usr_1", T0 + 2 * HOUR))
    assert sorted(got, key=str) == [None, "already_accepted"]
    async with sql.store.engine.connect() as conn:
        assert len(list(await conn.execute(select(guarantee_exposures)))) == 1


async def test_an_operator_round_without_application_is_booked_under_its_tax_id(sql: Sql):
    t = await open_round(sql, app_id=None, currency="EUR", loan=10_000_00,
                         guarantee=10_000_00, tax_id="1100000022")
    [offer] = await close_with_offers(sql, t, [10_000_00])
    assert await sql.accept(t.round_id, offer.offer_id, "usr_1", T0 + 2 * HOUR) is None
    [entry] = await ledger(sql, "1100000022")
    assert (entry.application_id, entry.guarantee_tl, entry.package_version) == \
        (None, 450_000_00, P.version)  # 10 000 EUR x 45 at the package in force
    async with sql.store.engine.connect() as conn:
        rows = [r for r in await conn.execute(select(audit_log))
                if r.action == "guarantee_recorded"]
    assert rows[0].round_id == t.round_id
