"""A round closes exactly once, whichever gateway processes race to close it and wherever one
of them stops half-way. Each Core here has its own Redis and SQL connections, like a process."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis
from sqlalchemy import Table

from auction.model import Outcome, RoundState, RoundTerms
from auction.redis.keys import round_deadlines, round_keys
from gateway.workers import Workers
from persistence.reference import is_valid_reference
from persistence.tables import audit_log, binding_offers, round_closings
from tests.integration.conftest import CoreFactory, Proc, bank_id, offer_terms, open_round
from usecases import closing
from usecases.bidding import Accepted
from usecases.outcomes import Refusal

Core = Proc

#: long enough to open a round and bid in it on a loaded machine (at 0.6 s, a round opened on a
#: process's first call, with the suite running in two processes, was past its deadline before
#: its third offer: not_found), short enough to wait for
ROUND_S = 1.5


async def until_due(rnd: RoundTerms) -> None:
    await asyncio.sleep(max(0.0, rnd.closes_at_ms / 1000 - time.time()) + 0.03)


async def bid_round(core: Core, banks: int = 3) -> RoundTerms:
    """A short round with a few banks' offers, one of them revised to the top."""
    rnd = await open_round(core)
    offers = []
    for i in range(banks):
        res = await core.submit(rnd, bank_id(), offer_terms(390_000 - 1000 * i), None)
        assert isinstance(res, Accepted)
        offers.append(res.offer)
    res = await core.revise(rnd, offers[0].bank_id, offers[0].offer_id, offer_terms(360_000), None)
    assert isinstance(res, Accepted)
    return rnd


async def count(core: Core, table: Table, round_id: str, **where: str) -> int:
    return await core.count(table, round_id, **where)


async def assert_closed_once(core: Core, round_id: str, redis: Redis, state: str = "closed"
                             ) -> None:
    """One closing record, one audit row, binding offers equal to the final live book."""
    assert await count(core, round_closings, round_id) == 1
    assert await count(core, audit_log, round_id, action="round_closed") == 1
    closing = await core.closing(round_id)
    assert closing is not None and is_valid_reference(closing.reference_number)
    view = await core.book.view(round_id)
    assert view is not None and view.state is RoundState.CLOSED
    assert closing.final_seq == view.seq and closing.closed_at == view.closed_at_ms
    closes = [e for e in await core.book.events(round_id) if e.kind == "round_closed"]
    assert [e.seq for e in closes] == [view.seq]  # the Lua close flipped the round once
    binding = await core.binding(round_id)
    assert binding == [(i + 1, v) for i, v in enumerate(view.offers)]
    row = await core.round(round_id)
    assert (row.state, row.closed_at, row.persisted_seq) == (state, view.closed_at_ms, view.seq)
    binding_ms = core.settings.calendar.binding_duration.total_seconds() * 1000  # type: ignore[union-attr]
    assert row.binding_until == closing.binding_until == row.closes_at + int(binding_ms)
    assert await redis.zscore(round_deadlines(round_id), round_id) is None


async def test_closers_racing_in_several_processes_close_each_round_once(
        core_factory: CoreFactory, redis: Redis):
    cores = [await core_factory(round_s=ROUND_S) for _ in range(4)]
    rounds = [await bid_round(cores[i % 4]) for i in range(3)]
    empty = await open_round(cores[0])  # a round nobody bid in closes too, with no binding offer
    await until_due(empty)

    calls = []
    for rnd in rounds + [empty]:
        calls += [cores[0].finalize_close(rnd.round_id), cores[1].finalize_close(rnd.round_id)]
    calls += [cores[2].close_due(), cores[3].close_due()]
    results = await asyncio.gather(*calls)

    assert all(r is None or r.outcome in (Outcome.OK, Outcome.ALREADY_CLOSED)
               for r in results[:8])
    for rnd in rounds + [empty]:
        await assert_closed_once(cores[3], rnd.round_id, redis)
    assert await cores[0].binding(empty.round_id) == []
    for rnd in rounds:
        assert len(await cores[0].binding(rnd.round_id)) == 3
    # later calls change nothing
    assert await cores[1].close_due() == 0
    for rnd in rounds:
        again = await cores[2].finalize_close(rnd.round_id)
        assert again is not None and again.outcome is Outcome.ALREADY_CLOSED
        await assert_closed_once(cores[0], rnd.round_id, redis)


