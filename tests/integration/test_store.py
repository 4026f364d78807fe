"""The SQL side on real SQLite and PostgreSQL: one unit of work per use case (rolled back unless
committed), and writes that race across processes made safe by unique constraints and
conditional updates. The use cases run here on the reference book (memory) with a fixed clock,
so every SQL write they make is checked exactly."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from sqlalchemy import select

from auction.book import Event
from auction.model import OfferVersion, RoundState, RoundTerms
from auction.rules import label_pool, new_ref
from persistence.records import BankRecord, RoundRecord
from persistence.reference import is_valid_reference, reference_number
from persistence.rounds import CloseRow
from persistence.store import Conflict, Store
from persistence.tables import (
    acceptances,
    audit_log,
    banks,
    binding_offers,
    offer_versions,
    round_closings,
    rounds,
)
from tests.integration.conftest import COMPANY, T0, Sql, bank_id, offer_terms

HOUR = 3_600_000


def round_terms(closes_at_ms: int = T0 + HOUR, opened_at_ms: int = T0) -> RoundTerms:
    return RoundTerms("rnd_" + secrets.token_hex(10), "TRY", "working_capital", 500_000_000,
                      400_000_000, 24, 6, True, opened_at_ms, closes_at_ms)


async def new_round(sql: Sql, closes_at_ms: int = T0 + HOUR, **kw: Any) -> RoundTerms:
    t = round_terms(closes_at_ms)
    async with sql.store.unit() as tx:
        await tx.rounds.add(t, COMPANY, {"score": 700}, kw.get("exporter", "usr_1"),
                            kw.get("application_id"), label_pool())
        await tx.commit()
    return t


class Offers:
    """Builds the quote events a Redis book would emit for one round: seq rises by one."""

    def __init__(self, round_id: str) -> None:
        self.round_id = round_id
        self.seq = 0
        self.latest: dict[str, OfferVersion] = {}

    def submit(self, bank: str, label: str, rate_e4: int) -> Event:
        return self._emit(OfferVersion(self.round_id, "off_" + secrets.token_hex(10), new_ref(),
                                       bank, label, 1, 0, 0, rate_e4 + 10_000,
                                       offer_terms(rate_e4)))

    def revise(self, offer_id: str, rate_e4: int) -> Event:
        old = self.latest[offer_id]
        return self._emit(OfferVersion(self.round_id, offer_id, old.ref, old.bank_id, old.label,
                                       old.version + 1, 0, 0, rate_e4 + 10_000,
                                       offer_terms(rate_e4)))

    def close(self, at_ms: int) -> Event:
        self.seq += 1
        return Event(self.round_id, self.seq, "round_closed", at_ms=at_ms)

    def _emit(self, v: OfferVersion) -> Event:
        self.seq += 1
        v = OfferVersion(v.round_id, v.offer_id, v.ref, v.bank_id, v.label, v.version, self.seq,
                         T0 + self.seq * 1000, v.apr_e4, v.terms)
        self.latest[v.offer_id] = v
        return Event(self.round_id, self.seq, "quote", v)

    def ranked(self) -> list[OfferVersion]:
        return sorted(self.latest.values(), key=lambda o: (o.apr_e4, o.terms.annual_rate_e4, o.seq))


async def rows(store: Store, table: Any, **where: Any) -> list[Any]:
    q = select(table)
    for col, value in where.items():
        q = q.where(table.c[col] == value)
    async with store.engine.connect() as conn:
        return list(await conn.execute(q))


async def closed_round(sql: Sql, binding_until: int = T0 + 3 * HOUR
                       ) -> tuple[RoundTerms, Offers]:
    """A round with two banks' offers, persisted and closed at T0 + 1h."""
    t = await new_round(sql)
    o = Offers(t.round_id)
    evs = [o.submit(bank_id(), "Banka K", 390_000), o.submit(bank_id(), "Banka D", 370_000)]
    evs.append(o.close(T0 + HOUR))
    assert await sql.persist(t.round_id, 0, evs)
    assert await sql.close(t.round_id, T0 + HOUR, binding_until, o.seq, o.ranked(), 2026)
    return t, o


