"""The book contract: one suite, run on every implementation (MemoryBook, RedisBook on
Redis 7.x, RedisBook on Redis 6.2; see conftest.py). Every command is followed by the
invariant check of its round."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from auction.book import Event, RoundSnapshot, with_ranks
from auction.buckets import bucket_of
from auction.model import CloseResult, OfferTerms, Outcome, RoundState, RoundTerms, SubmitResult
from auction.ranking import KEY_WIDTH, rank_member
from auction.redis import scripts
from auction.redis.keys import offer_idempotency, round_deadlines, round_dirty, round_keys
from auction.rules import is_due, may_bid, new_ref
from tests.contract.conftest import (
    CheckedBook,
    check_redis_keys,
    hash_tag,
    redis_keys,
    round_of,
)

MINUTE_MS = 60_000
SHORT_MS = 400  # a deadline that the test sleeps past


def now_ms() -> int:
    return int(time.time() * 1000)


def a_round(closes_in_ms: int = MINUTE_MS, round_id: str | None = None) -> RoundTerms:
    now = now_ms()
    return RoundTerms(round_id or "rnd_" + secrets.token_hex(5), "TRY", "working_capital",
                      100_000_000, 80_000_000, 24, 6, True, now, now + closes_in_ms)


def terms(rate_e4: int = 300_000, **changes: object) -> OfferTerms:
    base = OfferTerms(annual_rate_e4=rate_e4, amount=100_000_000, tenor_months=24,
                      grace_months=6, repayment_every_months=3, upfront_fee=50_000,
                      assumes_export_commitment=True, conditions="")
    return replace(base, **changes)  # type: ignore[arg-type]


async def opened(book: CheckedBook, closes_in_ms: int = MINUTE_MS,
                 labels: list[str] | None = None) -> RoundTerms:
    rnd = a_round(closes_in_ms)
    assert await book.open_round(rnd, labels) is True
    return rnd


async def bid(book: CheckedBook, rnd: RoundTerms, bank: str, offer_id: str, apr_e4: int,
              rate_e4: int = 300_000, idem: tuple[str, str] | None = None) -> SubmitResult:
    return await book.submit(rnd.round_id, bank, offer_id, new_ref(), terms(rate_e4), apr_e4,
                             idem)


async def sleep_past(deadline_ms: int) -> None:
    await asyncio.sleep(max(0, deadline_ms - now_ms()) / 1000 + 0.05)


async def order(book: CheckedBook, rnd: RoundTerms) -> list[str]:
    view = await book.view(rnd.round_id)
    assert view is not None
    return [o.offer_id for o in view.offers]


# ----------------------------------------------------------------------------- open
async def test_round_opens_once_and_a_second_open_changes_nothing(book: CheckedBook) -> None:
    rnd = await opened(book)
    assert await book.open_round(replace(rnd, closes_at_ms=rnd.closes_at_ms + 1)) is False
    view = await book.view(rnd.round_id)
    assert view is not None
    assert (view.state, view.seq, view.closes_at_ms, view.closed_at_ms, view.offers) == (
        RoundState.OPEN, 0, rnd.closes_at_ms, 0, [])
    assert await book.events(rnd.round_id) == []


async def test_open_after_offers_keeps_the_round_as_it_is(book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "off_1", 310_000)
    assert await book.open_round(rnd) is False
    assert await order(book, rnd) == ["off_1"]


# ----------------------------------------------------------------------------- submit
async def test_first_offer_gets_seq_1_version_1_rank_1(book: CheckedBook) -> None:
    rnd = await opened(book, labels=["Banka Q", "Banka C"])
    t = terms(312_500, conditions='teminat "ipotek" | ğüş \\ "f":"x"\n')
    before = now_ms()
    res = await book.submit(rnd.round_id, "bank_a", "off_1", "ref000000001", t, 331_234)
    assert res.outcome is Outcome.OK and res.rank == 1 and res.offer is not None
    o = res.offer
    assert (o.round_id, o.offer_id, o.ref, o.bank_id, o.label) == (
        rnd.round_id, "off_1", "ref000000001", "bank_a", "Banka Q")
    assert (o.version, o.seq, o.apr_e4, o.terms) == (1, 1, 331_234, t)
    assert before - 1_000 <= o.accepted_at_ms <= now_ms() + 1_000
    view = await book.view(rnd.round_id)
    assert view is not None and view.offers == [o] and view.seq == 1


async def test_offers_of_one_bank_share_a_label_and_banks_get_different_labels(
        book: CheckedBook) -> None:
    rnd = await opened(book, labels=["Banka Q", "Banka C", "Banka X"])
    got = {}
    for bank, offer in [("bank_a", "a1"), ("bank_b", "b1"), ("bank_a", "a2"), ("bank_c", "c1"),
                        ("bank_b", "b2"), ("bank_d", "d1")]:
        res = await bid(book, rnd, bank, offer, 320_000)
        assert res.offer is not None
        got[offer] = res.offer.label
    assert got == {"a1": "Banka Q", "b1": "Banka C", "a2": "Banka Q", "c1": "Banka X",
                   "b2": "Banka C", "d1": "Banka 4"}  # the pool ran out: a numbered name
    revised = await book.revise(rnd.round_id, "bank_b", "b1", terms(290_000), 300_000)
    assert revised.offer is not None and revised.offer.label == "Banka C"


async def test_default_labels_are_masked_names_from_a_fresh_pool(book: CheckedBook) -> None:
    rnd = await opened(book)
    labels = set()
    for i in range(5):
        res = await bid(book, rnd, f"bank_{i}", f"off_{i}", 320_000)
        assert res.offer is not None
        labels.add(res.offer.label)
    assert len(labels) == 5
    assert all(lb.startswith("Banka ") and len(lb) == len("Banka X") for lb in labels)


async def test_an_offer_id_cannot_be_submitted_twice(book: CheckedBook) -> None:
    rnd = await opened(book)
    first = await bid(book, rnd, "bank_a", "off_1", 320_000)
    again = await bid(book, rnd, "bank_b", "off_1", 300_000)
    assert again.outcome is not Outcome.OK and again.offer is None
    view = await book.view(rnd.round_id)
    assert view is not None and view.offers == [first.offer] and view.seq == 1


# ----------------------------------------------------------------------------- offer limit
async def test_a_bank_keeps_at_most_max_offers_live_offers_in_a_round(book: CheckedBook) -> None:
    rnd = await opened(book)
    for i in range(3):
        res = await book.submit(rnd.round_id, "bank_a", f"a{i}", new_ref(), terms(), 330_000 + i,
                                max_offers=3)
        assert res.outcome is Outcome.OK
    over = await book.submit(rnd.round_id, "bank_a", "a3", new_ref(), terms(), 320_000,
                             max_offers=3)
    assert (over.outcome, over.offer) == (Outcome.OFFER_LIMIT, None)
    assert len(await book.events(rnd.round_id)) == 3  # nothing changed
    # revisions do not count; other banks have their own limit; 0 means no limit
    res = await book.revise(rnd.round_id, "bank_a", "a0", terms(290_000), 300_000)
    assert res.outcome is Outcome.OK
    res = await book.submit(rnd.round_id, "bank_b", "b0", new_ref(), terms(), 330_000,
                            max_offers=3)
    assert res.outcome is Outcome.OK
    res = await book.submit(rnd.round_id, "bank_a", "a4", new_ref(), terms(), 320_000)
    assert res.outcome is Outcome.OK


async def test_the_offer_limit_does_not_refuse_a_replay_of_an_accepted_offer(
        book: CheckedBook) -> None:
    rnd = await opened(book)
    first = await book.submit(rnd.round_id, "bank_a", "a0", new_ref(), terms(), 330_000,
                              ("k1", "h1"), max_offers=1)
    again = await book.submit(rnd.round_id, "bank_a", "a9", new_ref(), terms(), 330_000,
                              ("k1", "h1"), max_offers=1)
    assert again.outcome is Outcome.IDEMPOTENCY_REPLAY and again.offer == first.offer


async def test_a_closed_round_answers_closed_before_the_offer_limit(book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=SHORT_MS)
    await book.submit(rnd.round_id, "bank_a", "a0", new_ref(), terms(), 330_000, max_offers=1)
    await sleep_past(rnd.closes_at_ms)
    res = await book.submit(rnd.round_id, "bank_a", "a1", new_ref(), terms(), 330_000,
                            max_offers=1)
    assert res.outcome is Outcome.ROUND_CLOSED


# ----------------------------------------------------------------------------- revise
async def test_revision_bumps_version_keeps_ref_and_label_and_takes_a_new_seq(
        book: CheckedBook) -> None:
    rnd = await opened(book)
    a = await bid(book, rnd, "bank_a", "off_a", 330_000)
    b = await bid(book, rnd, "bank_b", "off_b", 320_000)
    assert (a.rank, b.rank) == (1, 1)
    assert a.offer is not None
    r2 = await book.revise(rnd.round_id, "bank_a", "off_a", terms(290_000), 310_000)
    assert r2.outcome is Outcome.OK and r2.offer is not None
    assert (r2.offer.version, r2.offer.seq, r2.rank) == (2, 3, 1)
    assert (r2.offer.ref, r2.offer.label, r2.offer.offer_id) == (
        a.offer.ref, a.offer.label, "off_a")
    assert r2.offer.terms == terms(290_000) and r2.offer.apr_e4 == 310_000
    r3 = await book.revise(rnd.round_id, "bank_a", "off_a", terms(350_000), 340_000)
    assert r3.offer is not None and (r3.offer.version, r3.offer.seq, r3.rank) == (3, 4, 2)
    view = await book.view(rnd.round_id)
    assert view is not None
    assert [(o.offer_id, o.version) for o in view.offers] == [("off_b", 1), ("off_a", 3)]


async def test_revising_another_banks_offer_is_offer_unknown(book: CheckedBook) -> None:
    rnd = await opened(book)
    a = await bid(book, rnd, "bank_a", "off_a", 330_000)
    res = await book.revise(rnd.round_id, "bank_b", "off_a", terms(200_000), 210_000)
    assert (res.outcome, res.offer, res.rank) == (Outcome.OFFER_UNKNOWN, None, None)
    view = await book.view(rnd.round_id)
    assert view is not None and view.offers == [a.offer] and view.seq == 1


async def test_revising_an_offer_that_does_not_exist_is_offer_unknown(book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "off_a", 330_000)
    res = await book.revise(rnd.round_id, "bank_a", "off_zz", terms(200_000), 210_000)
    assert res.outcome is Outcome.OFFER_UNKNOWN
    assert len(await book.events(rnd.round_id)) == 1


# ----------------------------------------------------------------------------- unknown round
async def test_commands_on_an_unknown_round_say_round_unknown(book: CheckedBook) -> None:
    await opened(book)  # another round exists
    rid = "rnd_never_opened"
    assert (await book.submit(rid, "bank_a", "off_1", new_ref(), terms(), 1)).outcome \
        is Outcome.ROUND_UNKNOWN
    assert (await book.revise(rid, "bank_a", "off_1", terms(), 1)).outcome \
        is Outcome.ROUND_UNKNOWN
    assert (await book.close(rid)).outcome is Outcome.ROUND_UNKNOWN
    assert await book.view(rid) is None
    assert await book.view(rid, "bank_a") is None
    assert await book.events(rid) == []


# ----------------------------------------------------------------------------- ranking
# steps: ("s", bank, offer, apr_e4, rate_e4) submits, ("r", bank, offer, apr_e4, rate_e4) revises
RANKING = [
    pytest.param([("s", "A", "a", 320_000, 300_000), ("s", "B", "b", 310_000, 305_000)],
                 ["b", "a"], id="lower_apr_first_whatever_the_rate"),
    pytest.param([("s", "A", "a", 310_000, 300_000), ("s", "B", "b", 310_000, 299_999)],
                 ["b", "a"], id="equal_apr_lower_rate_first"),
    pytest.param([("s", "A", "a", 310_000, 300_000), ("s", "B", "b", 310_000, 300_000),
                  ("s", "C", "c", 310_000, 300_000)],
                 ["a", "b", "c"], id="full_tie_earlier_seq_first"),
    pytest.param([("s", "A", "a", 310_000, 300_000), ("s", "B", "b", 310_000, 300_000),
                  ("r", "A", "a", 310_000, 300_000)],
                 ["b", "a"], id="revision_with_same_terms_loses_time_priority"),
    pytest.param([("s", "A", "a", 310_000, 300_000), ("s", "B", "b", 320_000, 300_000),
                  ("s", "C", "c", 330_000, 300_000), ("r", "C", "c", 300_000, 290_000)],
                 ["c", "a", "b"], id="better_revision_jumps_ahead"),
    pytest.param([("s", "A", "a", 310_000, 300_000), ("s", "B", "b", 320_000, 300_000),
                  ("r", "A", "a", 330_000, 300_000)],
                 ["b", "a"], id="worse_revision_falls_back"),
    pytest.param([("s", "A", "a", 1_000_000, 1), ("s", "B", "b", 999_999, 2),
                  ("s", "C", "c", 99_999, 3)],
                 ["c", "b", "a"], id="fewer_digits_rank_first"),
    pytest.param([("s", "A", "a1", 310_000, 300_000), ("s", "A", "a2", 305_000, 300_000),
                  ("s", "B", "b", 305_000, 300_000), ("r", "A", "a1", 305_000, 300_000)],
                 ["a2", "b", "a1"], id="several_offers_of_one_bank_rank_on_their_own"),
    pytest.param([("s", "A", "a", 0, 1), ("s", "B", "b", 999_999_999_999, 999_999_999_999)],
                 ["a", "b"], id="extreme_values_of_the_key_width"),
]


@pytest.mark.parametrize(("steps", "expected"), RANKING)
async def test_book_ranks_by_apr_then_rate_then_earlier_seq(
        book: CheckedBook, steps: list[tuple[str, str, str, int, int]],
        expected: list[str]) -> None:
    rnd = await opened(book)
    for op, bank, offer, apr, rate in steps:
        if op == "s":
            res = await bid(book, rnd, bank, offer, apr, rate)
        else:
            res = await book.revise(rnd.round_id, bank, offer, terms(rate), apr)
        assert res.outcome is Outcome.OK
        # the rank a command reports is the offer's place in the book right after it
        assert res.rank == (await order(book, rnd)).index(offer) + 1
    assert await order(book, rnd) == expected


# ----------------------------------------------------------------------------- events
async def test_each_event_raises_seq_by_one_and_after_seq_returns_the_tail(
        book: CheckedBook) -> None:
    rnd = await opened(book)
    results = [await bid(book, rnd, "bank_a", "a", 330_000),
               await bid(book, rnd, "bank_b", "b", 320_000),
               await book.revise(rnd.round_id, "bank_a", "a", terms(290_000), 310_000),
               await bid(book, rnd, "bank_c", "c", 315_000),
               await book.revise(rnd.round_id, "bank_b", "b", terms(280_000), 300_000)]
    events = await book.events(rnd.round_id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.kind for e in events] == ["quote"] * 5
    assert [e.offer for e in events] == [r.offer for r in results]
    for after in range(7):
        tail = await book.events(rnd.round_id, after_seq=after)
        assert [e.seq for e in tail] == list(range(after + 1, 6))
        assert tail == events[after:]


async def test_each_quote_records_the_offers_rank_and_the_books_size(book: CheckedBook) -> None:
    """What the stream's quote carries, decided atomically with the change."""
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "a", 330_000)  # a
    await bid(book, rnd, "bank_b", "b", 320_000)  # b a
    await book.revise(rnd.round_id, "bank_a", "a", terms(290_000), 310_000)  # a b
    await bid(book, rnd, "bank_c", "c", 315_000)  # a c b
    await book.revise(rnd.round_id, "bank_b", "b", terms(280_000), 300_000)  # b a c
    events = await book.events(rnd.round_id)
    assert [(e.rank, e.size) for e in events] == [(1, 1), (1, 2), (1, 2), (2, 3), (1, 3)]