async def test_rounds_sharing_a_deadline_close_in_units_each_once(
        core_factory: CoreFactory, redis: Redis, monkeypatch: pytest.MonkeyPatch):
    """Units of 2 rounds, 2 at once: 7 rounds make 4 units; one round was closed by another
    process first, one was flipped by a process that then died, one lost its book."""
    monkeypatch.setattr(closing, "UNIT_ROUNDS", 2)
    monkeypatch.setattr(closing, "UNITS_AT_ONCE", 2)
    cores = [await core_factory(round_s=ROUND_S) for _ in range(2)]
    rounds = [await bid_round(cores[0], banks=1 + i % 3) for i in range(6)]
    rounds.append(await open_round(cores[0]))  # nobody bid
    await until_due(rounds[-1])
    assert (await cores[1].finalize_close(rounds[0].round_id)) is not None  # closed before
    assert (await cores[1].book.close(rounds[1].round_id)).outcome is Outcome.OK  # then died
    lost = rounds[2]
    await cores[1].persist_round(lost.round_id)
    await redis.delete(*round_keys(lost.round_id))  # the book lost this one: rebuilt from SQL

    got = await cores[0].portal.closing.close_batch(100)
    assert sorted(c.round_id for c in got) == sorted(r.round_id for r in rounds[1:])
    refs = [c.reference_number for c in got]
    assert None not in refs and len(set(refs)) == len(refs)
    assert all(c.lag_ms is not None and c.lag_ms >= 0 for c in got)
    for rnd in rounds:
        await assert_closed_once(cores[1], rnd.round_id, redis)
    assert await cores[1].close_due() == 0 and await cores[0].close_due() == 0


async def test_the_background_loops_of_three_processes_close_and_lapse_a_round_once(
        core_factory: CoreFactory, redis: Redis):
    cores = [await core_factory(round_s=ROUND_S, binding_s=0.3) for _ in range(3)]
    rnd = await bid_round(cores[0])
    loops = [Workers(c.rt) for c in cores]
    for bg in loops:
        await bg.start()
    try:
        deadline = time.monotonic() + 8
        while (await cores[1].round(rnd.round_id)).state != "lapsed":
            assert time.monotonic() < deadline, "the round never closed and lapsed"
            await asyncio.sleep(0.05)
    finally:
        held = [set(bg.held) for bg in loops]
        for bg in loops:
            await bg.stop()
    assert sum(map(len, held)) == len(set().union(*held))  # no bucket held twice
    await assert_closed_once(cores[2], rnd.round_id, redis, state="lapsed")
    assert await count(cores[0], audit_log, rnd.round_id, action="round_lapsed") == 1


@pytest.mark.parametrize("persisted_before_death", [False, True],
                         ids=["died-before-persisting", "died-before-closing-record"])
async def test_a_close_interrupted_after_lua_is_completed_by_another_process(
        core_factory: CoreFactory, redis: Redis, persisted_before_death: bool):
    dying = await core_factory(round_s=ROUND_S)
    rnd = await bid_round(dying)
    await until_due(rnd)
    half = await dying.book.close(rnd.round_id)  # the Lua close ran, then the process died
    assert half.outcome is Outcome.OK
    if persisted_before_death:  # ... or died after copying the events, before record_close
        assert await dying.persist_round(rnd.round_id) == half.seq
    row = await dying.round(rnd.round_id)
    assert row.state == "open" and await dying.closing(rnd.round_id) is None
    assert await redis.zscore(round_deadlines(rnd.round_id), rnd.round_id) is not None

    survivor = await core_factory(round_s=ROUND_S)
    assert await survivor.close_due() == 1
    await assert_closed_once(survivor, rnd.round_id, redis)
    closing = await survivor.closing(rnd.round_id)
    assert closing is not None
    assert (closing.closed_at, closing.final_seq) == (half.closed_at_ms, half.seq)
    assert await survivor.binding(rnd.round_id) == \
        [(i + 1, v) for i, v in enumerate(half.offers)]


