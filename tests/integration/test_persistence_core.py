"""The durability use cases on real Redis and SQL: offers reach SQL with their whole history
exactly once, and a Redis that lost its data set is rebuilt from SQL so bidding continues where
it stopped."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from auction.model import Outcome, RoundState, RoundTerms
from auction.redis.keys import ALIVE, round_deadlines, round_keys
from persistence.tables import audit_log, offer_versions
from tests.integration.conftest import LONG, CoreFactory, Proc, bank_id, offer_terms, open_round
from usecases import durability
from usecases.bidding import Accepted
from usecases.outcomes import Refusal

Core = Proc


async def bid(core: Core, rnd: RoundTerms, bank: str, rate_e4: int) -> str:
    res = await core.submit(rnd, bank, offer_terms(rate_e4), None)
    assert isinstance(res, Accepted)
    return res.offer.offer_id


async def snapshot(core: Core, round_id: str, banks: list[str]) -> dict[str, object]:
    """Everything a reader of the live round can see: the operator view, each bank's view
    (with its label) and the event stream."""
    out: dict[str, object] = {"": _same_epoch(await core.book.view(round_id)),
                              "events": await core.book.events(round_id)}
    for b in banks:
        out[b] = _same_epoch(await core.book.view(round_id, b))
    return out


def _same_epoch(view: Any) -> Any:
    """The view with its epoch blanked: a rebuilt round is a new epoch by design (a token
    written at each open and rebuild, so that a cached snapshot of the old one is never
    served: gateway/snapshots.py; tests/unit/test_usecases.py checks that it changes), and
    everything else must be identical."""
    return view if view is None else replace(view, epoch="")


async def test_offers_reach_sql_through_persist_round_with_every_version(core: Core):
    rnd = await open_round(core)
    a, b = bank_id(), bank_id()
    off = await bid(core, rnd, a, 390_000)
    await bid(core, rnd, b, 385_000)
    for rate in (380_000, 372_500):
        res = await core.revise(rnd, a, off, offer_terms(rate, conditions=f"v @ {rate}"), None)
        assert isinstance(res, Accepted)
    assert await core.persist_round(rnd.round_id) == 4
    assert await core.persist_round(rnd.round_id) == 4  # nothing new: nothing written

    history = await core.versions(rnd.round_id, bank_id=a)
    assert [(v.offer_id, v.version, v.seq) for v in history] == \
        [(off, 1, 1), (off, 2, 3), (off, 3, 4)]
    assert [v.terms.annual_rate_e4 for v in history] == [390_000, 380_000, 372_500]
    assert history[2].terms.conditions == "v @ 372500"
    # SQL holds exactly what the Redis stream carried, field for field
    redis_versions = [e.offer for e in await core.book.events(rnd.round_id)]
    assert await core.versions(rnd.round_id) == redis_versions
    assert (await core.round(rnd.round_id)).persisted_seq == 4


async def test_concurrent_persisters_in_two_cores_write_each_version_exactly_once(
        core_factory: CoreFactory):
    c1, c2 = await core_factory(), await core_factory()
    rnd = await open_round(c1)
    banks = [bank_id() for _ in range(4)]
    offers: dict[str, str] = {}
    bidding = True

    async def bidders() -> None:
        nonlocal bidding
        for step in range(6):
            for i, bank in enumerate(banks):
                rate = 400_000 - step * 1000 - i
                if bank in offers:
                    res = await c2.revise(rnd, bank, offers[bank], offer_terms(rate), None)
                    assert isinstance(res, Accepted)
                else:
                    offers[bank] = await bid(c1, rnd, bank, rate)
                await asyncio.sleep(0)
        bidding = False

    async def persister(core: Core) -> None:
        while bidding:
            await core.persist_round(rnd.round_id)
            await asyncio.sleep(0.001)

    await asyncio.gather(bidders(), persister(c1), persister(c2), persister(c1))
    assert sorted(await asyncio.gather(c1.persist_round(rnd.round_id),
                                       c2.persist_round(rnd.round_id))) == [24, 24]

    versions = await c1.versions(rnd.round_id)
    assert [v.seq for v in versions] == list(range(1, 25))
    assert sorted((v.offer_id, v.version) for v in versions) == \
        sorted((o, n) for o in offers.values() for n in range(1, 7))
    audit = [a for a in await c1.audit(rnd.round_id) if a in ("offer_submitted", "offer_revised")]
    assert len(audit) == 24
    assert await c1.count(offer_versions) == 24


async def revised(core: Core, revisions: int, rnd: RoundTerms | None = None, bank: str = "",
                  offer: str = "") -> tuple[RoundTerms, str, str]:
    """A round with one bank's offer and ``revisions`` revisions of it (1 + revisions events;
    or, given them, ``revisions`` more of that offer); the round, the bank and the offer."""
    if rnd is None:
        rnd, bank = await open_round(core), bank_id()
        offer = await bid(core, rnd, bank, 390_000)
    for i in range(revisions):
        res = await core.revise(rnd, bank, offer, offer_terms(380_000 - i), None)
        assert isinstance(res, Accepted)
    return rnd, bank, offer


def counted_reads(core: Core, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of events of each round in each of the book's ``events_after`` reads."""
    reads: list[int] = []
    events_after = core.book.events_after

    async def counted(after: Any, limit: int | None = None) -> Any:
        got = await events_after(after, limit)
        reads.extend(len(evs) for evs in got.values())
        return got

    monkeypatch.setattr(core.book, "events_after", counted)
    return reads