# ----------------------------------------------------------------------------- banks
async def test_a_unit_that_breaks_a_unique_constraint_is_rolled_back_whole(sql: Sql):
    async def add(bank: BankRecord) -> None:
        async with sql.store.unit() as tx:
            await tx.banks.add(bank)
            await tx.audit.add(T0, "operator", "bank_created", None, {"bank_id": bank.id})
            await tx.commit()

    await add(BankRecord("bnk_1", "ZIRAAT", "Ziraat", "cid-1", "hash", True, T0))
    with pytest.raises(Conflict):
        await add(BankRecord("bnk_2", "ZIRAAT", "Other", "cid-2", "hash", True, T0))
    async with sql.store.read() as q:
        assert [b.id for b in await q.banks.all()] == ["bnk_1"]
        assert await q.banks.by_client_id("cid-2") is None
    assert [a.detail["bank_id"] for a in await rows(sql.store, audit_log, action="bank_created")] \
        == ["bnk_1"]


async def test_a_unit_not_committed_leaves_nothing(sql: Sql):
    t = round_terms()
    async with sql.store.unit() as tx:
        await tx.rounds.add(t, COMPANY, None, None, None, label_pool())
        await tx.audit.add(T0, "operator", "round_opened", t.round_id, {})
    with pytest.raises(RuntimeError):
        async with sql.store.unit() as tx:
            await tx.rounds.add(t, COMPANY, None, None, None, label_pool())
            raise RuntimeError("the use case failed half-way")
    assert await rows(sql.store, rounds) == [] and await rows(sql.store, audit_log) == []


# ----------------------------------------------------------------------------- rounds
async def test_an_inserted_round_reads_back_open_with_its_terms_and_label_pool(sql: Sql):
    store = sql.store
    t = round_terms()
    labels = label_pool()
    async with store.unit() as tx:
        await tx.rounds.add(t, COMPANY, {"score": 712, "band": "B"}, "usr_9", "app_9", labels)
        await tx.commit()
    row = await sql.round(t.round_id)
    assert row is not None and row.state == RoundState.OPEN.value
    assert row.terms == t
    assert (row.opened_at, row.closes_at, row.persisted_seq) == (T0, T0 + HOUR, 0)
    assert (row.loan_amount, row.guarantee_amount, row.export_commitment) == \
        (500_000_000, 400_000_000, True)
    assert row.company == COMPANY and row.assessment == {"score": 712, "band": "B"}
    assert row.label_pool == labels
    async with store.read() as q:
        by_app = await q.rounds.by_application("app_9")
        assert by_app is not None and by_app.id == t.round_id
        assert await q.rounds.get("rnd_missing") is None


async def test_rounds_page_by_closing_time_then_id_without_gaps_or_repeats(sql: Sql):
    store = sql.store

    async def page_of(states: list[str], limit: int, after: tuple[int, str] | None,
                      bidder: str | None = None) -> list[RoundRecord]:
        async with store.read() as q:
            return await q.rounds.page(states, limit, after, bidder)

    made = [await new_round(sql, closes_at_ms=T0 + HOUR * (i % 3)) for i in range(11)]
    seen: list[str] = []
    after: tuple[int, str] | None = None
    pages = 0
    while True:
        page = await page_of(["open"], 4, after)
        if not page:
            break
        pages += 1
        assert len(page) <= 4
        seen += [r.id for r in page]
        after = (page[-1].closes_at, page[-1].id)
    assert pages == 3
    assert seen == [t.round_id for t in sorted(made, key=lambda t: (t.closes_at_ms, t.round_id))]
    # the state filter and the bidder filter narrow the same ordering
    assert await page_of(["closed"], 100, None) == []
    bank = bank_id()
    some = sorted([made[0], made[5], made[7]], key=lambda t: (t.closes_at_ms, t.round_id))
    for t in some:
        assert await sql.persist(t.round_id, 0,
                                 [Offers(t.round_id).submit(bank, "Banka A", 390_000)])
    first = await page_of(["open"], 2, None, bidder=bank)
    rest = await page_of(["open"], 2, (first[-1].closes_at, first[-1].id), bidder=bank)
    assert [r.id for r in first + rest] == [t.round_id for t in some]