async def test_events_after_and_events_at_read_many_rounds_at_once(book: CheckedBook) -> None:
    one, two = await opened(book), await opened(book)
    for i in range(3):
        await bid(book, one, f"bank_{i}", f"a{i}", 330_000 - i)
    await bid(book, two, "bank_0", "b0", 330_000)
    every = {r.round_id: await book.events(r.round_id) for r in (one, two)}
    got = await book.events_after({one.round_id: 1, two.round_id: 0, "rnd_unknown": 0})
    assert got == {one.round_id: every[one.round_id][1:], two.round_id: every[two.round_id],
                   "rnd_unknown": []}
    assert await book.events_after({}) == {}
    # at most ``limit`` per round, the first ones: one read does not grow with a round's history
    assert await book.events_after({one.round_id: 0, two.round_id: 0}, limit=2) == {
        one.round_id: every[one.round_id][:2], two.round_id: every[two.round_id][:2]}
    at = await book.events_at({one.round_id: 3, two.round_id: 2, "rnd_unknown": 1})
    assert at == {one.round_id: every[one.round_id][2], two.round_id: None, "rnd_unknown": None}
    assert await book.events_at({}) == {}


async def test_history_is_the_last_seq_and_at_most_limit_events_after_a_seq(
        book: CheckedBook) -> None:
    rnd = await opened(book)
    for i in range(6):
        await bid(book, rnd, f"bank_{i}", f"o{i}", 330_000 - i)
    events = await book.events(rnd.round_id)
    h = await book.history(rnd.round_id, 2, 3)
    assert (h.seq, h.events) == (6, events[2:5])
    assert (await book.history(rnd.round_id, 6, 10)).events == []
    assert (await book.history(rnd.round_id, 9, 10)).seq == 6  # asked beyond the end
    assert (await book.history("rnd_unknown", 0, 10)).seq is None