async def test_a_round_far_ahead_of_sql_is_persisted_in_slices_of_bounded_reads(
        core: Core, monkeypatch: pytest.MonkeyPatch):
    """The persister reads at most ROUND_EVENTS of a round's events per unit (the anchor among
    them), keeps the round dirty while more remain, and so reaches SQL's full copy over
    several passes, in order, each version once: no read grows with the round's history."""
    monkeypatch.setattr(durability, "ROUND_EVENTS", 3)
    rnd, _, _ = await revised(core, 6)
    reads = counted_reads(core, monkeypatch)
    known: dict[str, int] = {}
    written = []
    for _ in range(6):
        done = await core.portal.durability.persist_dirty(list(range(64)), known)
        written.append(done.events)
    # 3 new, then the anchor and 2 new each pass: 3 + 2 + 2 = 7 versions, then nothing left
    assert written == [3, 2, 2, 0, 0, 0]
    assert reads and max(reads) <= 3
    assert known == {rnd.round_id: 7}
    assert [v.seq for v in await core.versions(rnd.round_id)] == list(range(1, 8))
    assert await core.count(offer_versions) == 7


async def test_the_persister_has_the_book_forget_what_sql_holds_but_a_tail(
        core: Core, redis: Redis, monkeypatch: pytest.MonkeyPatch):
    """A round's history in Redis does not grow with its revisions: once SQL holds the events,
    the book keeps only the last KEEP_EVENTS of them (and whatever SQL does not hold yet),
    give or take a stream node; SQL keeps every version."""
    monkeypatch.setattr(durability, "KEEP_EVENTS", 10)
    made = rnd, _, _ = await revised(core, 0)
    known: dict[str, int] = {}
    for burst in range(4):
        await revised(core, 50, *made)
        await core.portal.durability.persist_dirty(list(range(64)), known)
        seq = 1 + 50 * (burst + 1)
        assert known == {rnd.round_id: seq}
        kept = await core.book.events(rnd.round_id)
        assert [e.seq for e in kept] == list(range(kept[0].seq, seq + 1))
        # the last 10 kept, and no more than a stream node's worth (a few dozen) besides
        assert seq - 10 >= kept[0].seq >= seq - 10 - 60, (burst, kept[0].seq)
    assert await redis.xlen(round_keys(rnd.round_id).events) == len(kept)
    assert [v.seq for v in await core.versions(rnd.round_id)] == list(range(1, 202))
    # the close path still finds the anchor and the rest: the round closes with every version
    assert await core.persist_round(rnd.round_id) == 201


async def forgotten_round(core: Core, monkeypatch: pytest.MonkeyPatch
                          ) -> tuple[RoundTerms, str, str]:
    """A round of 31 events, all in SQL, the book keeping only the last few of them (a stream
    node's worth, give or take); its bank and offer."""
    monkeypatch.setattr(durability, "KEEP_EVENTS", 2)
    made = await revised(core, 30)
    assert (await core.portal.durability.persist_dirty(list(range(64)), {})).events == 31
    assert (await core.book.events(made[0].round_id))[0].seq > 2  # forgotten from the first
    return made