# ----------------------------------------------------------------------------- offer versions
async def test_persisting_the_same_batch_twice_writes_it_once(sql: Sql):
    t = await new_round(sql)
    o = Offers(t.round_id)
    batch = [o.submit(bank_id(), "Banka A", 390_000), o.submit(bank_id(), "Banka B", 380_000)]
    assert await sql.persist(t.round_id, 0, batch)
    assert not await sql.persist(t.round_id, 0, batch)
    assert len(await sql.versions(t.round_id)) == 2
    assert (await sql.round(t.round_id)).persisted_seq == 2
    # an already persisted prefix is skipped; the next batch continues from persisted_seq
    nxt = batch + [o.submit(bank_id(), "Banka C", 370_000)]
    assert await sql.persist(t.round_id, 2, nxt)
    assert [v.seq for v in await sql.versions(t.round_id)] == [1, 2, 3]


async def test_a_batch_that_does_not_start_at_persisted_seq_is_refused(sql: Sql):
    t = await new_round(sql)
    o = Offers(t.round_id)
    evs = [o.submit(bank_id(), "Banka A", 390_000) for _ in range(3)]
    assert not await sql.persist(t.round_id, 1, evs)  # persisted_seq is 0, not 1
    assert await sql.versions(t.round_id) == []
    assert (await sql.round(t.round_id)).persisted_seq == 0


async def test_two_concurrent_persisters_of_one_batch_exactly_one_wins(sql: Sql,
                                                                       sql2: Sql):
    for _ in range(5):
        t = await new_round(sql)
        o = Offers(t.round_id)
        batch = [o.submit(bank_id(), f"Banka {c}", 380_000 + i) for i, c in enumerate("ABCDEF")]
        won = await asyncio.gather(sql.persist(t.round_id, 0, batch),
                                   sql2.persist(t.round_id, 0, batch))
        assert sorted(won) == [False, True]
        assert [v.seq for v in await sql.versions(t.round_id)] == [1, 2, 3, 4, 5, 6]
        audits = await sql.audit(t.round_id)
        assert len(audits) == 6


async def test_each_offer_version_gets_one_audit_row_naming_bank_version_and_terms(sql: Sql):
    t = await new_round(sql)
    o = Offers(t.round_id)
    bank = bank_id()
    first = o.submit(bank, "Banka Ş", 390_000)
    assert first.offer is not None
    evs = [first, o.revise(first.offer.offer_id, 385_000), o.revise(first.offer.offer_id, 380_000)]
    assert await sql.persist(t.round_id, 0, evs)
    audits = await sql.audit(t.round_id)
    assert [(a.action, a.actor, a.detail["version"], a.detail["seq"]) for a in audits] \
        == [("offer_submitted", f"bank:{bank}", 1, 1), ("offer_revised", f"bank:{bank}", 2, 2),
            ("offer_revised", f"bank:{bank}", 3, 3)]
    assert audits[2].detail["r"] == 380_000
    assert audits[2].detail["offer_id"] == first.offer.offer_id


async def test_versions_read_back_exactly_in_seq_order_and_per_bank(sql: Sql):
    t = await new_round(sql)
    o = Offers(t.round_id)
    a, b = bank_id(), bank_id()
    e1 = o.submit(a, "Banka A", 390_000)
    e2 = o.submit(b, "Banka B", 395_000)
    assert e1.offer and e2.offer
    e3 = o.revise(e2.offer.offer_id, 371_250)
    e4 = o.revise(e1.offer.offer_id, 368_125)
    assert await sql.persist(t.round_id, 0, [e1, e2])
    assert await sql.persist(t.round_id, 2, [e3, e4])
    other = await new_round(sql)  # another round's versions never leak in
    assert await sql.persist(other.round_id, 0,
                                      [Offers(other.round_id).submit(a, "Banka Z", 400_000)])
    got = await sql.versions(t.round_id)
    assert got == [e.offer for e in (e1, e2, e3, e4)]  # every field exact, Unicode included
    assert [v.seq for v in await sql.versions(t.round_id, bank_id=a)] == [1, 4]
    assert [v.version for v in await sql.versions(t.round_id, bank_id=b)] == [1, 2]