async def test_forgotten_events_are_gone_and_the_rest_of_the_round_is_untouched(
        book: CheckedBook) -> None:
    """What SQL holds may be forgotten (the persister does, keeping a tail): the events after
    the seq stay as they were, the book and its seq do not change, reads start at the first
    event kept, and the round takes offers as before."""
    rnd, other = await opened(book), await opened(book)
    for i in range(3):
        await bid(book, rnd, f"bank_{i}", f"o{i}", 330_000 - i)
    await bid(book, other, "bank_0", "x", 330_000)
    for n in range(57):
        await book.inner.revise(rnd.round_id, f"bank_{n % 3}", f"o{n % 3}",
                                terms(300_000 - n), 320_000 - n)
    await book.check(rnd.round_id)
    events, view = await book.events(rnd.round_id), await book.view(rnd.round_id)
    assert len(events) == 60
    await book.forget({rnd.round_id: 40, "rnd_unknown": 5})
    kept = await book.events(rnd.round_id)
    # all of 41..60 as they were; of 1..40 at most a few (Redis drops whole stream nodes)
    assert kept == events[kept[0].seq - 1:] and 1 < kept[0].seq <= 41
    assert await book.view(rnd.round_id) == view
    assert (await book.history(rnd.round_id, 0, 5)).events == events[kept[0].seq - 1:][:5]
    assert (await book.history(rnd.round_id, 50, 5)).events == events[50:55]
    assert await book.events_after({rnd.round_id: 40}, 3) == {rnd.round_id: events[40:43]}
    assert len(await book.events(other.round_id)) == 1  # another round: untouched
    got = await book.inner.submit(rnd.round_id, "bank_3", "o3", new_ref(), terms(), 300_000)
    assert got.outcome is Outcome.OK and got.offer is not None and got.offer.seq == 61
    await book.forget({})