async def test_a_seq_remembered_from_before_another_persister_moved_on_is_no_clash(
        core: Core, monkeypatch: pytest.MonkeyPatch):
    """A persister that remembers seq 1 of a round another persister has since taken to 31
    (and had the book forget up to near there) reads SQL again: no clash, nothing lost."""
    from usecases.durability import Clash

    clashes: list[Clash] = []
    core.portal.durability.on_clash = clashes.append
    rnd, a, off = await forgotten_round(core, monkeypatch)
    stale = {rnd.round_id: 1}
    assert isinstance(await core.revise(rnd, a, off, offer_terms(370_000), None), Accepted)
    assert (await core.portal.durability.persist_dirty(list(range(64)), stale)).events == 0
    assert stale == {}  # forgotten: read from SQL next time
    assert (await core.portal.durability.persist_dirty(list(range(64)), stale)).events == 1
    assert stale == {rnd.round_id: 32} and clashes == []
    assert [v.seq for v in await core.versions(rnd.round_id)] == list(range(1, 33))


async def test_events_sql_lost_after_the_book_forgot_them_are_reported_never_skipped(
        core: Core, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """SQL restored from an older backup: it holds up to seq 1 of a round whose book kept
    only its last events. The persister must not write the later ones over the hole: the
    round is reported (a clash, with the first seq the book keeps) and left out; the close's
    path refuses too."""
    from sqlalchemy import delete, update

    from persistence.tables import rounds
    from usecases.durability import Clash, ClashError

    clashes: list[Clash] = []
    core.portal.durability.on_clash = clashes.append
    rnd, a, off = await forgotten_round(core, monkeypatch)
    async with core.store.engine.begin() as conn:
        await conn.execute(delete(offer_versions).where(
            offer_versions.c.round_id == rnd.round_id, offer_versions.c.seq > 1))
        await conn.execute(update(rounds).where(rounds.c.id == rnd.round_id)
                           .values(persisted_seq=1))
    assert isinstance(await core.revise(rnd, a, off, offer_terms(370_000), None), Accepted)
    for _ in range(2):  # reported once
        assert (await core.portal.durability.persist_dirty(list(range(64)), {})).events == 0
    first = (await core.book.events(rnd.round_id))[0].seq
    assert [(c.round_id, c.seq, c.kept_from) for c in clashes] == [(rnd.round_id, 1, first)]
    assert any("persist_clash" in r.getMessage() and "start" in r.getMessage()
               for r in caplog.records)
    assert [v.seq for v in await core.versions(rnd.round_id)] == [1]
    assert (await core.round(rnd.round_id)).persisted_seq == 1
    with pytest.raises(ClashError):
        await core.persist_round(rnd.round_id)
    assert (await core.round(rnd.round_id)).persisted_seq == 1


async def test_persist_round_reaches_the_last_event_in_units_of_bounded_reads(
        core: Core, monkeypatch: pytest.MonkeyPatch):
    """The close path's copy (persist_round) goes on, slice after slice, until SQL holds the
    book's last event, within one call; no read holds more than ROUND_EVENTS events and no
    unit more than that many versions."""
    monkeypatch.setattr(durability, "ROUND_EVENTS", 3)
    rnd, _, _ = await revised(core, 7)
    reads = counted_reads(core, monkeypatch)
    units: list[int] = []
    write = core.portal.durability.write

    async def counted_write(round_id: str, from_seq: int, events: Any, *a: Any) -> bool:
        units.append(len(events))
        return await write(round_id, from_seq, events, *a)

    monkeypatch.setattr(core.portal.durability, "write", counted_write)
    assert await core.persist_round(rnd.round_id) == 8
    # 3 new, then the anchor and 2 new per read: 3 + 2 + 2 + 1 (a slice not full: the end)
    assert units == [3, 2, 2, 1]
    assert max(reads) <= 3
    assert [v.seq for v in await core.versions(rnd.round_id)] == list(range(1, 9))
    assert await core.persist_round(rnd.round_id) == 8  # nothing new: nothing written
    assert units == [3, 2, 2, 1]


async def test_flushed_redis_is_rebuilt_from_sql_with_an_identical_book(
        core_factory: CoreFactory, redis: Redis):
    core = await core_factory()
    busy, empty = await open_round(core), await open_round(core)
    banks = [bank_id() for _ in range(3)]
    first = {b: await bid(core, busy, b, 390_000 - i * 2500) for i, b in enumerate(banks)}
    await core.revise(busy, banks[0], first[banks[0]], offer_terms(370_000), None)
    await bid(core, busy, banks[1], 371_000)  # a bank may hold several offers
    # a round that already closed: rebuilt closed, with its close event
    closer = await core_factory(round_s=0.3)
    done = await open_round(closer)
    await bid(closer, done, banks[2], 380_000)
    await asyncio.sleep(0.35)
    assert (await closer.finalize_close(done.round_id)).outcome is Outcome.OK

    for rid in (busy.round_id, empty.round_id, done.round_id):
        await core.persist_round(rid)
    assert await core.ensure_book() == 0  # Redis alive and complete: nothing to do
    before = {rid: await snapshot(core, rid, banks)
              for rid in (busy.round_id, empty.round_id, done.round_id)}

    await redis.flushdb()
    assert not await redis.exists(*ALIVE)
    fresh = await core_factory()  # e.g. the worker that holds bucket 0
    assert await fresh.ensure_book() == 3
    assert await redis.exists(*ALIVE) == len(ALIVE)
    assert await fresh.ensure_book() == 0

    for rid, snap in before.items():
        assert await snapshot(fresh, rid, banks) == snap
    busy_view = before[busy.round_id][""]
    assert busy_view is not None and len(busy_view.offers) == 4  # type: ignore[attr-defined]
    view = await fresh.book.view(done.round_id)
    assert view is not None and view.state is RoundState.CLOSED
    # open rounds are back in the deadline index, the closed one is not
    assert await redis.zscore(round_deadlines(busy.round_id), busy.round_id) == busy.closes_at_ms
    assert await redis.zscore(round_deadlines(empty.round_id), empty.round_id) == empty.closes_at_ms
    assert await redis.zscore(round_deadlines(done.round_id), done.round_id) is None


async def test_bidding_continues_after_a_rebuild_with_the_next_seq_and_the_same_labels(
        core_factory: CoreFactory, redis: Redis):
    core = await core_factory()
    rnd = await open_round(core)
    a, b = bank_id(), bank_id()
    off_a = await bid(core, rnd, a, 390_000)
    await bid(core, rnd, b, 380_000)
    await core.revise(rnd, a, off_a, offer_terms(379_000), None)
    labels = await core.book.labels(rnd.round_id)
    assert await core.persist_round(rnd.round_id) == 3

    await redis.flushdb()
    other = await core_factory()
    assert await other.ensure_book() == 1

    again = await other.submit(rnd, b, offer_terms(378_000), None)
    assert isinstance(again, Accepted)
    assert (again.offer.seq, again.offer.label, again.rank) == (4, labels[b], 1)
    rev = await other.revise(rnd, a, off_a, offer_terms(377_000), None)
    assert isinstance(rev, Accepted)
    assert (rev.offer.seq, rev.offer.version, rev.offer.label) == (5, 3, labels[a])
    newcomer = bank_id()
    res = await other.submit(rnd, newcomer, offer_terms(395_000), None)
    assert isinstance(res, Accepted) and res.offer.seq == 6
    pool = (await other.round(rnd.round_id)).label_pool
    assert res.offer.label in pool and res.offer.label not in labels.values()
    # the continued history persists after the rebuilt one without gaps
    assert await other.persist_round(rnd.round_id) == 6
    assert [v.seq for v in await other.versions(rnd.round_id)] == [1, 2, 3, 4, 5, 6]


async def test_a_long_round_is_rebuilt_with_the_events_the_book_would_keep(
        core_factory: CoreFactory, redis: Redis, monkeypatch: pytest.MonkeyPatch):
    """A rebuild writes the last KEEP_EVENTS events back (one script of bounded size), the
    book as it was, and the round goes on from the next seq and persists without a gap."""
    monkeypatch.setattr(durability, "KEEP_EVENTS", 3)
    core = await core_factory()
    rnd, _, _ = await revised(core, 9)
    view = await core.book.view(rnd.round_id)
    assert await core.persist_round(rnd.round_id) == 10
    await redis.flushdb()
    other = await core_factory()
    assert await other.ensure_book() == 1
    assert [e.seq for e in await other.book.events(rnd.round_id)] == [8, 9, 10]
    rebuilt = await other.book.view(rnd.round_id)
    assert rebuilt is not None and view is not None
    assert (rebuilt.seq, rebuilt.offers) == (view.seq, view.offers)
    res = await other.submit(rnd, bank_id(), offer_terms(395_000), None)
    assert isinstance(res, Accepted) and res.offer.seq == 11
    assert await other.persist_round(rnd.round_id) == 11
    assert [v.seq for v in await other.versions(rnd.round_id)] == list(range(1, 12))


async def test_free_text_conditions_survive_sql_and_a_rebuild_byte_for_byte(
        core: Core, redis: Redis):
    rnd = await open_round(core)
    a = bank_id()
    tricky = 'Şartlar: "teminat" \\ %d %s\n\tİlk yıl ödemesiz; 1/2 "f":"x" | ✓ 🇹🇷 \\u0041'
    res = await core.submit(rnd, a, offer_terms(390_000, conditions=tricky), None)
    assert isinstance(res, Accepted) and res.offer.terms.conditions == tricky
    before = await snapshot(core, rnd.round_id, [a])
    await core.persist_round(rnd.round_id)
    assert (await core.versions(rnd.round_id))[0].terms.conditions == tricky
    await redis.flushdb()
    assert await core.ensure_book() == 1
    assert await snapshot(core, rnd.round_id, [a]) == before


@pytest.mark.parametrize("bad", ["nul \x00 byte", "bell \x07", "lone surrogate \ud800"],
                         ids=["nul", "control", "surrogate"])
async def test_conditions_no_database_can_store_are_refused_before_the_book(core: Core, bad: str):
    """An acknowledged offer must be storable: a NUL (PostgreSQL text refuses it) accepted into
    Redis would block the round's persister, and with it the close, for good."""
    rnd = await open_round(core)
    a = bank_id()
    good = await bid(core, rnd, a, 390_000)
    refused = await core.submit(rnd, a, offer_terms(385_000, conditions=bad), None)
    assert isinstance(refused, Refusal) and refused.code == "validation_failed"
    assert [e.field for e in refused.errors or []] == ["conditions"]
    again = await core.revise(rnd, a, good, offer_terms(385_000, conditions=bad), None)
    assert isinstance(again, Refusal) and again.code == "validation_failed"
    view = await core.book.view(rnd.round_id)
    assert view is not None and view.seq == 1
    assert await core.persist_round(rnd.round_id) == 1


async def test_a_submit_to_a_round_redis_lost_restores_it_on_the_spot(
        core_factory: CoreFactory, redis: Redis):
    core = await core_factory()
    rnd = await open_round(core)
    a = bank_id()
    await bid(core, rnd, a, 390_000)
    await core.persist_round(rnd.round_id)
    label = (await core.book.labels(rnd.round_id))[a]
    await redis.flushdb()  # no ensure_redis_state: the request path must cope on its own

    res = await core.submit(rnd, a, offer_terms(385_000), None)
    assert isinstance(res, Accepted)
    assert (res.offer.seq, res.offer.label, res.rank) == (2, label, 1)
    view = await core.book.view(rnd.round_id)
    assert view is not None and [o.seq for o in view.offers] == [2, 1]


async def test_restore_round_is_a_no_op_when_the_round_still_exists(core: Core, redis: Redis):
    rnd = await open_round(core)
    a, b = bank_id(), bank_id()
    await bid(core, rnd, a, 390_000)
    await core.persist_round(rnd.round_id)
    await bid(core, rnd, b, 380_000)  # acknowledged, not yet in SQL
    before = await snapshot(core, rnd.round_id, [a, b])
    await redis.zrem(round_deadlines(rnd.round_id), rnd.round_id)

    assert await core.restore_round(rnd.round_id)
    assert await snapshot(core, rnd.round_id, [a, b]) == before  # nothing rolled back to SQL
    # nothing re-added either
    assert await redis.zscore(round_deadlines(rnd.round_id), rnd.round_id) is None
    assert not await core.restore_round("rnd_missing")


async def test_rounds_past_their_binding_window_are_not_rebuilt(core_factory: CoreFactory,
                                                                redis: Redis):
    closer = await core_factory(round_s=0.2, binding_s=0.2)
    rnd = await open_round(closer, opened_at=datetime.now(UTC) - LONG)
    await bid_fails_closed(closer, rnd)
    assert (await closer.finalize_close(rnd.round_id)).outcome is Outcome.OK
    lapsed = await closer.portal.closing.lapse_due()
    assert lapsed == [rnd.round_id]
    await redis.flushdb()
    assert await closer.ensure_book() == 0
    assert not await closer.restore_round(rnd.round_id)
    assert not await closer.book.exists(rnd.round_id)
    assert await closer.count(audit_log) >= 3


async def bid_fails_closed(core: Core, rnd: RoundTerms) -> None:
    res = await core.book.submit(rnd.round_id, bank_id(), "off_late", "ref_late",
                                 offer_terms(390_000), 400_000)
    assert res.outcome is Outcome.ROUND_CLOSED



# ----------------------------------------------------------------------------- in one unit
async def test_persist_many_writes_several_rounds_in_one_unit_and_resumes(core: Core):
    rounds = [await open_round(core) for _ in range(3)]
    offers = {}
    for i, rnd in enumerate(rounds):
        offers[rnd.round_id] = await bid(core, rnd, bank_id(), 390_000 - i)
        await bid(core, rnd, bank_id(), 380_000 - i)
    durability = core.portal.durability
    known: dict[str, int] = {}
    done = await durability.persist_many([r.round_id for r in rounds], known)
    assert (done.rounds, done.events) == (3, 6)
    assert known == {r.round_id: 2 for r in rounds}
    # one more event in one round: only it is written, from where SQL stood
    first = rounds[0]
    await core.revise(first, (await core.versions(first.round_id))[0].bank_id,
                      offers[first.round_id], offer_terms(370_000), None)
    done = await durability.persist_many([r.round_id for r in rounds], known)
    assert (done.rounds, done.events) == (1, 1) and known[first.round_id] == 3
    for rnd in rounds:
        assert [v.seq for v in await core.versions(rnd.round_id)] == (
            [1, 2, 3] if rnd is first else [1, 2])
        assert (await core.round(rnd.round_id)).persisted_seq == (3 if rnd is first else 2)
    assert await durability.persist_many([r.round_id for r in rounds], known) == \
        await durability.persist_many([], {})  # nothing new: nothing written


async def test_persist_many_forgets_a_round_another_persister_wrote_meanwhile(
        core_factory: CoreFactory):
    a, b = await core_factory(), await core_factory()
    one, two = await open_round(a), await open_round(a)
    for rnd in (one, two):
        await bid(a, rnd, bank_id(), 390_000)
    known = {one.round_id: 0, two.round_id: 0}
    assert await b.persist_round(one.round_id) == 1  # the other process got there first
    done = await a.portal.durability.persist_many([one.round_id, two.round_id], known)
    assert (done.rounds, done.events) == (1, 1)
    assert one.round_id not in known and known[two.round_id] == 1  # read again next time
    assert [v.seq for v in await a.versions(one.round_id)] == [1]  # written once


async def test_persist_many_writes_nothing_read_from_a_book_rebuilt_since(
        core: Core, redis: Redis, monkeypatch: pytest.MonkeyPatch):
    """The rebuild race, for a whole unit: a batch read before the book lost a round and was
    rebuilt from SQL must not land (its seqs may be reused); the rounds go back to the dirty
    set and the next pass reads them afresh."""
    from auction.buckets import bucket_of

    one, two = await open_round(core), await open_round(core)
    for rnd in (one, two):
        await bid(core, rnd, bank_id(), 390_000)
    durability = core.portal.durability
    book = core.book
    real = book.events_after

    async def rebuilt_meanwhile(after: Any, limit: int | None = None) -> Any:
        # the events are read; then the book loses round one and it is rebuilt from SQL
        # (which holds nothing of it yet): its event 1 is gone from the live book
        got = await real(after, limit)
        await redis.delete(*round_keys(one.round_id))
        await durability.restore_round(one.round_id)
        return got

    await book.take_dirty([bucket_of(one.round_id), bucket_of(two.round_id)], 100)
    monkeypatch.setattr(book, "events_after", rebuilt_meanwhile)
    known: dict[str, int] = {}
    done = await durability.persist_many([one.round_id, two.round_id], known)
    assert (done.rounds, done.events) == (0, 0) and known == {}
    assert await core.versions(one.round_id) == [] and await core.versions(two.round_id) == []
    taken = await book.take_dirty([bucket_of(one.round_id), bucket_of(two.round_id)], 100)
    assert sorted(taken) == sorted([one.round_id, two.round_id])


# ----------------------------------------------------------------------------- clashes
async def lose_last_versions(core: Core, redis: Redis, round_id: str, keep: int) -> None:
    """What a Redis failover without replica acks can do: the promoted master has the round
    only up to seq ``keep``, though SQL holds more of it (copied before a replica had it)."""
    from auction.book import Event, RoundSnapshot, with_ranks

    row = await core.round(round_id)
    kept = [v for v in await core.versions(round_id) if v.seq <= keep]
    labels = {v.bank_id: v.label for v in kept}
    await redis.delete(*round_keys(round_id))
    assert await core.book.restore(RoundSnapshot(
        round_id, RoundState.OPEN, int(row.opened_at), int(row.closes_at), 0, labels,
        [lb for lb in row.label_pool if lb not in labels.values()], kept,
        with_ranks([Event(round_id, v.seq, "quote", v) for v in kept])))


async def test_a_seq_reissued_after_a_failover_is_reported_and_never_overwrites_sql(
        core: Core, redis: Redis, caplog: pytest.LogCaptureFixture):
    from usecases.durability import Clash, ClashError

    rnd = await open_round(core)
    first, second = bank_id(), bank_id()
    await bid(core, rnd, first, 390_000)
    lost = await bid(core, rnd, second, 380_000)
    durability = core.portal.durability
    clashes: list[Clash] = []
    durability.on_clash = clashes.append
    assert (await durability.persist_many([rnd.round_id], {})).events == 2
    await lose_last_versions(core, redis, rnd.round_id, keep=1)
    # the promoted master gives seq 2 to another offer, then goes on to seq 3
    other = await bid(core, rnd, bank_id(), 370_000)
    await bid(core, rnd, bank_id(), 360_000)
    for _ in range(2):  # reported once, however often the round comes back
        done = await durability.persist_many([rnd.round_id], {})
        assert (done.rounds, done.events) == (0, 0)
    assert len(clashes) == 1
    c = clashes[0]
    assert (c.round_id, c.seq, c.sql, c.book) == (rnd.round_id, 2, (lost, 1), (other, 1))
    assert any("persist_clash" in r.getMessage() for r in caplog.records)
    # SQL is untouched: its seq 2 is still the first offer, nothing after it
    assert [(v.seq, v.offer_id) for v in await core.versions(rnd.round_id)][1:] == [(2, lost)]
    assert (await core.round(rnd.round_id)).persisted_seq == 2
    with pytest.raises(ClashError):  # the close's path refuses too, loudly
        await durability.persist_round(rnd.round_id)


async def test_a_book_behind_sql_is_reported_by_the_catch_up(core: Core, redis: Redis):
    from usecases.durability import Clash

    rnd = await open_round(core)
    await bid(core, rnd, bank_id(), 390_000)
    lost = await bid(core, rnd, bank_id(), 380_000)
    durability = core.portal.durability
    clashes: list[Clash] = []
    durability.on_clash = clashes.append
    assert await durability.persist_round(rnd.round_id) == 2
    await lose_last_versions(core, redis, rnd.round_id, keep=1)
    await durability.catch_up({})
    assert [(c.round_id, c.seq, c.sql, c.book, c.book_seq) for c in clashes] == [
        (rnd.round_id, 2, (lost, 1), None, 1)]