# ----------------------------------------------------------------------------- close
async def test_record_close_writes_one_closing_record_binding_ranks_and_audit(sql: Sql):
    t = await new_round(sql)
    o = Offers(t.round_id)
    a, b, c = bank_id(), bank_id(), bank_id()
    ea = o.submit(a, "Banka A", 390_000)
    eb = o.submit(b, "Banka B", 380_000)
    ec = o.submit(c, "Banka C", 395_000)
    assert ea.offer and ec.offer
    evs = [ea, eb, ec, o.revise(ec.offer.offer_id, 370_000), o.close(T0 + HOUR)]
    assert await sql.persist(t.round_id, 0, evs)
    final = o.ranked()
    assert await sql.close(t.round_id, T0 + HOUR, T0 + 3 * HOUR, o.seq, final, 2026)

    async with sql.store.read() as q:
        closing = await q.rounds.closing(t.round_id)
        binding = await q.rounds.binding(t.round_id)
        binding_a = await q.rounds.binding(t.round_id, bank_id=a)
    assert closing is not None and is_valid_reference(closing.reference_number)
    assert closing.reference_number == reference_number(closing.id, 2026)
    assert closing.reference_number.startswith("IGE-2026-")
    assert (closing.closed_at, closing.binding_until, closing.final_seq) == \
        (T0 + HOUR, T0 + 3 * HOUR, 5)
    row = await sql.round(t.round_id)
    assert row is not None
    assert (row.state, row.closed_at, row.binding_until) == ("closed", T0 + HOUR, T0 + 3 * HOUR)
    assert [(rank, v) for rank, v in binding] == [(i + 1, v) for i, v in enumerate(final)]
    assert [v.bank_id for _, v in binding] == [c, b, a]
    assert binding[0][1].version == 2  # the revised version binds, not the first one
    assert [(r, v.bank_id) for r, v in binding_a] == [(3, a)]
    closed = [x for x in await sql.audit(t.round_id) if x.action == "round_closed"]
    assert len(closed) == 1
    assert closed[0].detail == {"reference_number": closing.reference_number,
                                   "binding_until": T0 + 3 * HOUR, "final_seq": 5, "offers": 3}


async def test_a_second_record_close_returns_false_and_changes_nothing(sql: Sql,
                                                                       sql2: Sql):
    t, o = await closed_round(sql)
    before = {tb.name: await rows(sql.store, tb) for tb in
              (rounds, round_closings, binding_offers, audit_log)}
    later = o.ranked()[::-1]
    assert not await sql.close(t.round_id, T0 + 2 * HOUR, T0 + 9 * HOUR, 99, later, 2027)
    assert not await sql2.close(t.round_id, T0 + 2 * HOUR, T0 + 9 * HOUR, 99,
                                               later, 2027)
    after = {tb.name: await rows(sql.store, tb) for tb in
             (rounds, round_closings, binding_offers, audit_log)}
    assert after == before


async def test_concurrent_record_close_from_two_processes_writes_one_record(sql: Sql,
                                                                           sql2: Sql):
    t = await new_round(sql)
    o = Offers(t.round_id)
    evs = [o.submit(bank_id(), "Banka A", 390_000), o.submit(bank_id(), "Banka B", 380_000),
           o.close(T0 + HOUR)]
    assert await sql.persist(t.round_id, 0, evs)
    won = await asyncio.gather(*[
        s.close(t.round_id, T0 + HOUR, T0 + 3 * HOUR, o.seq, o.ranked(), 2026)
        for s in (sql, sql2, sql, sql2)])
    assert sorted(won) == [False, False, False, True]
    assert len(await rows(sql.store, round_closings, round_id=t.round_id)) == 1
    assert len(await rows(sql.store, binding_offers, round_id=t.round_id)) == 2
    assert len(await rows(sql.store, audit_log, round_id=t.round_id, action="round_closed")) == 1


async def test_reference_numbers_are_unique_and_valid_across_many_rounds(sql: Sql,
                                                                         sql2: Sql):
    ts = [await new_round(sql) for _ in range(24)]

    async def close(s: Sql, t: RoundTerms) -> bool:
        return await s.close(t.round_id, T0 + HOUR, T0 + 3 * HOUR, 0, [], 2026)

    assert all(await asyncio.gather(*[close((sql, sql2)[i % 2], t)
                                      for i, t in enumerate(ts)]))
    refs = [r.reference_number for r in await rows(sql.store, round_closings)]
    assert len(refs) == len(set(refs)) == 24
    assert all(is_valid_reference(r) for r in refs)
    assert not is_valid_reference(refs[0][:-1] + str((int(refs[0][-1]) + 1) % 10))


