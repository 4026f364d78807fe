"""The operator's console on the use cases alone (memory book, guards and bus, a real SQLite
file): operators created with a one-time code, activated in two steps and signed in by the rule
of every person here (replay, lock, no activation twice); the rounds counted and listed by state;
a round's unmasked history with its live, then final, ranks; the audit's filters and pages; the
applications newest first; a secret shown once."""

from __future__ import annotations

import pyotp

from persistence.operators import AuditFilter
from persistence.records import RoundRecord
from tests.unit.test_desk_usecases import PASSWORD, clock, desk_template_db, portal
from tests.unit.test_usecases import INTAKE, MINUTE, Clock, offer
from usecases.accounts import MAX_LOGIN_FAILURES, Registered
from usecases.bidding import Accepted
from usecases.operators import OPERATOR_ACTIVATION_S, NewOperator
from usecases.outcomes import Refusal
from usecases.portal import Portal

__all__ = ["clock", "desk_template_db", "portal"]  # the fixtures, shared


async def _operator(portal: Portal, clock: Clock, email: str = "olcay@kgf.example"
                    ) -> tuple[NewOperator, pyotp.TOTP]:
    made = await portal.operators.create(email, "Olcay Operatör", "admin")
    assert isinstance(made, NewOperator)
    started = await portal.operators.start_activation(email, made.activation_code, PASSWORD)
    assert isinstance(started, Registered)
    totp = pyotp.TOTP(pyotp.parse_uri(started.totp_uri).secret)
    done = await portal.operators.finish_activation(email, made.activation_code,
                                                    totp.at(clock.now / 1000))
    assert done == made.user.id
    clock.now += MINUTE
    return made, totp


async def test_an_operator_activates_in_two_steps_and_signs_in_by_the_common_rule(
        portal: Portal, clock: Clock) -> None:
    made = await portal.operators.create("Olcay@KGF.example", "Olcay Operatör", "admin")
    assert isinstance(made, NewOperator)
    assert made.user.email == "olcay@kgf.example" and not made.user.active
    assert made.user.activation_hash != made.activation_code  # a hash, not the code
    assert made.user.activation_until == clock.now + OPERATOR_ACTIVATION_S * 1000
    again = await portal.operators.create("olcay@kgf.example", "Another", "admin")
    assert isinstance(again, Refusal) and again.code == "conflict"
    # not before activation; a wrong activation code is refused
    wrong = await portal.operators.start_activation("olcay@kgf.example", "nope", PASSWORD)
    assert isinstance(wrong, Refusal) and wrong.code == "unauthorized"
    started = await portal.operators.start_activation("olcay@kgf.example",
                                                      made.activation_code, PASSWORD)
    assert isinstance(started, Registered)
    totp = pyotp.TOTP(pyotp.parse_uri(started.totp_uri).secret)
    not_yet = await portal.operators.login("olcay@kgf.example", PASSWORD,
                                           totp.at(clock.now / 1000))
    assert isinstance(not_yet, Refusal) and not_yet.code == "not_activated"
    bad = await portal.operators.finish_activation("olcay@kgf.example", made.activation_code,
                                                   "000000")
    assert isinstance(bad, Refusal) and bad.code == "totp_invalid"
    assert await portal.operators.finish_activation(
        "olcay@kgf.example", made.activation_code, totp.at(clock.now / 1000)) == made.user.id
    # the activation code is spent
    twice = await portal.operators.start_activation("olcay@kgf.example",
                                                    made.activation_code, PASSWORD)
    assert isinstance(twice, Refusal)
    clock.now += MINUTE
    code = totp.at(clock.now / 1000)
    user = await portal.operators.login("olcay@kgf.example", PASSWORD, code)
    assert not isinstance(user, Refusal) and user.id == made.user.id
    replay = await portal.operators.login("olcay@kgf.example", PASSWORD, code)
    assert isinstance(replay, Refusal) and replay.code == "totp_reused"
    async with portal.deps.store.read() as q:
        actions = [(a.actor, a.action) for a in await q.console.audit(AuditFilter(), 100)]
    assert ("admin", "operator_created") in actions
    assert (f"operator:{made.user.id}", "operator_activated") in actions


async def test_an_operators_account_locks_after_five_failures_by_the_authenticators_holder(
        portal: Portal, clock: Clock) -> None:
    made, totp = await _operator(portal, clock)
    for _ in range(MAX_LOGIN_FAILURES):
        clock.now += MINUTE
        wrong = await portal.operators.login(made.user.email, "wrong password!!",
                                             totp.at(clock.now / 1000))
        assert isinstance(wrong, Refusal) and wrong.code == "unauthorized"
    clock.now += MINUTE
    locked = await portal.operators.login(made.user.email, PASSWORD, totp.at(clock.now / 1000))
    assert isinstance(locked, Refusal) and locked.code == "locked"
    # a desk user's login is not an operator's: the accounts are apart
    desk = await portal.accounts.desk_login(made.user.email, PASSWORD,
                                            totp.at(clock.now / 1000 + 30))
    assert isinstance(desk, Refusal) and desk.code == "unauthorized"


async def _round(portal: Portal, name: str) -> RoundRecord:
    rnd = await portal.operator.intake({**INTAKE, "company": {**INTAKE["company"],
                                                              "name": name}}, [], "admin")
    assert isinstance(rnd, RoundRecord)
    return rnd