async def test_events_of_different_rounds_are_numbered_separately(book: CheckedBook) -> None:
    one, two = await opened(book), await opened(book)
    await bid(book, one, "bank_a", "a1", 330_000)
    await bid(book, two, "bank_a", "a2", 330_000)
    await bid(book, one, "bank_b", "b1", 320_000)
    assert [e.seq for e in await book.events(one.round_id)] == [1, 2]
    assert [e.seq for e in await book.events(two.round_id)] == [1]


async def test_concurrent_offers_get_distinct_contiguous_seqs(book: CheckedBook) -> None:
    rnd = await opened(book)
    results = await asyncio.gather(*[
        book.inner.submit(rnd.round_id, f"bank_{i % 7}", f"off_{i}", new_ref(),
                          terms(300_000 + i), 330_000 - i * 100) for i in range(40)])
    await book.check(rnd.round_id)
    assert all(r.outcome is Outcome.OK for r in results)
    assert sorted(r.offer.seq for r in results if r.offer) == list(range(1, 41))
    assert await order(book, rnd) == [f"off_{i}" for i in reversed(range(40))]


# ----------------------------------------------------------------------------- idempotency
async def test_submit_replay_returns_the_original_offer_and_adds_no_event(
        book: CheckedBook) -> None:
    rnd = await opened(book)
    first = await bid(book, rnd, "bank_a", "off_1", 330_000, idem=("bank_a:k1", "hash-1"))
    await bid(book, rnd, "bank_b", "off_b", 320_000)
    # the gateway mints a fresh offer_id and ref per request: the replay must ignore them
    again = await book.submit(rnd.round_id, "bank_a", "off_2", new_ref(), terms(), 330_000,
                              ("bank_a:k1", "hash-1"))
    assert again.outcome is Outcome.IDEMPOTENCY_REPLAY
    assert again.offer == first.offer
    assert again.rank == 1  # the first answer's rank (API.md), not the offer's current one
    assert len(await book.events(rnd.round_id)) == 2
    assert await order(book, rnd) == ["off_b", "off_1"]


async def test_a_replay_record_written_before_ranks_were_kept_answers_the_current_rank(
        redis_book: CheckedBook) -> None:
    """Records written before the rank was kept in them (within their 24 h) still replay:
    with the offer's current rank, as all replays did then."""
    book = redis_book
    assert book.redis is not None
    rnd = await opened(book)
    first = await bid(book, rnd, "bank_a", "off_1", 330_000, idem=("bank_a:k1", "hash-1"))
    await bid(book, rnd, "bank_b", "off_b", 320_000)
    assert first.offer is not None and first.rank == 1
    key = offer_idempotency(rnd.round_id, "bank_a:k1")
    record = (await book.redis.get(key)).decode()
    assert record.endswith("|off_1|1")  # the first answer's rank is kept
    await book.redis.set(key, record.removesuffix("|1"))  # as an older version wrote it
    again = await book.submit(rnd.round_id, "bank_a", "off_2", new_ref(), terms(), 330_000,
                              ("bank_a:k1", "hash-1"))
    assert (again.outcome, again.offer, again.rank) == (
        Outcome.IDEMPOTENCY_REPLAY, first.offer, 2)