async def test_a_close_interrupted_and_then_redis_losing_its_data_still_closes_once(
        core_factory: CoreFactory, redis: Redis):
    dying = await core_factory(round_s=ROUND_S)
    rnd = await bid_round(dying)
    before = await dying.book.view(rnd.round_id)
    await until_due(rnd)
    half = await dying.book.close(rnd.round_id)
    assert await dying.persist_round(rnd.round_id) == half.seq  # the close event is in SQL
    await redis.flushdb()  # ... and Redis lost everything before any closing record

    survivor = await core_factory(round_s=ROUND_S)
    assert await survivor.ensure_book() == 1
    assert await survivor.close_due() == 1
    await assert_closed_once(survivor, rnd.round_id, redis)
    assert before is not None
    assert [v for _, v in await survivor.binding(rnd.round_id)] == before.offers
    assert (await survivor.closing(rnd.round_id)).final_seq  # type: ignore[union-attr] == half.seq


async def test_every_acknowledged_offer_binds_at_close_even_an_absurdly_priced_one(
        core_factory: CoreFactory, redis: Redis):
    core = await core_factory(round_s=ROUND_S)
    rnd = await open_round(core)
    extreme = dict(tenor_months=6, grace_months=0, repayment_every_months=1)
    normal = await core.submit(rnd, bank_id(), offer_terms(385_000), None)
    pricey = await core.submit(rnd, bank_id(),
                               offer_terms(5_000_000, upfront_fee=250_000_000, **extreme), None)
    assert isinstance(normal, Accepted) and isinstance(pricey, Accepted)
    assert pricey.offer.apr_e4 > 10 ** 9 and pricey.rank == 2
    # an APR wider than the book's rank key, or one Decimal cannot even quantize, is refused
    # up front: acknowledged, it ranked first and then vanished from the view and the close
    for fee in (450_000_000, 499_000_000):
        refused = await core.submit(rnd, bank_id(),
                                    offer_terms(5_000_000, upfront_fee=fee, **extreme), None)
        assert isinstance(refused, Refusal) and refused.code == "validation_failed"
        assert [e.code for e in refused.errors or []] == ["no_apr"]
    await until_due(rnd)
    assert await core.close_due() == 1
    await assert_closed_once(core, rnd.round_id, redis)
    assert [v for _, v in await core.binding(rnd.round_id)] == [normal.offer, pricey.offer]


async def test_offers_after_the_deadline_are_refused_by_the_redis_clock_before_any_close(
        core_factory: CoreFactory, redis: Redis):
    core = await core_factory(round_s=ROUND_S)
    rnd = await bid_round(core, banks=1)
    view = await core.book.view(rnd.round_id)
    assert view is not None
    offer = view.offers[0]
    await until_due(rnd)

    late = await core.submit(rnd, offer.bank_id, offer_terms(300_000), None)
    assert isinstance(late, Refusal) and late.code == "round_closed"
    stranger = await core.submit(rnd, bank_id(), offer_terms(300_000), None)
    assert isinstance(stranger, Refusal) and stranger.code == "not_found"  # it never bid
    late_revision = await core.revise(rnd, offer.bank_id, offer.offer_id, offer_terms(300_000),
                                      None)
    assert isinstance(late_revision, Refusal) and late_revision.code == "round_closed"
    # nothing was accepted and nothing closed the round yet
    after = await core.book.view(rnd.round_id)
    assert after is not None and (after.state, after.seq) == (RoundState.OPEN, view.seq)
    assert await redis.zscore(round_deadlines(rnd.round_id), rnd.round_id) is not None
    assert await core.closing(rnd.round_id) is None


async def test_a_close_before_the_deadline_is_not_due_and_keeps_the_round_scheduled(
        core: Core, redis: Redis):
    rnd = await bid_round(core, banks=2)
    cr = await core.finalize_close(rnd.round_id)
    assert cr is not None and cr.outcome is Outcome.NOT_DUE
    assert await redis.zscore(round_deadlines(rnd.round_id), rnd.round_id) == rnd.closes_at_ms
    assert await core.close_due() == 0
    view = await core.book.view(rnd.round_id)
    assert view is not None and view.state is RoundState.OPEN
    assert (await core.round(rnd.round_id)).state == "open"
    assert await core.closing(rnd.round_id) is None
    fresh = await core.submit(rnd, bank_id(), offer_terms(350_000), None)
    assert isinstance(fresh, Accepted) and fresh.rank == 1


async def test_a_due_round_unknown_to_sql_is_dropped_from_the_deadline_index(core: Core,
                                                                            redis: Redis):
    await redis.zadd(round_deadlines("rnd_ghost"), {"rnd_ghost": 1})
    assert await core.close_due() == 0
    assert await redis.zscore(round_deadlines("rnd_ghost"), "rnd_ghost") is None
    assert await core.count(binding_offers) == 0