async def test_rounds_are_counted_and_listed_by_state_the_latest_deadline_first(
        portal: Portal, clock: Clock) -> None:
    assert await portal.console.counts() == {"open": 0, "closed": 0, "accepted": 0,
                                             "lapsed": 0}
    early = await _round(portal, "Erken A.Ş.")
    clock.now += MINUTE
    late = [await _round(portal, f"Geç {i} A.Ş.") for i in range(3)]
    clock.now = early.closes_at  # the first round is due, the others not
    assert await portal.closing.close_due(10) == 1
    assert await portal.console.counts() == {"open": 3, "closed": 1, "accepted": 0,
                                             "lapsed": 0}
    first = await portal.console.rounds("open", limit=2)
    newest = sorted(late, key=lambda r: (r.closes_at, r.id), reverse=True)
    assert [r.id for r in first.rows] == [r.id for r in newest[:2]]
    assert first.next is not None
    rest = await portal.console.rounds("open", first.next, limit=2)
    assert rest.next is None
    assert {r.id for r in first.rows + rest.rows} == {r.id for r in late}
    assert [r.id for r in (await portal.console.rounds("closed")).rows] == [early.id]
    assert (await portal.console.rounds("accepted")).rows == []


async def test_a_rounds_history_names_every_bank_and_version_with_live_then_final_ranks(
        portal: Portal, clock: Clock) -> None:
    a = await portal.accounts.create_bank("HISTA", "Alfa Bankası", "admin")
    b = await portal.accounts.create_bank("HISTB", "Beta Bankası", "admin")
    assert a is not None and b is not None
    rnd = await _round(portal, "Tarih A.Ş.")
    first = await portal.bidding.submit(a.bank_id, rnd.id, offer("39.00"), None)
    other = await portal.bidding.submit(b.bank_id, rnd.id, offer("38.75"), None)
    assert isinstance(first, Accepted) and isinstance(other, Accepted)
    revised = await portal.bidding.revise(a.bank_id, rnd.id, first.offer.offer_id,
                                          offer("38.25"), None)
    assert isinstance(revised, Accepted)
    await portal.durability.persist_round(rnd.id)
    h = await portal.console.history(rnd.id)
    assert not isinstance(h, Refusal)
    assert not h.final and h.closing is None
    assert h.offers == [first.offer.offer_id, other.offer.offer_id]  # the live book's order
    assert h.ranks == {first.offer.offer_id: 1, other.offer.offer_id: 2}
    assert h.banks == {a.bank_id: ("HISTA", "Alfa Bankası"), b.bank_id: ("HISTB", "Beta Bankası")}
    assert [(v.version, v.seq) for v in h.of_offer(first.offer.offer_id)] == [(1, 1), (2, 3)]
    assert [e.action for e in h.events if e.action.startswith("offer_")] == \
        ["offer_submitted", "offer_submitted", "offer_revised"]
    clock.now = rnd.closes_at
    assert await portal.closing.close_due(10) == 1
    h = await portal.console.history(rnd.id)
    assert not isinstance(h, Refusal)
    assert h.final and h.closing is not None and h.closing.reference_number
    assert h.ranks == {first.offer.offer_id: 1, other.offer.offer_id: 2}
    assert "round_closed" in [e.action for e in h.events]
    unknown = await portal.console.history("rnd_nobody")
    assert isinstance(unknown, Refusal) and unknown.code == "not_found"


async def test_the_audit_is_filtered_by_round_actor_action_and_time_newest_first_in_pages(
        portal: Portal, clock: Clock) -> None:
    r1 = await _round(portal, "Bir A.Ş.")
    t1 = clock.now
    clock.now += 10 * MINUTE
    r2 = await _round(portal, "İki A.Ş.")
    bank = await portal.accounts.create_bank("AUDB", "Denetim Bankası", "operator:opr_1")
    assert bank is not None
    everything = (await portal.console.audit(AuditFilter())).rows
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    assert {e.round_id for e in (await portal.console.audit(AuditFilter(round_id=r1.id))).rows
            } == {r1.id}
    mine = (await portal.console.audit(AuditFilter(actor="operator:opr_1"))).rows
    assert [e.action for e in mine] == ["bank_created"]
    opened = (await portal.console.audit(AuditFilter(action="round_opened"))).rows
    assert [e.round_id for e in opened] == [r2.id, r1.id]
    early = (await portal.console.audit(AuditFilter(action="round_opened", until=t1 + 1))).rows
    assert [e.round_id for e in early] == [r1.id]
    later = (await portal.console.audit(AuditFilter(action="round_opened", since=t1 + 1))).rows
    assert [e.round_id for e in later] == [r2.id]
    page1 = await portal.console.audit(AuditFilter(), limit=2)
    assert page1.next is not None
    page2 = await portal.console.audit(AuditFilter(), int(page1.next), limit=2)
    assert [e.id for e in page1.rows + page2.rows] == [e.id for e in everything[:4]]
    # the API's order: oldest first after an id, with the same filters
    api = await portal.operator.audit(None, 0, AuditFilter(action="round_opened"))
    assert [e.round_id for e in api] == [r1.id, r2.id]


async def test_applications_are_listed_newest_first_in_pages(portal: Portal,
                                                            clock: Clock) -> None:
    rounds = []
    for i in range(3):
        rounds.append(await _round(portal, f"Başvuru {i} A.Ş."))
        clock.now += MINUTE
    page1 = await portal.console.applications(limit=2)
    assert [a.round_id for a in page1.rows] == [rounds[2].id, rounds[1].id]
    assert page1.next is not None
    page2 = await portal.console.applications(page1.next, limit=2)
    assert [a.round_id for a in page2.rows] == [rounds[0].id] and page2.next is None


async def test_a_secret_kept_for_a_session_is_handed_over_once_and_to_it_only(
        portal: Portal) -> None:
    token = await portal.once.keep("session-a", {"client_secret": "s3cret"})
    assert await portal.once.take("session-b", token) is None
    assert await portal.once.take("session-a", token) == {"client_secret": "s3cret"}
    assert await portal.once.take("session-a", token) is None