async def test_submit_with_a_used_key_and_another_body_is_a_mismatch(book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "off_1", 330_000, idem=("bank_a:k1", "hash-1"))
    res = await bid(book, rnd, "bank_a", "off_2", 320_000, idem=("bank_a:k1", "hash-2"))
    assert (res.outcome, res.offer) == (Outcome.IDEMPOTENCY_MISMATCH, None)
    assert len(await book.events(rnd.round_id)) == 1


async def test_revise_replay_returns_that_version_even_after_later_revisions(
        book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "off_1", 330_000)
    await bid(book, rnd, "bank_b", "off_b", 320_000)
    v2 = await book.revise(rnd.round_id, "bank_a", "off_1", terms(290_000), 310_000,
                           ("bank_a:k2", "hash-2"))
    assert v2.offer is not None and v2.offer.version == 2 and v2.rank == 1
    v3 = await book.revise(rnd.round_id, "bank_a", "off_1", terms(350_000), 340_000)
    assert v3.offer is not None and v3.offer.version == 3
    replay = await book.revise(rnd.round_id, "bank_a", "off_1", terms(290_000), 310_000,
                               ("bank_a:k2", "hash-2"))
    assert replay.outcome is Outcome.IDEMPOTENCY_REPLAY
    assert replay.offer == v2.offer
    assert replay.rank == 1  # the first answer's rank, not the offer's current rank (2)
    mismatch = await book.revise(rnd.round_id, "bank_a", "off_1", terms(1), 1,
                                 ("bank_a:k2", "hash-other"))
    assert mismatch.outcome is Outcome.IDEMPOTENCY_MISMATCH
    assert len(await book.events(rnd.round_id)) == 4


async def test_idempotency_keys_are_separate(book: CheckedBook) -> None:
    rnd = await opened(book)
    a = await bid(book, rnd, "bank_a", "off_1", 330_000, idem=("bank_a:k1", "h"))
    b = await bid(book, rnd, "bank_a", "off_2", 330_000, idem=("bank_a:k2", "h"))
    assert (a.outcome, b.outcome) == (Outcome.OK, Outcome.OK)
    assert await order(book, rnd) == ["off_1", "off_2"]


async def test_replay_still_answers_after_the_round_closed(book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=SHORT_MS)
    first = await bid(book, rnd, "bank_a", "off_1", 330_000, idem=("bank_a:k1", "hash-1"))
    await sleep_past(rnd.closes_at_ms)
    assert (await book.close(rnd.round_id)).outcome is Outcome.OK
    again = await bid(book, rnd, "bank_a", "off_9", 330_000, idem=("bank_a:k1", "hash-1"))
    assert (again.outcome, again.offer) == (Outcome.IDEMPOTENCY_REPLAY, first.offer)


# ----------------------------------------------------------------------------- deadline
async def test_offers_after_the_deadline_are_refused_before_any_close(book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=SHORT_MS)
    await bid(book, rnd, "bank_a", "off_a", 330_000)
    await sleep_past(rnd.closes_at_ms)
    late = await bid(book, rnd, "bank_b", "off_b", 300_000)
    late_rev = await book.revise(rnd.round_id, "bank_a", "off_a", terms(290_000), 300_000)
    assert (late.outcome, late_rev.outcome) == (Outcome.ROUND_CLOSED, Outcome.ROUND_CLOSED)
    view = await book.view(rnd.round_id)
    assert view is not None and view.state is RoundState.OPEN  # closing is close()'s job
    assert [(o.offer_id, o.version) for o in view.offers] == [("off_a", 1)]


async def test_a_round_whose_deadline_has_passed_takes_no_offer(book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=-1_000)
    assert (await bid(book, rnd, "bank_a", "off_a", 330_000)).outcome is Outcome.ROUND_CLOSED
    assert await book.events(rnd.round_id) == []


# ----------------------------------------------------------------------------- close
async def test_close_before_the_deadline_is_not_due(book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "off_a", 330_000)
    res = await book.close(rnd.round_id)
    assert (res.outcome, res.seq, res.closed_at_ms, res.offers) == (Outcome.NOT_DUE, 1, 0, [])
    view = await book.view(rnd.round_id)
    assert view is not None and view.state is RoundState.OPEN and view.seq == 1


async def test_close_happens_once_and_later_calls_repeat_its_seq_and_time(
        book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=SHORT_MS)
    await bid(book, rnd, "bank_a", "off_a", 330_000)
    await bid(book, rnd, "bank_b", "off_b", 320_000)
    await book.revise(rnd.round_id, "bank_a", "off_a", terms(280_000), 300_000)
    await sleep_past(rnd.closes_at_ms)

    closed = await book.close(rnd.round_id)
    assert closed.outcome is Outcome.OK and closed.seq == 4
    assert rnd.closes_at_ms <= closed.closed_at_ms <= now_ms() + 1_000
    assert [(o.offer_id, o.version) for o in closed.offers] == [("off_a", 2), ("off_b", 1)]

    for _ in range(3):
        again = await book.close(rnd.round_id)
        assert (again.outcome, again.seq, again.closed_at_ms) == (
            Outcome.ALREADY_CLOSED, closed.seq, closed.closed_at_ms)
        assert again.offers == closed.offers

    events = await book.events(rnd.round_id)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert (events[-1].kind, events[-1].at_ms, events[-1].offer) == (
        "round_closed", closed.closed_at_ms, None)
    assert await book.events(rnd.round_id, after_seq=3) == [events[-1]]
    view = await book.view(rnd.round_id)
    assert view is not None
    assert (view.state, view.seq, view.closed_at_ms) == (RoundState.CLOSED, 4, closed.closed_at_ms)