async def test_record_many_writes_each_open_rounds_record_in_one_unit_and_skips_the_rest(
        sql: Sql, sql2: Sql):
    made = [await new_round(sql) for _ in range(4)]
    offers = []
    for t in made:
        o = Offers(t.round_id)
        evs = [o.submit(bank_id(), "Banka A", 390_000), o.submit(bank_id(), "Banka B", 380_000),
               o.close(T0 + HOUR)]
        assert await sql.persist(t.round_id, 0, evs)
        offers.append(o)
    first = made[1]  # another process closed this one first
    assert await sql2.close(first.round_id, T0 + HOUR, T0 + 3 * HOUR, offers[1].seq,
                            offers[1].ranked(), 2026)
    before = await rows(sql.store, round_closings, round_id=first.round_id)
    closes = [CloseRow(t.round_id, T0 + HOUR + i, T0 + 3 * HOUR + i, o.seq, o.ranked(), 2026)
              for i, (t, o) in enumerate(zip(made, offers, strict=True))]
    refs = await sql.closing.record_many(closes)
    assert list(refs) == [t.round_id for t in made] and refs[first.round_id] is None
    assert await rows(sql.store, round_closings, round_id=first.round_id) == before
    for i, (t, o) in enumerate(zip(made, offers, strict=True)):
        if t is first:
            continue
        async with sql.store.read() as q:
            closing = await q.rounds.closing(t.round_id)
            binding = await q.rounds.binding(t.round_id)
        assert closing is not None and closing.reference_number == refs[t.round_id]
        assert closing.reference_number == reference_number(closing.id, 2026)
        assert (closing.closed_at, closing.binding_until, closing.final_seq) == (
            T0 + HOUR + i, T0 + 3 * HOUR + i, o.seq)  # each round's own times
        row = await sql.round(t.round_id)
        assert row is not None and (row.state, row.closed_at, row.binding_until) == (
            "closed", T0 + HOUR + i, T0 + 3 * HOUR + i)
        assert binding == [(k + 1, v) for k, v in enumerate(o.ranked())]
        audit = [x for x in await sql.audit(t.round_id) if x.action == "round_closed"]
        assert [x.detail["reference_number"] for x in audit] == [refs[t.round_id]]
    assert len(await rows(sql.store, audit_log, action="round_closed")) == 4
    # all of them again: nothing changes
    snapshot = {tb.name: await rows(sql.store, tb) for tb in
                (rounds, round_closings, binding_offers, audit_log)}
    assert set((await sql2.closing.record_many(closes)).values()) == {None}
    assert await sql.closing.record_many([]) == {}
    assert snapshot == {tb.name: await rows(sql.store, tb) for tb in
                        (rounds, round_closings, binding_offers, audit_log)}


# ----------------------------------------------------------------------------- accept / lapse
async def test_accepting_a_binding_offer_inside_the_window_succeeds_once(sql: Sql):
    t, o = await closed_round(sql)
    best = o.ranked()[0]
    assert await sql.accept(t.round_id, best.offer_id, "usr_1", T0 + 2 * HOUR) is None
    assert (await sql.round(t.round_id)).state == RoundState.ACCEPTED.value  # type: ignore[union-attr]
    async with sql.store.read() as q:
        acc = await q.rounds.acceptance(t.round_id)
    assert acc is not None and (acc.offer_id, acc.exporter_user_id, acc.accepted_at) == \
        (best.offer_id, "usr_1", T0 + 2 * HOUR)
    audit = [a for a in await sql.audit(t.round_id) if a.action == "offer_accepted"]
    assert len(audit) == 1 and audit[0].detail["bank_id"] == best.bank_id

    again = await sql.accept(t.round_id, o.ranked()[1].offer_id, "usr_1", T0 + 2 * HOUR)
    assert again == "already_accepted"
    assert len(await rows(sql.store, acceptances, round_id=t.round_id)) == 1


