"""The Redis engine against the reference model, step by step (a Hypothesis state machine).

Two stacks run the same use cases (``usecases.portal.Portal``) side by side:

- the system under test: ``RedisBook`` (its bid path over the multiplexed connection, as in
  production) and ``RedisGuards`` on a real Redis database, and a real SQLite database;
- the model: ``MemoryBook`` and ``MemoryGuards`` (the reference implementations) on a clock of
  the test's, and a SQLite database of its own.

The rules open rounds, submit offers (valid and invalid terms, several banks, Idempotency-Keys
reused with the same and with another body), revise (own and other banks' offers), let time
pass, run the persister and the closer, accept a binding offer, and crash: Redis loses its
data set (FLUSHDB), with or without the persister having caught up first, and the product's
rebuild from SQL (``Durability.ensure_book``, or the lazy ``restore_round`` of a command that
finds its round gone) restores it; the model's book is lost and rebuilt the same way.

After every step both stacks must agree on the answer (accepted with the same offer, version,
seq, rank and label, or the same refusal code and fields), on the masked book every bank sees
(or the refusal it gets), on the seqs, on SQL (offer versions, round states, closing records,
binding offers, acceptance) and on each bank's results after the close. Invariants of the
Redis engine: ``check_invariants`` of the contract suite on every round (seqs 1..n without a
gap, one close, ranks, labels), the live-offer counts submit.lua keeps, at most
``MAX_OFFERS`` live offers per bank, seqs never going back but across a crash that lost
unpersisted offers (documented), and no bank's view holding another bank's id or offer id.

Time: the live book's only clock is the Redis server's (``TIME`` inside the scripts), which a
test cannot move, so time passes for real (rounds last a fraction of a second) and the model's
clock is read off the Redis answer: each step is bracketed by two reads of the Redis clock
(``t0`` before, ``t1`` after); an accepted offer's ``accepted_at`` is the exact Redis time of the
decision; a refusal that says the deadline passed is modelled at ``t1``, any other at ``t0``.
Every answer Redis may rightly give at some instant of the step is then matched by the model,
and one it may not give at any (an offer accepted after its deadline, a close before it) is a
divergence. ``IGE_SOAK=1`` runs many more and longer sequences.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

import usecases.bidding
from applications import simulated
from auction.book import MemoryBook
from auction.bus import MemoryBus
from auction.calendar import CalendarRules
from auction.masking import book_for
from auction.model import OfferTerms, RoundTerms
from auction.redis.book import RedisBook
from auction.redis.guards import RedisGuards
from auction.redis.keys import Channels, round_keys
from auction.redis.mux import MuxRedis
from auction.rules import label_pool
from persistence.db import create_engine, migrate
from persistence.store import Store
from tests.contract.conftest import check_invariants
from usecases.bidding import Accepted, OfferDraft
from usecases.context import Deps, Policy, now_ms
from usecases.opening import Opened
from usecases.outcomes import Refusal
from usecases.portal import Portal
from usecases.security import TokenSigner
from usecases.testing import MemoryGuards

SOAK = os.environ.get("IGE_SOAK") == "1"
#: what the runs of a test did (answers by kind): the test asserts every kind came up
SEEN: Counter[str] = Counter()
MAX_OFFERS = 2  # live offers one bank may keep in a round: small, so the cap is reached
BANKS = ("bnk_a", "bnk_b", "bnk_c")
LATEST = "latest"  # a revision of the latest offer accepted (``BookMachine.revise``)
EXPORTER = "usr_x"
UNKNOWN_ROUND = "rnd_unknown0000000000"
BINDING = timedelta(seconds=2)  # short, so some acceptances come too late
LOAN = 500_000_000  # 5,000,000.00 TRY, 24 months, 6 of grace: what every round asks
COMPANY = {"name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
           "sector": "textiles", "contact": {"name": "A", "email": "a@example.com",
                                             "phone": "+905321234567"}}

#: valid terms that vary the ranking key (apr and rate ties, broken by seq), and terms
#: breaking one rule: a zero rate, an amount above the loan, a tenor below the minimum, a grace
#: as long as the tenor, a repayment period the rules do not know, a fee as large as the amount
VALID_TERMS = st.builds(
    lambda r, a, t, g, p, f, c: OfferTerms(r, a, t, g, p, f, c, ""),
    st.sampled_from([300_000, 310_000, 310_000, 350_000]), st.sampled_from([LOAN, 400_000_000]),
    st.sampled_from([24, 12]), st.sampled_from([0, 6]), st.sampled_from([3, 1]),
    st.sampled_from([0, 100_000]), st.booleans())
BREAKS = [{"annual_rate_e4": 0}, {"amount": LOAN + 1}, {"tenor_months": 3},
          {"grace_months": 24}, {"repayment_every_months": 5}, {"upfront_fee": LOAN}]
#: one in four breaks a rule (the simplest draw, which Hypothesis favours, is valid)
TERMS = st.builds(lambda t, i: replace(t, **BREAKS[i % len(BREAKS)]) if i >= 30 else t,
                  VALID_TERMS, st.integers(0, 39))
KEYS = st.sampled_from([None, "k1", "k2"])
#: how long a round lasts: most close during a sequence, some never do
DURATIONS = st.sampled_from([600, 1500, 3_600_000, 3_600_000])


class ModelClock:
    """The model's clock: set by the test before each step (see the module's docstring)."""

    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        return self.now


def draft(t: OfferTerms) -> OfferDraft:
    return OfferDraft({"annual_rate": t.annual_rate_e4, "amount": t.amount,
                       "tenor_months": t.tenor_months, "grace_months": t.grace_months,
                       "repayment_every_months": t.repayment_every_months,
                       "upfront_fee": t.upfront_fee,
                       "assumes_export_commitment": t.assumes_export_commitment,
                       "conditions": t.conditions})


def idem_of(bank: str, key: str | None, method: str, round_id: str, offer_id: str,
            t: OfferTerms) -> tuple[str, str] | None:
    """The book's idempotency pair as the routes make it (``gateway.http.offer_idempotency``):
    the key scoped to the bank, the hash of method, path and body."""
    if key is None:
        return None
    scoped = hashlib.sha256(f"{bank}\0{key}".encode()).hexdigest()[:32]
    path = f"/v1/bank/rounds/{round_id}/offers" + (f"/{offer_id}" if offer_id else "")
    body = hashlib.sha256(f"{method}\0{path}\0{t!r}".encode()).hexdigest()[:32]
    return scoped, body


def answer(out: Accepted | Refusal) -> tuple[Any, ...]:
    """A use case's answer as the two stacks must agree on it."""
    if isinstance(out, Refusal):
        return ("refused", out.code, tuple(sorted((e.field, e.code) for e in out.errors or ())))
    return ("accepted", out.offer, out.rank, out.replayed)