async def test_closed_round_refuses_offers_and_revisions(book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=SHORT_MS)
    await bid(book, rnd, "bank_a", "off_a", 330_000)
    await sleep_past(rnd.closes_at_ms)
    assert (await book.close(rnd.round_id)).outcome is Outcome.OK
    assert (await bid(book, rnd, "bank_b", "off_b", 300_000)).outcome is Outcome.ROUND_CLOSED
    assert (await book.revise(rnd.round_id, "bank_a", "off_a", terms(1), 1)).outcome \
        is Outcome.ROUND_CLOSED
    assert (await book.revise(rnd.round_id, "bank_b", "off_a", terms(1), 1)).outcome \
        is Outcome.OFFER_UNKNOWN
    assert len(await book.events(rnd.round_id)) == 2


async def test_close_many_equals_close_of_each_round_in_order(book: CheckedBook) -> None:
    due = [await opened(book, closes_in_ms=SHORT_MS) for _ in range(3)]
    later = await opened(book)
    await bid(book, due[0], "bank_a", "a0", 330_000)
    await bid(book, due[0], "bank_b", "b0", 320_000)
    await bid(book, due[2], "bank_a", "a2", 310_000)
    await sleep_past(max(r.closes_at_ms for r in due))
    assert (await book.close(due[1].round_id)).outcome is Outcome.OK  # closed before
    ids = [due[0].round_id, later.round_id, "rnd_unknown", due[1].round_id, due[2].round_id]
    got = await book.close_many(ids)
    assert [r.outcome for r in got] == [Outcome.OK, Outcome.NOT_DUE, Outcome.ROUND_UNKNOWN,
                                        Outcome.ALREADY_CLOSED, Outcome.OK]
    assert [(o.offer_id, o.version) for o in got[0].offers] == [("b0", 1), ("a0", 1)]
    assert [o.offer_id for o in got[4].offers] == ["a2"] and got[3].offers == []
    assert [await book.close(rid) for rid in ids[:2] + ids[3:]] == [
        CloseResult(Outcome.ALREADY_CLOSED, r.seq, r.closed_at_ms, r.offers) if r.outcome in (
            Outcome.OK, Outcome.ALREADY_CLOSED) else r for r in got[:2] + got[3:]]
    assert await book.close_many([]) == []
    # retired together: off the deadline index, the others stay
    assert set(await book.due(10)) == {due[0].round_id, due[1].round_id, due[2].round_id}
    await book.retire_many([due[0].round_id, due[2].round_id], 60)
    await book.retire_many([], 60)
    assert await book.due(10) == [due[1].round_id]


async def test_a_round_without_offers_closes_with_seq_1(book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=-1)
    res = await book.close(rnd.round_id)
    assert (res.outcome, res.seq, res.offers) == (Outcome.OK, 1, [])


# ----------------------------------------------------------------------------- view
async def test_view_names_the_viewers_label_only_once_that_bank_has_bid(
        book: CheckedBook) -> None:
    rnd = await opened(book, labels=["Banka M", "Banka T"])
    await bid(book, rnd, "bank_a", "off_a", 330_000)
    expected = {"bank_a": "Banka M", "bank_b": None, "": None}
    for viewer, label in expected.items():
        view = await book.view(rnd.round_id, viewer)
        assert view is not None and view.viewer_label == label, viewer
    await bid(book, rnd, "bank_b", "off_b", 330_000)
    view = await book.view(rnd.round_id, "bank_b")
    assert view is not None and view.viewer_label == "Banka T"


async def test_views_of_different_viewers_hold_the_same_book(book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "off_a", 330_000)
    await bid(book, rnd, "bank_b", "off_b", 320_000)
    views = [await book.view(rnd.round_id, v) for v in ("", "bank_a", "bank_b", "bank_z")]
    assert all(v is not None for v in views)
    assert len({tuple(v.offers) for v in views if v is not None}) == 1


# ----------------------------------------------------------------------------- Redis only
async def test_every_key_of_a_round_carries_its_hash_tag(redis_book: CheckedBook) -> None:
    redis = redis_book.redis
    assert redis is not None
    one = await opened(redis_book, closes_in_ms=SHORT_MS)
    two = await opened(redis_book)
    for rnd in (one, two):
        await bid(redis_book, rnd, "bank_a", "off_a", 330_000, idem=("bank_a:k1", "h1"))
        await bid(redis_book, rnd, "bank_b", "off_b", 320_000)
        await redis_book.revise(rnd.round_id, "bank_b", "off_b", terms(1), 1,
                                ("bank_b:k2", "h2"))
    await sleep_past(one.closes_at_ms)
    await redis_book.close(one.round_id)
    await check_redis_keys(redis, {one.round_id, two.round_id})
    keys = await redis_keys(redis)
    for rnd in (one, two):
        mine = [k for k in keys if round_of(k) == rnd.round_id]
        # meta, book, offers, labels, pool, events and the two idempotency records
        assert len(mine) == 8, mine
        assert {hash_tag(k) for k in mine} == {f"b{bucket_of(rnd.round_id):02d}"}
    # besides: the buckets' deadline indexes (a closed round stays on it until retired) and
    # dirty sets, in the buckets' slots
    assert {k for k in keys if round_of(k) is None} == {
        f(r.round_id) for r in (one, two) for f in (round_deadlines, round_dirty)}


async def test_redis_books_run_on_the_intended_server_versions(redis_book: CheckedBook) -> None:
    redis: Redis | None = redis_book.redis
    assert redis is not None
    version = (await redis.info("server"))["redis_version"]
    assert version.startswith("6.2." if redis_book.name == "redis-6.2" else "7."), version


