"""persistence.applications_store on real SQLite and PostgreSQL: companies and consents,
applications with their decisions, and the guarantee-exposure ledger fed by Store.accept in
the acceptance's own transaction."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from sqlalchemy import select

from applications.package import KGF_HD_2026_1 as P
from auction.book import Event
from auction.model import OfferVersion, RoundTerms
from auction.rules import label_pool, new_ref
from persistence.applications_store import REDACTED_COMPANY, ApplicationsStore
from persistence.store import Store
from persistence.tables import audit_log, consents, guarantee_exposures
from tests.integration.conftest import bank_id, offer_terms

T0 = 1_776_700_000_000  # 2026-04-20T15:46:40Z: the stores take times as arguments
HOUR = 3_600_000
M = 100_000_000  # a million in minor units
TAX = "1100000014"
REGISTRY = {"tax_id": TAX, "name": "Anadolu Tekstil İhracat A.Ş.", "active": True,
            "is_sme": True, "sector": "textiles", "insolvency": None, "signatories": [],
            "affiliates": [], "founded_year": 2005}


def apps(store: Store) -> ApplicationsStore:
    return ApplicationsStore(store.engine)


async def match(a: ApplicationsStore, user: str = "usr_1", version: str = "MUV-2026-01",
                registry: dict[str, Any] | None = None, at: int = T0) -> tuple[Any, Any, bool]:
    return await a.match_company(new_company_id="cmp_" + secrets.token_hex(6),
                                 registry=registry or REGISTRY, user_id=user,
                                 text_version=version, now=at, actor=f"exporter:{user}")


async def actions(store: Store, action: str) -> list[dict[str, Any]]:
    return [r for r in await store.list_audit(None) if r["action"] == action]


# ----------------------------------------------------------------------------- companies
async def test_matching_records_the_company_and_one_consent_per_text_version(store: Store):
    a = apps(store)
    company, consent, created = await match(a)
    assert created and company.tax_id == TAX and company.is_sme and company.active
    assert company.registry == REGISTRY
    assert (consent.text_version, consent.accepted_at, consent.withdrawn_at) == \
        ("MUV-2026-01", T0, None)
    again, same, created2 = await match(a, at=T0 + 5)
    assert (again.id, same.id, created2) == (company.id, consent.id, False)
    _, newer, created3 = await match(a, version="MUV-2027-01", at=T0 + 9)
    assert created3 and newer.id != consent.id
    latest, active = await a.consent_state(company.id)
    assert (latest.text_version, active) == ("MUV-2027-01", True)
    assert len(await actions(store, "consent_given")) == 2
    assert len(await actions(store, "company_matched")) == 2


async def test_two_signatories_share_one_company_and_only_they_see_it(store: Store):
    a = apps(store)
    c1, _, _ = await match(a, "usr_1")
    c2, _, _ = await match(a, "usr_2", registry={**REGISTRY, "name": "Anadolu Tekstil A.Ş."})
    assert c1.id == c2.id
    assert (await a.company(c1.id)).name == "Anadolu Tekstil A.Ş."  # refreshed from registry
    assert [c.id for c in await a.companies_of("usr_1")] == [c1.id]
    assert await a.company_of_user(c1.id, "usr_2") is not None
    assert await a.company_of_user(c1.id, "usr_3") is None
    assert await a.companies_of("usr_3") == []


async def test_concurrent_first_matches_of_one_company_make_one_row(store: Store,
                                                                    second_store: Store):
    got = await asyncio.gather(match(apps(store), "usr_1"), match(apps(second_store), "usr_2"))
    assert got[0][0].id == got[1][0].id
    async with store.engine.connect() as conn:
        assert len(list(await conn.execute(select(consents)))) == 2


# ----------------------------------------------------------------------------- rounds helpers
async def open_round(store: Store, *, app_id: str | None, currency: str = "TRY",
                     loan: int = 5 * M, guarantee: int = 5 * M, tax_id: str = TAX,
                     closes_at: int = T0 + HOUR) -> RoundTerms:
    t = RoundTerms("rnd_" + secrets.token_hex(10), currency, "working_capital", loan, guarantee,
                   24, 6, True, T0, closes_at)
    company = {"name": "X", "tax_id": tax_id, "is_sme": True, "sector": "s", "contact": {}}
    await store.insert_round(t, company, {"score": 90, "band": "A"}, "usr_1", app_id,
                             label_pool(), "exporter:usr_1")
    return t


async def close_with_offers(store: Store, t: RoundTerms, amounts: list[int],
                            binding_until: int = T0 + 3 * HOUR) -> list[OfferVersion]:
    events, versions = [], []
    for seq, amount in enumerate(amounts, start=1):
        v = OfferVersion(t.round_id, "off_" + secrets.token_hex(8), new_ref(), bank_id(),
                         f"Banka {seq}", 1, seq, T0 + seq, 400_000 + seq,
                         offer_terms(390_000 + seq, amount=amount))
        versions.append(v)
        events.append(Event(t.round_id, seq, "quote", v))
    events.append(Event(t.round_id, len(amounts) + 1, "round_closed", at_ms=T0 + HOUR))
    assert await store.persist_events(t.round_id, 0, events)
    assert await store.record_close(t.round_id, T0 + HOUR, binding_until, len(amounts) + 1,
                                    versions, 2026)
    return versions


def application_row(app_id: str, company_id: str, *, status: str = "approved",
                    tax_id: str = TAX, guarantee_tl: int = 5 * M, at: int = T0,
                    currency: str = "TRY") -> dict[str, Any]:
    return dict(
        id=app_id, company_id=company_id, tax_id=tax_id, user_id="usr_1", status=status,
        package_version=P.version, currency=currency, loan_amount=5 * M,
        guarantee_amount=5 * M, guarantee_tl=guarantee_tl, score=93, band="A",
        request={"loan_type": "working_capital", "loan_amount": 5 * M},
        inputs={"applicant": REGISTRY, "big": 2**62, "risk": {"credit_score": 1750}},
        decision={"score": 93, "band": "A", "reasons": [{"code": "score_passed", "text": "ok",
                                                         "kind": "note"}]},
        package=P.to_record(), round_id=None, created_at=at)


async def approved(store: Store, company_id: str, **kw: Any) -> tuple[str, RoundTerms]:
    a = apps(store)
    app_id = "app_" + secrets.token_hex(8)
    row = application_row(app_id, company_id, currency=kw.get("currency", "TRY"),
                          guarantee_tl=kw.pop("guarantee_tl", 5 * M))
    await a.insert_application(row, "exporter:usr_1")
    t = await open_round(store, app_id=app_id, **kw)
    await a.attach_round(app_id, t.round_id, T0 + 1, "exporter:usr_1")
    return app_id, t


# ----------------------------------------------------------------------------- consent withdrawal
async def test_withdrawing_consent_ends_it_and_hides_the_company_in_open_rounds(store: Store):
    a = apps(store)
    company, _, _ = await match(a, "usr_1")
    await match(a, "usr_2")
    _, live = await approved(store, company.id)
    _, done = await approved(store, company.id)
    await close_with_offers(store, done, [5 * M])
    assert await a.withdraw_consent(company.id, "usr_2", T0 + 50, "exporter:usr_2") == (2, 1)
    latest, active = await a.consent_state(company.id)
    assert not active and latest.withdrawn_at == T0 + 50 and latest.withdrawn_by == "usr_2"
    hidden = await store.get_round(live.round_id)
    assert hidden.company == REDACTED_COMPANY and hidden.assessment["consent_withdrawn"]
    kept = await store.get_round(done.round_id)  # closed: the bidders already had the data
    assert kept.company["tax_id"] == TAX
    [entry] = await actions(store, "consent_withdrawn")
    assert entry["detail"] == {"company_id": company.id, "consents": 2,
                               "open_rounds_redacted": 1}
    assert await a.withdraw_consent(company.id, "usr_2", T0 + 60, "x") == (0, 0)  # idempotent
    _, _, created = await match(a, "usr_1", at=T0 + 70)  # consenting again lifts it
    assert created and (await a.consent_state(company.id))[1]


# ----------------------------------------------------------------------------- applications
async def test_an_application_reads_back_exactly_with_its_decision(store: Store):
    a = apps(store)
    row = application_row("app_1", "cmp_1")
    await a.insert_application(row, "exporter:usr_1")
    got = await a.application("app_1")
    assert got.inputs == row["inputs"]  # 2**62 survives the JSON column
    assert got.decision == row["decision"] and got.package == P.to_record()
    assert (got.status, got.package_version, got.round_id) == ("approved", P.version, None)
    await a.attach_round("app_1", "rnd_1", T0 + 5, "exporter:usr_1")
    assert (await a.application("app_1")).round_id == "rnd_1"
    [decided] = await actions(store, "application_decided")
    assert decided["detail"]["reasons"] == ["score_passed"]
    assert decided["detail"]["package_version"] == P.version
    assert [r["round_id"] for r in await actions(store, "application_round_opened")] == ["rnd_1"]


async def test_rejections_are_listed_per_company_oldest_first(store: Store):
    a = apps(store)
    for i, (tax, status, at) in enumerate([(TAX, "rejected", T0 + 20), (TAX, "approved", T0),
                                           (TAX, "rejected", T0 + 10),
                                           ("1100000030", "rejected", T0)]):
        await a.insert_application(application_row(f"app_{i}", "cmp_1", status=status,
                                                   tax_id=tax, at=at), "x")
    assert await a.rejection_times(TAX) == [T0 + 10, T0 + 20]
    assert await a.rejection_times("1100000030") == [T0]
    assert await a.rejection_times("1100000022") == []
    assert [r.id for r in await a.applications_of("usr_1")] == ["app_0", "app_2", "app_1",
                                                                "app_3"]


# ----------------------------------------------------------------------------- the ledger
async def test_exposure_is_pending_while_open_or_binding_then_granted_once_accepted(
        store: Store):
    a = apps(store)
    company, _, _ = await match(a)
    app_id, t = await approved(store, company.id)
    assert await a.exposure([TAX, "1100000119"]) == {TAX: (0, 5 * M)}  # open: reserved
    [best] = await close_with_offers(store, t, [5 * M])
    assert await a.exposure([TAX]) == {TAX: (0, 5 * M)}  # binding: still reserved
    assert (await store.accept(t.round_id, best.offer_id, "usr_1", T0 + 2 * HOUR)).ok
    assert await a.exposure([TAX]) == {TAX: (5 * M, 0)}  # granted, no longer pending
    [entry] = await a.ledger(TAX)
    assert (entry.round_id, entry.application_id, entry.offer_id, entry.bank_id) == \
        (t.round_id, app_id, best.offer_id, best.bank_id)
    assert (entry.guarantee_amount, entry.guarantee_tl, entry.fx_rate_e4,
            entry.package_version, entry.granted_at) == \
        (5 * M, 5 * M, 10_000, P.version, T0 + 2 * HOUR)
    [audit] = [r for r in await store.list_audit(t.round_id) if r["action"] == "guarantee_recorded"]
    assert audit["detail"]["guarantee_tl"] == 5 * M


async def test_a_lapsed_round_reserves_nothing(store: Store):
    a = apps(store)
    company, _, _ = await match(a)
    _, t = await approved(store, company.id)
    await close_with_offers(store, t, [5 * M], binding_until=T0 + 2 * HOUR)
    assert await store.lapse_due(T0 + 2 * HOUR) == [t.round_id]
    assert await a.exposure([TAX]) == {}


async def test_a_smaller_foreign_currency_offer_books_a_proportional_guarantee_in_tl(
        store: Store):
    a = apps(store)
    company, _, _ = await match(a)
    # 100 000.00 USD loan, 80 000.00 USD guarantee; the bank lends 75 000.00 USD
    _, t = await approved(store, company.id, currency="USD", loan=100_000_00,
                          guarantee=80_000_00, guarantee_tl=3_200_000_00)
    offers = await close_with_offers(store, t, [75_000_00, 100_000_00])
    assert (await store.accept(t.round_id, offers[0].offer_id, "usr_1", T0 + 2 * HOUR)).ok
    [entry] = await a.ledger(TAX)
    assert (entry.currency, entry.guarantee_amount, entry.fx_rate_e4, entry.guarantee_tl) == \
        ("USD", 60_000_00, 40 * 10_000, 2_400_000_00)  # 60 000 USD x 40 = 2 400 000 TL


async def test_a_refused_acceptance_books_nothing_and_a_second_one_nothing_more(store: Store):
    a = apps(store)
    company, _, _ = await match(a)
    _, t = await approved(store, company.id)
    offers = await close_with_offers(store, t, [5 * M, 5 * M])
    late = await store.accept(t.round_id, offers[0].offer_id, "usr_1", T0 + 3 * HOUR)
    assert (late.ok, late.code) == (False, "binding_expired")
    assert await a.ledger() == []
    assert (await store.accept(t.round_id, offers[0].offer_id, "usr_1", T0 + 2 * HOUR)).ok
    again = await store.accept(t.round_id, offers[1].offer_id, "usr_1", T0 + 2 * HOUR)
    assert (again.ok, again.code) == (False, "already_accepted")
    assert len(await a.ledger()) == 1


async def test_concurrent_acceptances_book_the_guarantee_exactly_once(store: Store,
                                                                     second_store: Store):
    a = apps(store)
    company, _, _ = await match(a)
    _, t = await approved(store, company.id)
    o1, o2 = await close_with_offers(store, t, [5 * M, 5 * M])
    got = await asyncio.gather(store.accept(t.round_id, o1.offer_id, "usr_1", T0 + 2 * HOUR),
                               second_store.accept(t.round_id, o2.offer_id, "usr_1",
                                                   T0 + 2 * HOUR))
    assert sorted(g.ok for g in got) == [False, True]
    async with store.engine.connect() as conn:
        assert len(list(await conn.execute(select(guarantee_exposures)))) == 1


async def test_an_operator_round_without_application_is_booked_under_its_tax_id(store: Store):
    t = await open_round(store, app_id=None, currency="EUR", loan=10_000_00,
                         guarantee=10_000_00, tax_id="1100000022")
    [offer] = await close_with_offers(store, t, [10_000_00])
    assert (await store.accept(t.round_id, offer.offer_id, "usr_1", T0 + 2 * HOUR)).ok
    [entry] = await apps(store).ledger("1100000022")
    assert (entry.application_id, entry.guarantee_tl, entry.package_version) == \
        (None, 450_000_00, P.version)  # 10 000 EUR x 45 at the package in force
    async with store.engine.connect() as conn:
        rows = [r for r in await conn.execute(select(audit_log))
                if r.action == "guarantee_recorded"]
    assert rows[0].round_id == t.round_id