@dataclass
class Stack:
    """One side: the use cases on their adapters and store."""

    deps: Deps
    portal: Portal
    store: Store


class Harness:
    """What a test run shares between its examples: the event loop, the Redis clients, a
    migrated SQLite template (copied for each example: migrating takes longer than a run)."""

    def __init__(self, redis_url: str, channel: str, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.redis_url = redis_url
        self.channel = channel
        self.tmp = tmp
        self.template = tmp / "template.db"
        migrate(f"sqlite:///{self.template}")
        self.redis: Redis = self.run(self._redis())
        self.fast = MuxRedis(redis_url)
        self.ids = itertools.count(1)

    async def _redis(self) -> Redis:
        return Redis.from_url(self.redis_url)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def fresh_db(self) -> str:
        path = self.tmp / f"ex-{uuid.uuid4().hex[:8]}.db"
        shutil.copy(self.template, path)
        return f"sqlite:///{path}"

    def close(self) -> None:
        self.run(self.fast.aclose())
        self.run(self.redis.aclose())
        self.loop.close()


def policy() -> Policy:
    return Policy(calendar=CalendarRules(binding_duration=BINDING),
                  max_offers_per_bank=MAX_OFFERS)


class BookMachine(RuleBasedStateMachine):
    h: Harness  # set by the test

    rounds = Bundle("rounds")
    offers = Bundle("offers")

    def __init__(self) -> None:
        super().__init__()
        h = self.h
        self.clock = ModelClock()
        h.run(h.redis.flushdb())
        sut_store = Store(create_engine(h.fresh_db()))
        model_store = Store(create_engine(h.fresh_db()))
        tokens = TokenSigner("test-secret-key-for-the-state-machine-0123456789")
        sut = Deps(book=RedisBook(h.redis, Channels(h.channel), h.fast), store=sut_store,
                   bus=MemoryBus(), guards=RedisGuards(h.redis),
                   providers=simulated.providers(), tokens=tokens, policy=policy())
        model = Deps(book=MemoryBook(self.clock), store=model_store, bus=MemoryBus(),
                     guards=MemoryGuards(self.clock), providers=simulated.providers(),
                     tokens=tokens, policy=policy(), clock=self.clock)
        self.sut = Stack(sut, Portal(sut), sut_store)
        self.model = Stack(model, Portal(model), model_store)
        self.open: dict[str, RoundTerms] = {}  # every round opened, by id
        self.seqs: dict[str, int] = {}  # the last seq seen of each round
        #: requests sent with an Idempotency-Key, for ``retry``
        self.sent: list[tuple[str, str, str | None, OfferTerms, str]] = []
        self.crashes = 0
        #: the round and bank of each offer accepted
        self.offer_round: dict[str, tuple[str, str]] = {}
        self.closed: set[str] = set()  # rounds the closer closed
        self.closer_ran = False  # the closer ran at least once (whatever it closed)
        self.lost_ok = False  # this step may have lost unpersisted offers (a crash)
        self.t0 = self.t1 = 0

    def teardown(self) -> None:
        h = self.h
        for s in (self.sut, self.model):
            h.run(s.store.engine.dispose())
        h.run(h.redis.flushdb())

    # -- helpers ---------------------------------------------------------------------------
    async def redis_now(self) -> int:
        sec, usec = await self.h.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    def both(self, fn: Any, model_clock: Any) -> tuple[Any, Any]:
        """Run a step on the system under test, bracketed by the Redis clock, then on the
        model at the instant ``model_clock(sut_answer)`` picks (t0, t1 or the answer's own)."""
        h = self.h

        async def go() -> tuple[Any, Any]:
            self.t0 = await self.redis_now()
            got = await fn(self.sut)
            self.t1 = await self.redis_now()
            self.clock.now = model_clock(got)
            return got, await fn(self.model)

        out: tuple[Any, Any] = h.run(go())
        return out

    def bid_clock(self, got: Accepted | Refusal) -> int:
        if isinstance(got, Accepted):
            if got.replayed:
                return self.t0
            assert self.t0 <= got.offer.accepted_at_ms <= self.t1, "accepted outside the step"
            return got.offer.accepted_at_ms
        return self.t1 if got.code in ("round_closed", "not_found") else self.t0

    # -- rules -----------------------------------------------------------------------------
    @initialize()
    def mark_intact(self) -> None:
        async def go() -> None:
            for s in (self.sut, self.model):
                await s.deps.book.mark_intact()
        self.h.run(go())

    @initialize(target=rounds)
    def open_a_long_round(self) -> str:
        return self.open_round(3_600_000)

    @initialize(target=rounds, duration=st.sampled_from([600, 1500]))
    def open_a_short_round(self, duration: int) -> str:
        return self.open_round(duration)

    @precondition(lambda self: len(self.open) < 4)
    @rule(target=rounds, duration=DURATIONS)
    def open_round(self, duration: int) -> str:
        now = self.h.run(self.redis_now())
        rid = f"rnd_{uuid.uuid4().hex[:20]}"
        t = RoundTerms(rid, "TRY", "working_capital", LOAN, 400_000_000, 24, 6, True, now,
                       now + duration)
        labels = label_pool()  # one shuffle, the same for both

        async def go(s: Stack) -> None:
            async with s.store.unit() as tx:
                await tx.rounds.add(t, COMPANY, {"score": 70}, EXPORTER, None, labels)
                await tx.commit()
            await s.portal.opening.go_live(Opened(t, labels))

        self.both(go, lambda _: now)
        self.open[rid] = t
        return rid

    def _bid(self, bank: str, round_id: str, offer_id: str | None, t: OfferTerms,
             key: str | None) -> tuple[Any, Any]:
        n = next(self.h.ids)
        if key is not None:
            self.sent.append((bank, round_id, offer_id, t, key))
        idem = idem_of(bank, key, "PUT" if offer_id else "POST", round_id, offer_id or "", t)

        async def go(s: Stack) -> Accepted | Refusal:
            # the ids the server makes are random: both stacks get the same ones
            usecases.bidding.new_id = lambda prefix: f"{prefix}_{n:06d}"  # type: ignore[assignment]
            usecases.bidding.new_ref = lambda: f"{n:012x}"  # type: ignore[assignment]
            if offer_id is None:
                return await s.portal.bidding.submit(bank, round_id, draft(t), idem)
            return await s.portal.bidding.revise(bank, round_id, offer_id, draft(t), idem)

        got, want = self.both(go, self.bid_clock)
        assert answer(got) == answer(want), (got, want)
        SEEN[("revise " if offer_id else "submit ") + (
            got.code if isinstance(got, Refusal) else "replayed" if got.replayed
            else "accepted")] += 1
        return got, want

    def _submit(self, round_id: str, bank: str, t: OfferTerms, key: str | None) -> str:
        got, _ = self._bid(bank, round_id, None, t, key)
        if not isinstance(got, Accepted):
            return "off_never"
        self.offer_round[got.offer.offer_id] = (round_id, bank)
        return got.offer.offer_id

    @rule(target=offers, round_id=rounds, bank=st.sampled_from(BANKS), t=TERMS, key=KEYS)
    def submit(self, round_id: str, bank: str, t: OfferTerms, key: str | None) -> str:
        return self._submit(round_id, bank, t, key)

    @rule(target=offers, round_id=st.one_of(rounds, rounds, rounds, st.just(UNKNOWN_ROUND)),
          bank=st.sampled_from(BANKS), t=TERMS, key=KEYS)
    def submit_again(self, round_id: str, bank: str, t: OfferTerms, key: str | None) -> str:
        """``submit`` once more (twice as many offers as other steps), some to a round
        nobody opened."""
        return self._submit(round_id, bank, t, key)

    @rule(offer_id=st.one_of(offers, st.just(LATEST)), stranger=st.integers(0, 3),
          elsewhere=st.one_of(st.none(), rounds), t=TERMS, key=KEYS)
    def revise(self, offer_id: str, stranger: int, elsewhere: str | None, t: OfferTerms,
               key: str | None) -> None:
        """Its bank revises an offer (any offer, or half the time the latest one accepted:
        the bundle holds refused ones too), or another bank tries to (one in four); in its
        round or naming another one."""
        if offer_id == LATEST:
            offer_id = next(reversed(self.offer_round), "off_never")
        round_id, owner = self.offer_round.get(offer_id, (UNKNOWN_ROUND, BANKS[0]))
        bank = BANKS[(BANKS.index(owner) + 1) % len(BANKS)] if stranger == 3 else owner
        self._bid(bank, elsewhere or round_id, offer_id, t, key)

    @precondition(lambda self: self.sent)
    @rule(i=st.integers(0, 99), same_body=st.booleans(), t=VALID_TERMS)
    def retry(self, i: int, same_body: bool, t: OfferTerms) -> None:
        """A client sends a request again with its Idempotency-Key: the same body (a replay)
        or another one (a mismatch)."""
        bank, round_id, offer_id, first, key = self.sent[i % len(self.sent)]
        self._bid(bank, round_id, offer_id, first if same_body else t, key)

    @rule(round_id=rounds, then=st.sampled_from(["nothing", "close", "late offer"]),
          t=VALID_TERMS)
    def time_passes(self, round_id: str, then: str, t: OfferTerms) -> None:
        """Until the round's deadline has passed (at most 2 s); then, maybe, the closer, or
        one of its bidders (if any) sends one more offer."""
        wait = self.open[round_id].closes_at_ms - self.h.run(self.redis_now()) + 5
        if 0 < wait <= 2_000:
            self.h.run(asyncio.sleep(wait / 1000))
        if then == "close":
            self.close()
        elif then == "late offer":
            bidders = [b for r, b in self.offer_round.values() if r == round_id]
            self._submit(round_id, bidders[0] if bidders else BANKS[0], t, None)

    @rule(closer=st.booleans())
    def worker(self, closer: bool) -> None:
        """What a worker runs: the persister, or the closer."""
        if closer:
            self.close()
        else:
            self.persist()

    def persist(self) -> None:
        async def go(s: Stack) -> Any:
            return await s.portal.durability.persist_dirty(list(range(64)), {})

        got, want = self.both(go, lambda _: self.t0)
        assert got == want

    def close(self) -> None:
        """The closer, as a worker runs it: put overdue rounds back on the deadline index,
        then close the due ones. Rounds whose deadline fell inside the step may close on one
        side only: the model closes those the Redis book closed at ``t1``."""
        self.closer_ran = True
        async def go(s: Stack) -> set[str]:
            await s.portal.durability.requeue_overdue()
            return {c.round_id for c in await s.portal.closing.close_batch(100)}

        got, want = self.both(go, lambda _: self.t0)
        assert want <= got, f"the model closed {want - got} the Redis book did not"
        late = got - want
        assert all(self.t0 < self.open[rid].closes_at_ms <= self.t1 for rid in late), late
        SEEN["closed"] += len(got)
        self.closed |= got
        SEEN["closed only by Redis within the step"] += len(late)
        self.clock.now = self.t1
        for rid in late:
            self.h.run(self.model.portal.closing.finalize(rid))

    # the precondition is that the closer ran, not which rounds it closed: that depends on
    # real time, and a precondition that does made Hypothesis see one sequence of choices
    # enable other rules from one run to the next (FlakyStrategyDefinition, make soak under
    # load); with nothing closed yet, the exporter names an offer of no closed round and both
    # answer not_found
    @precondition(lambda self: self.closer_ran)
    @rule(i=st.integers(0, 99), elsewhere=st.one_of(st.none(), rounds))
    def accept(self, i: int, elsewhere: str | None) -> None:
        """The exporter accepts an offer of a closed round (or names another round)."""
        choice = [(o, r) for o, (r, _) in self.offer_round.items() if r in self.closed]
        offer_id, round_id = choice[i % len(choice)] if choice else ("off_never", UNKNOWN_ROUND)
        round_id = elsewhere or round_id
        async def go(s: Stack) -> str | None:
            return await s.portal.results.accept_in(round_id, offer_id, EXPORTER)

        got, want = self.both(go, lambda code: self.t1 if code == "binding_expired"
                              else self.t0)
        assert got == want
        SEEN[f"accept {got or 'done'}"] += 1

    @precondition(lambda self: self.crashes < 2)
    @rule(persisted_first=st.booleans(), rebuild_now=st.booleans())
    def redis_loses_its_data(self, persisted_first: bool, rebuild_now: bool) -> None:
        """FLUSHDB of the test's database (the model's book is replaced by an empty one);
        the rebuild from SQL at once (the persister lease holder's ``ensure_book``) or later
        (the next command that finds its round gone restores it)."""
        self.crashes += 1
        if persisted_first:
            self.persist()
        else:
            self.lost_ok = True

        async def go(s: Stack) -> int:
            if s is self.sut:
                await self.h.redis.flushdb()
            else:
                s.deps.book = MemoryBook(self.clock)
            return await s.portal.durability.ensure_book() if rebuild_now else 0

        got, want = self.both(go, lambda _: self.t0)
        assert got == want
        SEEN[f"crash (persisted first: {persisted_first}, rebuilt at once: {rebuild_now})"] += 1
        SEEN["rounds rebuilt by ensure_book"] += got

    # -- what both must agree on after every step -----------------------------------------
    async def seen(self, s: Stack) -> dict[str, Any]:
        """Everything a step must leave the same on both sides."""
        out: dict[str, Any] = {}
        for rid in self.open:
            for bank in BANKS:
                b = await s.portal.bidding.book(bank, rid)
                out[rid, bank, "book"] = (b.code if isinstance(b, Refusal)
                                          else book_for(b.view, bank, "-"))
            async with s.store.read() as q:
                row = await q.rounds.get(rid)
                assert row is not None
            for bank in BANKS if row.state != "open" else ():  # results: after the close
                r = await s.portal.bidding.result(bank, rid)
                out[rid, bank, "result"] = r.code if isinstance(r, Refusal) else (
                    r.round.state, r.closing.final_seq, r.closing.binding_until,
                    r.acceptance and r.acceptance.offer_id, r.mine)
            async with s.store.read() as q:
                closing = await q.rounds.closing(rid)
                out[rid, "sql"] = (row.state, row.persisted_seq, row.binding_until,
                                   await q.offers.of_round(rid), await q.rounds.binding(rid),
                                   closing and (closing.final_seq, closing.binding_until),
                                   (a := await q.rounds.acceptance(rid)) and a.offer_id)
            out[rid, "seq"] = (await s.deps.book.seqs([rid]))[0]
        return out

    @invariant()
    def both_agree(self) -> None:
        if not self.open:
            return
        got, want = self.h.run(self.seen(self.sut)), self.h.run(self.seen(self.model))
        for k in got:
            assert got[k] == want[k], (k, got[k], want[k])

    @invariant()
    def the_redis_book_holds_its_invariants(self) -> None:
        async def go() -> None:
            book = self.sut.deps.book
            assert isinstance(book, RedisBook)
            for rid in self.open:
                await check_invariants(book, rid)
                await check_invariants(self.model.deps.book, rid)
                view = await book.view(rid)
                if view is None:
                    continue
                # the live offers counted per bank for the cap are the book's, within the cap
                per_bank = Counter(o.bank_id for o in view.offers)
                assert all(n <= MAX_OFFERS for n in per_bank.values()), per_bank
                meta = {k.decode(): v.decode() for k, v in
                        (await self.h.redis.hgetall(round_keys(rid).meta)).items()}
                assert {k[2:]: int(v) for k, v in meta.items() if k.startswith("n:")} \
                    == dict(per_bank)
                # seqs never go back, but where a crash lost what SQL did not hold yet
                if not self.lost_ok:
                    assert view.seq >= self.seqs.get(rid, 0), (rid, view.seq, self.seqs)
                self.seqs[rid] = view.seq
                # a bank's view names no other bank and no other bank's offer
                for bank in BANKS:
                    seen = json.dumps(book_for(await book.view(rid, bank), bank, "-"))
                    for o in view.offers:
                        if o.bank_id != bank:
                            assert o.bank_id not in seen and o.offer_id not in seen
            self.lost_ok = False

        self.h.run(go())


@pytest.fixture
def harness(redis_url: str, channel: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(redis_url, channel, tmp_path)
    try:
        yield h
    finally:
        h.close()


def test_the_redis_engine_answers_as_the_reference_model_step_by_step(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # the rules patch the ids the bid path makes: undone after the test
    monkeypatch.setattr(usecases.bidding, "new_id", usecases.bidding.new_id)
    monkeypatch.setattr(usecases.bidding, "new_ref", usecases.bidding.new_ref)
    machine = type("Machine", (BookMachine,), {"h": harness})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=150 if SOAK else 45, stateful_step_count=50 if SOAK else 25,
        deadline=None, derandomize=not SOAK, print_blob=True,
        suppress_health_check=list(HealthCheck)))
    print("\nwhat the runs did:", dict(sorted(SEEN.items())))
    # the random sequences reached the main kinds of answer (the scripted sequence below
    # reaches every one, whatever the timing)
    for kind in ("submit accepted", "submit validation_failed", "submit not_found",
                 "revise accepted", "closed"):
        assert SEEN[kind], f"no step gave {kind!r}: {dict(SEEN)}"
    assert sum(n for k, n in SEEN.items() if k.startswith("crash")) > 0


def test_a_scripted_sequence_reaches_every_answer_and_both_agree_at_each_step(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's steps in a fixed order that reaches every answer the comparison is
    about (Hypothesis' random sequences reach them only some of the time), with both
    invariants after each step."""
    monkeypatch.setattr(usecases.bidding, "new_id", usecases.bidding.new_id)
    monkeypatch.setattr(usecases.bidding, "new_ref", usecases.bidding.new_ref)
    SEEN.clear()
    m = type("Machine", (BookMachine,), {"h": harness})()
    valid = OfferTerms(310_000, LOAN, 24, 6, 3, 0, True, "")
    other = replace(valid, annual_rate_e4=300_000)

    def step(run: Any) -> Any:
        out = run()
        m.both_agree()
        m.the_redis_book_holds_its_invariants()
        return out

    try:
        step(m.mark_intact)
        long = step(lambda: m.open_round(3_600_000))
        short = step(lambda: m.open_round(1_500))
        first = step(lambda: m.submit(short, "bnk_a", valid, "k1"))
        step(lambda: m.retry(0, True, valid))  # a replay
        step(lambda: m.retry(0, False, other))  # a mismatch
        step(lambda: m.submit(short, "bnk_a", other, None))
        step(lambda: m.submit(short, "bnk_a", other, None))  # a third live offer: the cap
        step(lambda: m.submit(short, "bnk_b", replace(valid, tenor_months=3), None))
        step(lambda: m.revise(first, 0, None, other, "k2"))
        step(lambda: m.revise(first, 3, None, valid, None))  # another bank's offer
        step(lambda: m.submit(long, "bnk_c", valid, None))
        step(lambda: m.redis_loses_its_data(True, False))  # lazily rebuilt
        step(lambda: m.time_passes(short, "late offer", valid))  # its bidder: round_closed
        step(lambda: m.submit(short, "bnk_c", valid, None))  # never bid: not_found
        step(lambda: m.time_passes(short, "close", valid))
        step(lambda: m.accept(0, None))
        step(lambda: m.accept(0, None))  # one acceptance per round
        step(lambda: m.submit(long, "bnk_c", other, None))
        step(lambda: m.redis_loses_its_data(False, True))  # loses what SQL did not hold
        step(lambda: m.submit(long, "bnk_c", other, None))
    finally:
        m.teardown()
    print("\nwhat the sequence did:", dict(sorted(SEEN.items())))
    for kind in ("submit accepted", "submit replayed", "submit validation_failed",
                 "submit offer_limit", "submit idempotency_mismatch", "submit round_closed",
                 "submit not_found", "revise accepted", "revise not_found", "closed",
                 "accept done", "accept already_accepted"):
        assert SEEN[kind], f"no step gave {kind!r}: {dict(SEEN)}"