# ----------------------------------------------------------------------------- deadline index
async def test_an_opened_round_is_due_once_its_deadline_passes_and_not_before(
        book: CheckedBook) -> None:
    later = await opened(book, closes_in_ms=MINUTE_MS)
    soon = await opened(book, closes_in_ms=SHORT_MS)
    past = await opened(book, closes_in_ms=-1)
    assert await book.due(10) == [past.round_id]
    await sleep_past(soon.closes_at_ms)
    assert await book.due(10) == [past.round_id, soon.round_id]  # the earliest first
    assert await book.due(1) == [past.round_id]
    assert later.round_id not in await book.due(10)


async def test_unschedule_drops_a_round_from_the_index_and_reschedule_puts_it_back_once(
        book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=-1)
    await book.unschedule(rnd.round_id)
    assert await book.due(10) == []
    assert await book.reschedule({rnd.round_id: rnd.closes_at_ms}) == 1
    assert await book.due(10) == [rnd.round_id]
    assert await book.reschedule({rnd.round_id: rnd.closes_at_ms + 5}) == 0  # kept as it was
    assert await book.reschedule({}) == 0


async def test_a_round_stays_due_until_its_close_is_complete(book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=-1)
    assert (await book.close(rnd.round_id)).outcome is Outcome.OK
    assert await book.due(10) == [rnd.round_id]  # the closer retires it once SQL has it
    await book.retire(rnd.round_id, 60)
    assert await book.due(10) == []
    view = await book.view(rnd.round_id)  # still readable until it expires
    assert view is not None and view.state is RoundState.CLOSED