async def test_concurrent_accepts_from_two_processes_accept_exactly_one(sql: Sql,
                                                                        sql2: Sql):
    t, o = await closed_round(sql)
    a, b = o.ranked()
    got = await asyncio.gather(
        sql.accept(t.round_id, a.offer_id, "usr_1", T0 + 2 * HOUR),
        sql2.accept(t.round_id, b.offer_id, "usr_1", T0 + 2 * HOUR))
    assert sorted(got, key=str) == [None, "already_accepted"]
    assert len(await rows(sql.store, acceptances, round_id=t.round_id)) == 1


async def test_accepting_at_or_after_binding_until_is_binding_expired(sql: Sql):
    t, o = await closed_round(sql, binding_until=T0 + 3 * HOUR)
    got = await sql.accept(t.round_id, o.ranked()[0].offer_id, "usr_1", T0 + 3 * HOUR)
    assert got == "binding_expired"
    assert (await sql.round(t.round_id)).state == RoundState.CLOSED.value  # type: ignore[union-attr]
    assert await rows(sql.store, acceptances, round_id=t.round_id) == []


async def test_accepting_an_offer_that_is_not_binding_in_the_round_is_not_found(sql: Sql):
    t, _ = await closed_round(sql)
    _, o2 = await closed_round(sql)
    foreign = o2.ranked()[0].offer_id  # binding, but in another round
    for offer_id in ("off_missing", foreign):
        got = await sql.accept(t.round_id, offer_id, "usr_1", T0 + 2 * HOUR)
        assert got == "not_found"
    assert (await sql.round(t.round_id)).state == RoundState.CLOSED.value  # type: ignore[union-attr]


async def test_accepting_while_the_round_is_open_is_round_open(sql: Sql):
    t = await new_round(sql)
    o = Offers(t.round_id)
    ev = o.submit(bank_id(), "Banka A", 390_000)
    assert ev.offer and await sql.persist(t.round_id, 0, [ev])
    got = await sql.accept(t.round_id, ev.offer.offer_id, "usr_1", T0 + 10)
    assert got == "round_open"
    assert await sql.accept("rnd_missing", "off_x", "usr_1", T0) == "not_found"


async def test_lapse_moves_closed_rounds_past_binding_until_to_lapsed_exactly_once(
        sql: Sql, sql2: Sql):
    due, _ = await closed_round(sql, binding_until=T0 + 2 * HOUR)
    later, _ = await closed_round(sql, binding_until=T0 + 5 * HOUR)
    accepted, oa = await closed_round(sql, binding_until=T0 + 2 * HOUR)
    assert await sql.accept(accepted.round_id, oa.ranked()[0].offer_id, "usr_1",
                            T0 + HOUR + 1) is None
    still_open = await new_round(sql, closes_at_ms=T0)

    assert await sql.lapse_due(T0 + 2 * HOUR - 1) == []
    first, second = await asyncio.gather(sql.lapse_due(T0 + 2 * HOUR),
                                         sql2.lapse_due(T0 + 2 * HOUR))
    assert sorted(first + second) == [due.round_id]
    assert await sql.lapse_due(T0 + 4 * HOUR) == []
    states = {r: (await sql.round(r)).state for r in  # type: ignore[union-attr]
              (due.round_id, later.round_id, accepted.round_id, still_open.round_id)}
    assert states == {due.round_id: "lapsed", later.round_id: "closed",
                      accepted.round_id: "accepted", still_open.round_id: "open"}
    lapsed = await rows(sql.store, audit_log, action="round_lapsed")
    assert [(a.round_id, a.at) for a in lapsed] == [(due.round_id, T0 + 2 * HOUR)]
    after = await sql.accept(due.round_id, "off_x", "usr_1", T0)
    assert after == "binding_expired"  # lapsed is final, whatever the caller's clock


async def test_every_test_starts_from_a_fresh_migrated_database(sql: Sql):
    """Sanity: the fixture database is fresh and migrated for every test."""
    for table in (banks, rounds, offer_versions, round_closings, binding_offers, acceptances,
                  audit_log):
        assert await rows(sql.store, table) == []