async def test_due_of_some_buckets_finds_only_their_rounds(book: CheckedBook) -> None:
    rounds = [await opened(book, closes_in_ms=-1 - i) for i in range(12)]
    buckets = sorted({bucket_of(r.round_id) for r in rounds})
    mine, theirs = buckets[: len(buckets) // 2], buckets[len(buckets) // 2:]
    got = await book.due(100, mine)
    assert set(got) == {r.round_id for r in rounds if bucket_of(r.round_id) in mine}
    assert set(await book.due(100, theirs)) == {r.round_id for r in rounds} - set(got)
    assert await book.due(100, []) == []
    # the earliest first across the buckets asked for, at most the limit
    every = await book.due(100, buckets)
    assert every == [r.round_id for r in sorted(rounds, key=lambda r: (r.closes_at_ms, r.round_id))]
    assert await book.due(3, buckets) == every[:3]


# ----------------------------------------------------------------------------- dirty sets
async def test_an_accepted_quote_marks_its_round_dirty_until_taken(book: CheckedBook) -> None:
    one, two = await opened(book), await opened(book)
    b1, b2 = bucket_of(one.round_id), bucket_of(two.round_id)
    assert await book.take_dirty([b1, b2], 10) == []  # opening is not an event
    await bid(book, one, "bank_a", "a1", 330_000)
    await bid(book, one, "bank_b", "b1", 320_000)
    await book.revise(two.round_id, "bank_a", "nope", terms(), 1)  # refused: not dirty
    assert await book.take_dirty([b for b in range(64) if b != b1], 10) == []
    assert await book.take_dirty([b1], 10) == [one.round_id]  # once, however many events
    assert await book.take_dirty([b1], 10) == []
    await book.revise(one.round_id, "bank_a", "a1", terms(290_000), 300_000)
    await bid(book, two, "bank_a", "a2", 330_000)
    assert sorted(await book.take_dirty(sorted({b1, b2}), 10)) == sorted(
        [one.round_id, two.round_id])


async def test_a_round_given_back_is_dirty_again(book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "a1", 330_000)
    b = bucket_of(rnd.round_id)
    assert await book.take_dirty([b], 10) == [rnd.round_id]
    await book.mark_dirty([rnd.round_id])
    await book.mark_dirty([])
    assert await book.take_dirty([b], 10) == [rnd.round_id]


async def test_take_dirty_takes_at_most_limit_rounds_per_bucket(book: CheckedBook) -> None:
    rounds = [await opened(book) for _ in range(30)]
    for r in rounds:
        await bid(book, r, "bank_a", "a", 330_000)
    buckets = sorted({bucket_of(r.round_id) for r in rounds})
    first = await book.take_dirty(buckets, 1)
    assert len(first) == len(buckets) and len(set(first)) == len(first)
    rest = await book.take_dirty(buckets, 100)
    assert sorted(first + rest) == sorted(r.round_id for r in rounds)


async def bid_fails(book: CheckedBook, rnd: RoundTerms) -> None:
    res = await bid(book, rnd, "bank_late", "off_late", 330_000)
    assert res.outcome is Outcome.ROUND_CLOSED


async def test_a_retired_rounds_live_state_expires(redis_book: CheckedBook) -> None:
    redis = redis_book.redis
    assert redis is not None
    rnd = await opened(redis_book, closes_in_ms=-1)
    await bid_fails(redis_book, rnd)
    await redis_book.close(rnd.round_id)
    await redis_book.retire(rnd.round_id, 1)
    for key in round_keys(rnd.round_id):
        ttl = await redis.ttl(key)
        assert ttl in (-2, 0, 1), (key, ttl)  # -2: a key the round never had (no offers)


# ----------------------------------------------------------------------------- batch reads
async def test_has_bid_have_bid_and_seqs_read_many_rounds_at_once(book: CheckedBook) -> None:
    one, two = await opened(book), await opened(book)
    await bid(book, one, "bank_a", "a1", 330_000)
    await bid(book, one, "bank_b", "b1", 320_000)
    await bid(book, two, "bank_b", "b2", 320_000)
    assert await book.has_bid(one.round_id, "bank_a") is True
    assert await book.has_bid(two.round_id, "bank_a") is False
    assert await book.has_bid("rnd_unknown", "bank_a") is False
    assert await book.have_bid([one.round_id, two.round_id, "rnd_unknown"], "bank_b") == [
        True, True, False]
    assert await book.have_bid([], "bank_b") == []
    assert await book.seqs([one.round_id, two.round_id, "rnd_unknown"]) == [2, 1, None]
    assert await book.exists(one.round_id) and not await book.exists("rnd_unknown")


async def test_event_reads_one_event_of_the_sequence(book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "a1", 330_000)
    await bid(book, rnd, "bank_b", "b1", 320_000)
    events = await book.events(rnd.round_id)
    assert await book.event(rnd.round_id, 2) == events[1]
    assert await book.event(rnd.round_id, 3) is None
    assert await book.event("rnd_unknown", 1) is None


# ----------------------------------------------------------------------------- rebuild
async def test_a_rebuilt_round_is_the_same_book_and_goes_on_from_its_seq(
        book: CheckedBook) -> None:
    """What the durability use case does after the book lost a round: rebuild it from what
    SQL holds (every version, the labels, the unused pool), then bidding goes on."""
    rnd = await opened(book, labels=["Banka K", "Banka L", "Banka M"])
    await bid(book, rnd, "bank_a", "a1", 330_000)
    await bid(book, rnd, "bank_b", "b1", 320_000)
    await book.revise(rnd.round_id, "bank_a", "a1", terms(290_000), 300_000)
    events = await book.events(rnd.round_id)
    view = await book.view(rnd.round_id)
    assert view is not None
    copy_id = "rnd_copy_" + secrets.token_hex(3)
    snap = RoundSnapshot(
        copy_id, RoundState.OPEN, rnd.opened_at_ms, rnd.closes_at_ms, 0,
        await book.labels(rnd.round_id), await book.unused_labels(rnd.round_id),
        [replace(o, round_id=copy_id) for o in view.offers],
        # as the durability use case rebuilds them: from SQL, ranks replayed (with_ranks)
        with_ranks([replace(e, round_id=copy_id, rank=0, size=0,
                            offer=replace(e.offer, round_id=copy_id) if e.offer else None)
                    for e in events]))
    assert await book.restore(snap) is True
    assert await book.restore(snap) is False  # a round that exists is left alone
    copy = await book.view(copy_id, "bank_a")
    assert copy is not None
    assert [(e.seq, e.rank, e.size) for e in await book.events(copy_id)] == [
        (e.seq, e.rank, e.size) for e in events]
    assert [(o.offer_id, o.version, o.seq, o.label) for o in copy.offers] == [
        (o.offer_id, o.version, o.seq, o.label) for o in view.offers]
    assert copy.viewer_label == "Banka K" and copy.seq == 3
    res = await book.submit(copy_id, "bank_c", "c1", new_ref(), terms(310_000), 310_000)
    assert res.offer is not None and (res.offer.seq, res.offer.label) == (4, "Banka M")
    assert copy_id not in await book.due(10)  # open, on the index, not yet due
    await book.unschedule(copy_id)


async def test_an_open_round_rebuilt_is_back_on_its_deadline_index(book: CheckedBook) -> None:
    rnd = a_round(closes_in_ms=-1)
    snap = RoundSnapshot(rnd.round_id, RoundState.OPEN, rnd.opened_at_ms, rnd.closes_at_ms, 0,
                         {}, ["Banka A"], [], [])
    assert await book.restore(snap) is True
    assert await book.due(10, [bucket_of(rnd.round_id)]) == [rnd.round_id]


async def test_a_closed_round_rebuilt_stays_closed_and_off_the_index(book: CheckedBook) -> None:
    rid = "rnd_closed_" + secrets.token_hex(3)
    snap = RoundSnapshot(rid, RoundState.CLOSED, 1, 2, 3, {}, ["Banka A"], [],
                         [Event(rid, 1, "round_closed", at_ms=3)])
    assert await book.restore(snap) is True
    view = await book.view(rid)
    assert view is not None and (view.state, view.seq, view.closed_at_ms) == (
        RoundState.CLOSED, 1, 3)
    assert rid not in await book.due(10)
    assert (await book.close(rid)).outcome is Outcome.ALREADY_CLOSED


async def test_a_book_is_intact_only_once_marked(book: CheckedBook) -> None:
    assert await book.intact() is False
    await book.mark_intact()
    assert await book.intact() is True


# ----------------------------------------------------------------------------- the Lua prelude
async def test_the_lua_rank_member_and_clock_rules_agree_with_python(
        redis_book: CheckedBook) -> None:
    """The Lua prelude mirrors auction.ranking and auction.rules (may_bid, is_due)."""
    redis = redis_book.redis
    assert redis is not None
    rng = random.Random(7)
    values = [(0, 0, 0, "a"), (10**KEY_WIDTH - 1,) * 3 + ("ffffffffffff",)] + [
        (rng.randrange(10**KEY_WIDTH), rng.randrange(10**KEY_WIDTH),
         rng.randrange(10**KEY_WIDTH), secrets.token_hex(6)) for _ in range(50)]
    script = scripts.prelude() + (
        "local m = rank_member(ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"
        "return {m, member_ref(m)}")
    for apr, rate, seq, ref in values:
        m, back = await redis.eval(script, 0, apr, rate, seq, ref)
        assert (m.decode(), back.decode()) == (rank_member(apr, rate, seq, ref), ref)
    clock = scripts.prelude() + (
        "return {may_bid(ARGV[1], ARGV[2], tonumber(ARGV[3])) and 1 or 0,"
        " is_due(ARGV[1], ARGV[2], tonumber(ARGV[3])) and 1 or 0}")
    for state in RoundState:
        for closes, now in [(100, 99), (100, 100), (100, 101)]:
            got = await redis.eval(clock, 0, state.value, closes, now)
            assert got == [int(may_bid(state, closes, now)), int(is_due(state, closes, now))]
