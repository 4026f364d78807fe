"""The use cases on the reference book: ``MemoryBook``, memory guards and bus, one controllable
clock for all of them, and a real SQLite file for SQL (an embedded database, no service).
No HTTP and no Redis: what a round goes through, from the operator's intake or an approved
application to the exporter's acceptance, decided by the use cases alone."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from applications.model import ApplicationRequest
from applications.simulated import STD_REQUEST
from auction.book import MemoryBook
from auction.bus import MemoryBus, RoundFinalized, RoundOpened
from auction.calendar import CalendarRules
from auction.model import RoundState, money_to_minor
from auction.rules import FieldError
from persistence.db import migrate
from persistence.reference import is_valid_reference
from persistence.store import Store
from usecases.accounts import MAX_LOGIN_FAILURES, NewExporter, Registered, Token
from usecases.applying import ApplicationDraft, ApplicationState, CompanyState
from usecases.bidding import Accepted, BookSeen, OfferDraft
from usecases.context import Policy
from usecases.outcomes import Refusal
from usecases.portal import Portal
from usecases.results import ExporterResults
from usecases.security import Principal
from usecases.testing import MemoryGuards, memory_deps

T0 = 1_776_700_000_000  # 2026-04-20T15:46:40Z
MINUTE = 60_000
ROUND = timedelta(hours=1)
BINDING = timedelta(hours=2)
COMPANY = {"name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
           "sector": "textiles", "contact": {}}
INTAKE: dict[str, Any] = dict(
    company=COMPANY, loan_type="working_capital", currency="TRY", loan_amount=500_000_000,
    guarantee_amount=400_000_000, tenor_months=24, grace_months=6, export_commitment=True,
    exporter_user_id=None, assessment=None)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("usecases") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def portal(template_db: Path, tmp_path: Path, clock: Clock) -> AsyncIterator[Portal]:
    db = tmp_path / "ige.db"
    shutil.copy(template_db, db)
    store = Store.from_url(f"sqlite:///{db}")
    policy = Policy(calendar=CalendarRules(round_duration=ROUND, binding_duration=BINDING))
    yield Portal(memory_deps(store, clock, policy))
    await store.aclose()


def offer(rate: str = "38.50", **changes: Any) -> OfferDraft:
    values: dict[str, Any] = dict(
        annual_rate=int(float(rate) * 10_000), amount=500_000_000, tenor_months=24,
        grace_months=6, repayment_every_months=3, upfront_fee=0,
        assumes_export_commitment=True, conditions="")
    values.update(changes)
    return OfferDraft(values)


async def intake(portal: Portal, **changes: Any) -> str:
    row = await portal.operator.intake({**INTAKE, **changes}, [], "admin")
    assert not isinstance(row, Refusal), row
    return row.id


async def bid(portal: Portal, bank: str, rid: str, rate: str = "38.50") -> Accepted:
    got = await portal.bidding.submit(bank, rid, offer(rate), None)
    assert isinstance(got, Accepted), got
    return got


# ----------------------------------------------------------------------------- the round
async def an_exporter(portal: Portal, email: str = "exp@example.com") -> str:
    reg = await portal.accounts.register(NewExporter(
        email, "Ayşe Yılmaz", "10000000146", "+905321234567", "correct horse"), activated=True)
    assert isinstance(reg, Registered)
    return reg.user_id


async def test_a_round_takes_offers_closes_once_by_the_books_clock_and_binds_the_best(
        portal: Portal, clock: Clock) -> None:
    rid = await intake(portal, exporter_user_id=await an_exporter(portal))
    a1 = await bid(portal, "bnk_a", rid, "38.50")
    b1 = await bid(portal, "bnk_b", rid, "37.00")
    assert (a1.rank, b1.rank) == (1, 1)  # b took the lead
    revised = await portal.bidding.revise("bnk_a", rid, a1.offer.offer_id, offer("36.00"), None)
    assert isinstance(revised, Accepted) and (revised.rank, revised.offer.version) == (1, 2)

    clock.now += ROUND // timedelta(milliseconds=1) - 1
    assert await portal.closing.close_due(10) == 0  # one millisecond early: not due
    clock.now += 1
    late = await portal.bidding.submit("bnk_a", rid, offer("30.00"), None)
    assert isinstance(late, Refusal) and late.code == "round_closed"
    # a bank that never bid: the finished round does not exist for it (issue #10, finding 8)
    stranger = await portal.bidding.submit("bnk_c", rid, offer("30.00"), None)
    assert isinstance(stranger, Refusal) and stranger.code == "not_found"
    assert await portal.closing.close_due(10) == 1
    assert await portal.closing.close_due(10) == 0  # exactly once

    bus = portal.deps.bus
    assert isinstance(bus, MemoryBus)
    assert bus.announced == [RoundOpened(rid), RoundFinalized(rid)]
    result = await portal.bidding.result("bnk_b", rid)
    assert not isinstance(result, Refusal)
    assert is_valid_reference(result.closing.reference_number)
    assert [(rank, v.offer_id) for rank, v in result.mine] == [(2, b1.offer.offer_id)]
    assert result.closing.binding_until == T0 + (ROUND + BINDING) // timedelta(milliseconds=1)


async def test_an_intake_is_an_application_of_its_exporter_decided_by_the_operator(
        portal: Portal) -> None:
    """Once only a round: the exporter's list was empty and the operator's view 404."""
    user = await an_exporter(portal)
    rid = await intake(portal, exporter_user_id=user, assessment={"score": 72, "band": "B"})
    listed = await portal.applying.applications(Principal("exporter", user))
    assert [(s.application.status, s.round.id if s.round else None) for s in listed] == [
        ("approved", rid)]
    app = listed[0].application
    assert app.decision["decided_by"] == "operator" and app.decision["actor"] == "admin"
    assert [r["code"] for r in app.decision["reasons"]] == ["operator_intake"]
    assert (app.score, app.band, app.user_id, app.tax_id) == (72, "B", user, "1234567890")
    assert app.guarantee_tl == INTAKE["guarantee_amount"]  # TRY: 1 TL per TL
    seen = await portal.applying.application(app.id)  # the operator's view
    assert seen is not None and seen.round is not None and seen.round.id == rid
    # without an exporter it is an application all the same, of nobody's list
    other = await intake(portal)
    async with portal.deps.store.read() as q:
        row = await q.applications.of_round(other)
    assert row is not None and row.user_id is None and row.score is None
    nobody = await portal.operator.intake({**INTAKE, "exporter_user_id": "usr_nobody"}, [],
                                          "admin")
    assert isinstance(nobody, Refusal)
    assert [(e.field, e.code) for e in nobody.errors or []] == [
        ("exporter_user_id", "unknown_exporter")]


async def test_a_bank_sees_the_book_from_its_first_offer_on_and_never_a_round_it_skipped(
        portal: Portal, clock: Clock) -> None:
    rid = await intake(portal)
    before = await portal.bidding.book("bnk_a", rid)
    assert isinstance(before, Refusal) and before.code == "offer_required"
    await bid(portal, "bnk_a", rid)
    seen = await portal.bidding.book("bnk_a", rid)
    assert isinstance(seen, BookSeen) and seen.view.viewer_label is not None
    assert seen.server_time_ms == clock.now
    clock.now += ROUND // timedelta(milliseconds=1)
    await portal.closing.close_due(10)
    skipped = await portal.bidding.book("bnk_b", rid)
    assert isinstance(skipped, Refusal) and skipped.code == "not_found"
    gone = await portal.bidding.round("bnk_b", rid)
    assert isinstance(gone, Refusal) and gone.code == "not_found"
    assert not isinstance(await portal.bidding.round("bnk_a", rid), Refusal)


async def test_every_bad_field_and_every_broken_rule_is_one_refusal(portal: Portal) -> None:
    rid = await intake(portal)
    got = await portal.bidding.submit("bnk_a", rid, offer(
        tenor_months=61, grace_months=13, amount=500_000_001, currency="USD"), None)
    assert isinstance(got, Refusal) and got.code == "validation_failed"
    assert {(e.field, e.code) for e in got.errors or []} == {
        ("currency", "currency_mismatch"), ("amount", "above_requested"),
        ("tenor_months", "above_maximum"), ("grace_months", "above_maximum")}
    assert (await portal.deps.book.view(rid)) is not None
    assert (await portal.deps.book.seqs([rid])) == [0]  # nothing reached the book


async def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_body(
        portal: Portal) -> None:
    rid = await intake(portal)
    first = await portal.bidding.submit("bnk_a", rid, offer("38.50"), ("k1", "h1"))
    again = await portal.bidding.submit("bnk_a", rid, offer("38.50"), ("k1", "h1"))
    other = await portal.bidding.submit("bnk_a", rid, offer("39.00"), ("k1", "h2"))
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert again.offer == first.offer
    assert (first.replayed, again.replayed) == (False, True)  # ige_offers_total's "replayed"
    assert isinstance(other, Refusal) and other.code == "idempotency_mismatch"


async def test_a_book_that_lost_its_data_is_rebuilt_from_sql_and_bidding_goes_on(
        portal: Portal) -> None:
    rid = await intake(portal)
    a = await bid(portal, "bnk_a", rid, "38.50")
    await bid(portal, "bnk_b", rid, "37.00")
    assert await portal.durability.persist_round(rid) == 2
    before = await portal.deps.book.view(rid, "bnk_a")
    portal.deps.book = MemoryBook(portal.deps.clock)  # the book lost everything
    assert await portal.durability.ensure_book() == 1
    after = await portal.deps.book.view(rid, "bnk_a")
    assert after is not None and before is not None
    assert replace(after, epoch=before.epoch) == before
    assert after.epoch != before.epoch  # a rebuilt round is a new epoch (gateway/snapshots.py)
    more = await portal.bidding.revise("bnk_a", rid, a.offer.offer_id, offer("36.00"), None)
    assert isinstance(more, Accepted) and (more.offer.seq, more.offer.label) == (3, a.offer.label)


async def test_what_the_persister_wrote_and_how_far_sql_was_behind_the_book(
        portal: Portal, clock: Clock) -> None:
    """The numbers behind ige_persister_lag_* and the persisted line: a catch-up pass reports
    the events it found missing from SQL and the age of the oldest, before writing them."""
    rid = await intake(portal)
    await bid(portal, "bnk_a", rid, "38.50")
    clock.now += 1_500
    await bid(portal, "bnk_b", rid, "37.00")
    clock.now += 500
    got = await portal.durability.catch_up({})
    assert (got.lag_events, got.lag_ms) == (2, 2_000)
    assert (got.written.rounds, got.written.events, got.known) == (1, 2, {rid: 2})
    again = await portal.durability.catch_up(got.known)
    assert (again.lag_events, again.lag_ms, again.written.events) == (0, 0, 0)

    await bid(portal, "bnk_a", rid, "36.00")
    known = dict(again.known)
    wrote = await portal.durability.persist_dirty(list(range(64)), known)
    assert (wrote.rounds, wrote.events, known[rid]) == (1, 1, 3)
    nothing = await portal.durability.persist_dirty(list(range(64)), known)
    assert (nothing.rounds, nothing.events) == (0, 0)


async def test_close_batch_reports_the_closing_records_it_wrote_and_their_lag(
        portal: Portal, clock: Clock) -> None:
    rid = await intake(portal)
    await bid(portal, "bnk_a", rid, "38.50")
    clock.now += ROUND // timedelta(milliseconds=1) + 1_234  # the closer comes 1.234 s late
    closed = await portal.closing.close_batch(10)
    assert [(c.round_id, c.lag_ms) for c in closed] == [(rid, 1_234)]
    assert closed[0].reference_number is not None
    assert is_valid_reference(closed[0].reference_number)
    assert await portal.closing.close_batch(10) == []  # exactly once


# ----------------------------------------------------------------------------- accounts
async def test_an_exporter_activates_with_a_first_code_and_a_code_is_never_used_twice(
        portal: Portal, clock: Clock) -> None:
    reg = await portal.accounts.register(NewExporter(
        "ayse@example.com", "Ayşe Yılmaz", "10000000146", "+905321234567", "correct horse"))
    assert isinstance(reg, Registered)
    totp = pyotp.TOTP(pyotp.parse_uri(reg.totp_uri).secret)
    code = totp.at(clock.now / 1000)
    inactive = await portal.accounts.login("ayse@example.com", "correct horse",
                                           totp.at(clock.now / 1000 + 30))
    assert isinstance(inactive, Refusal) and inactive.code == "not_activated"
    assert await portal.accounts.activate("ayse@example.com", code) == reg.user_id
    replay = await portal.accounts.activate("ayse@example.com", code)
    assert isinstance(replay, Refusal) and replay.code == "totp_reused"
    clock.now += 60_000
    token = await portal.accounts.login("AYSE@example.com", "correct horse",
                                        totp.at(clock.now / 1000))
    assert isinstance(token, Token)
    assert portal.deps.tokens.verify(token.access_token) == Principal("exporter", reg.user_id)


@pytest.mark.parametrize("password", [None, "", 12345, ["correct horse"]],
                         ids=["null", "empty", "number", "list"])
async def test_a_login_without_a_string_password_is_a_wrong_password(
        portal: Portal, clock: Clock, password: Any) -> None:
    """A null password once skipped the password check: only the one-time code was asked."""
    reg = await portal.accounts.register(NewExporter(
        "nopass@example.com", "Ayşe Yılmaz", "10000000146", "+905321234567", "correct horse"))
    assert isinstance(reg, Registered)
    totp = pyotp.TOTP(pyotp.parse_uri(reg.totp_uri).secret)
    assert await portal.accounts.activate("nopass@example.com", totp.at(clock.now / 1000)) \
        == reg.user_id
    clock.now += 60_000
    got = await portal.accounts.login("nopass@example.com", password, totp.at(clock.now / 1000))
    assert isinstance(got, Refusal) and got.code == "unauthorized"


async def test_five_failures_with_the_accounts_own_fresh_codes_lock_it(portal: Portal,
                                                                       clock: Clock) -> None:
    """Only the holder of the authenticator (a right, fresh code) with a wrong password counts
    towards the lock; the answers never say how many attempts are left."""
    reg = await portal.accounts.register(NewExporter(
        "mehmet@example.com", "Mehmet Demir", "10000000146", "+905321234567", "correct horse"))
    assert isinstance(reg, Registered)
    totp = pyotp.TOTP(pyotp.parse_uri(reg.totp_uri).secret)
    answers = []
    for _ in range(6):
        clock.now += 30_000  # a fresh code each time
        answers.append(await portal.accounts.login("mehmet@example.com", "wrong password!",
                                                   totp.at(clock.now / 1000)))
    assert [a.code for a in answers if isinstance(a, Refusal)] == ["unauthorized"] * 6
    assert all("left" not in a.detail for a in answers if isinstance(a, Refusal))
    clock.now += 30_000
    right = await portal.accounts.login("mehmet@example.com", "correct horse",
                                        totp.at(clock.now / 1000))
    assert isinstance(right, Refusal) and right.code == "locked"


async def test_failures_without_the_authenticator_never_lock_the_owner_out(
        portal: Portal, clock: Clock) -> None:
    """Issue #10 finding 5: five wrong logins by anyone locked the account."""
    reg = await portal.accounts.register(NewExporter(
        "owner@example.com", "Mehmet Demir", "10000000146", "+905321234567", "correct horse"))
    assert isinstance(reg, Registered)
    totp = pyotp.TOTP(pyotp.parse_uri(reg.totp_uri).secret)
    assert await portal.accounts.activate("owner@example.com", totp.at(clock.now / 1000)) \
        == reg.user_id
    for _ in range(20):  # an attacker who knows the e-mail, not the authenticator
        got = await portal.accounts.login("owner@example.com", "guess", "000000")
        assert isinstance(got, Refusal) and got.code == "unauthorized"
    clock.now += 60_000
    token = await portal.accounts.login("owner@example.com", "correct horse",
                                        totp.at(clock.now / 1000))
    assert isinstance(token, Token)


async def test_an_unknown_email_and_a_known_one_get_the_same_answer(portal: Portal) -> None:
    reg = await portal.accounts.register(NewExporter(
        "known@example.com", "Ayşe Yılmaz", "10000000146", "+905321234567", "correct horse"))
    assert isinstance(reg, Registered)
    a = await portal.accounts.login("known@example.com", "wrong password!", "000000")
    b = await portal.accounts.login("unknown@example.com", "wrong password!", "000000")
    c = await portal.accounts.activate("unknown@example.com", "000000")
    d = await portal.accounts.activate("known@example.com", "000000")
    assert isinstance(a, Refusal) and isinstance(b, Refusal)
    assert (a.code, a.detail) == (b.code, b.detail)
    assert isinstance(c, Refusal) and isinstance(d, Refusal)
    assert (c.code, c.detail) == (d.code, d.detail)
    again = await portal.accounts.register(NewExporter(
        "known@example.com", "Someone Else", "10000000146", "+905321234567", "other horse!"))
    assert isinstance(again, Registered) and again.user_id != reg.user_id  # not a 409


async def register(portal: Portal, email: str, activate_at: int | None = None
                   ) -> pyotp.TOTP:
    reg = await portal.accounts.register(NewExporter(
        email, "Ayşe Yılmaz", "10000000146", "+905321234567", "correct horse"))
    assert isinstance(reg, Registered)
    totp = pyotp.TOTP(pyotp.parse_uri(reg.totp_uri).secret)
    if activate_at is not None:
        assert isinstance(await portal.accounts.activate(email, totp.at(activate_at / 1000)),
                          str)
    return totp


async def failed_attempts(portal: Portal, email: str) -> int:
    found = await portal.accounts.exporter(email=email)
    assert not isinstance(found, Refusal)
    return found.failed_attempts


async def test_a_reused_code_is_said_and_is_no_failed_password(portal: Portal,
                                                              clock: Clock) -> None:
    """Once 401 "wrong e-mail, password or code (4 attempts left)", a failure counted."""
    totp = await register(portal, "reuse@example.com", activate_at=clock.now - 30_000)
    code = totp.at(clock.now / 1000)
    assert isinstance(await portal.accounts.login("reuse@example.com", "correct horse", code),
                      Token)
    for _ in range(MAX_LOGIN_FAILURES + 1):
        again = await portal.accounts.login("reuse@example.com", "correct horse", code)
        assert isinstance(again, Refusal) and again.code == "totp_reused"
        assert "already used" in again.detail
    assert await failed_attempts(portal, "reuse@example.com") == 0
    # a wrong password with that code is a wrong password (nothing said of the code), not
    # counted: the code was not fresh (issue #10: only the authenticator's holder counts)
    wrong = await portal.accounts.login("reuse@example.com", "wrong password!", code)
    assert isinstance(wrong, Refusal) and wrong.code == "unauthorized"
    assert await failed_attempts(portal, "reuse@example.com") == 0
    clock.now += 30_000  # a fresh code with a wrong password counts
    wrong = await portal.accounts.login("reuse@example.com", "wrong password!",
                                        totp.at(clock.now / 1000))
    assert isinstance(wrong, Refusal) and wrong.code == "unauthorized"
    assert await failed_attempts(portal, "reuse@example.com") == 1
    clock.now += 30_000
    fresh = await portal.accounts.login("reuse@example.com", "correct horse",
                                        totp.at(clock.now / 1000))
    assert isinstance(fresh, Token)
    assert await failed_attempts(portal, "reuse@example.com") == 0


async def test_a_login_before_activation_leaves_the_code_to_activate_with(
        portal: Portal, clock: Clock) -> None:
    """Once the login used the code up, and activation in the same time step failed."""
    totp = await register(portal, "early@example.com")
    code = totp.at(clock.now / 1000)
    early = await portal.accounts.login("early@example.com", "correct horse", code)
    assert isinstance(early, Refusal) and early.code == "not_activated"
    assert isinstance(await portal.accounts.activate("early@example.com", code), str)
    assert await failed_attempts(portal, "early@example.com") == 0


async def test_the_operator_unlocks_a_locked_account_and_it_is_audited(
        portal: Portal, clock: Clock) -> None:
    totp = await register(portal, "locked@example.com", activate_at=clock.now - 30_000)
    for _ in range(MAX_LOGIN_FAILURES):  # the owner's fresh codes, the wrong password
        await portal.accounts.login("locked@example.com", "wrong password!",
                                    totp.at(clock.now / 1000))
        clock.now += 30_000
    locked = await portal.accounts.login("locked@example.com", "correct horse",
                                         totp.at(clock.now / 1000))
    assert isinstance(locked, Refusal) and locked.code == "locked"
    user = await portal.accounts.exporter(email="LOCKED@example.com")
    assert not isinstance(user, Refusal) and user.failed_attempts == MAX_LOGIN_FAILURES
    done = await portal.accounts.unlock(user.id, "admin")
    assert not isinstance(done, Refusal) and done.failed_attempts == 0
    assert isinstance(await portal.accounts.login("locked@example.com", "correct horse",
                                                  totp.at(clock.now / 1000)), Token)
    async with portal.deps.store.read() as q:
        rows = [r for r in await q.audit.page(None, 100) if r.action == "exporter_unlocked"]
    assert [(r.actor, r.detail) for r in rows] == [
        ("admin", {"user_id": user.id, "failed_attempts": MAX_LOGIN_FAILURES,
                   "was_locked": True})]
    missing = await portal.accounts.unlock("usr_nobody", "admin")
    assert isinstance(missing, Refusal) and missing.code == "not_found"


async def test_a_stream_ticket_is_single_use(portal: Portal) -> None:
    t = await portal.accounts.issue_ticket(Principal("bank", "bnk_a"))
    assert await portal.accounts.redeem_ticket(t.ticket) == Principal("bank", "bnk_a")
    assert await portal.accounts.redeem_ticket(t.ticket) is None
    assert isinstance(portal.deps.guards, MemoryGuards)


# ----------------------------------------------------------------------------- applications
async def test_an_approved_application_opens_its_round_and_the_exporter_accepts_an_offer(
        portal: Portal, clock: Clock) -> None:
    reg = await portal.accounts.register(NewExporter(
        "x@example.com", "Ayşe Yılmaz", "10000000146", "+905321234567", "correct horse"))
    assert isinstance(reg, Registered)
    exporter = Principal("exporter", reg.user_id)
    matched = await portal.applying.match_company(exporter, "1100000014")
    assert isinstance(matched, CompanyState) and matched.consent_active
    decided = await portal.applying.apply(exporter, application(matched.company.id))
    assert isinstance(decided, ApplicationState)
    assert decided.application.status == "approved" and decided.round is not None
    rid = decided.round.id
    bus = portal.deps.bus
    assert isinstance(bus, MemoryBus) and bus.announced == [RoundOpened(rid)]
    async with portal.deps.store.read() as q:
        actions = [a.action for a in await q.audit.page(None, 100)]
    assert actions[-3:] == ["application_decided", "round_opened", "application_round_opened"]

    best = await bid(portal, "bnk_a", rid, "31.00")
    await bid(portal, "bnk_b", rid, "33.00")
    early = await portal.results.results(reg.user_id, decided.application.id)
    assert isinstance(early, Refusal) and early.code == "round_open"
    clock.now += ROUND // timedelta(milliseconds=1)
    assert await portal.closing.close_due(10) == 1
    done = await portal.results.accept(reg.user_id, decided.application.id,
                                       best.offer.offer_id)
    assert isinstance(done, ExporterResults)
    assert done.acceptance is not None and done.acceptance.offer_id == best.offer.offer_id
    assert done.round.state == RoundState.ACCEPTED.value
    twice = await portal.results.accept(reg.user_id, decided.application.id,
                                        best.offer.offer_id)
    assert isinstance(twice, Refusal) and twice.code == "already_accepted"
    foreign = await portal.results.results("usr_other", decided.application.id)
    assert isinstance(foreign, Refusal) and foreign.code == "not_found"


async def test_an_unanswered_round_lapses_after_its_binding_window(portal: Portal,
                                                                   clock: Clock) -> None:
    rid = await intake(portal)
    await bid(portal, "bnk_a", rid)
    clock.now += ROUND // timedelta(milliseconds=1)
    await portal.closing.close_due(10)
    clock.now += BINDING // timedelta(milliseconds=1) - MINUTE
    assert await portal.closing.lapse_due() == []
    clock.now += MINUTE
    assert await portal.closing.lapse_due() == [rid]
    view = await portal.operator.round(rid)
    assert not isinstance(view, Refusal) and view.round.state == RoundState.LAPSED.value


def application(company_id: str, **changes: Any) -> ApplicationDraft:
    """The standard request of the simulated integrations, as a form that parsed."""
    r = {**STD_REQUEST, **changes}
    req = ApplicationRequest(r["loan_type"], r["currency"], money_to_minor(r["loan_amount"]),
                             money_to_minor(r["guarantee_amount"]), r["tenor_months"],
                             r["grace_months"], export_commitment=True)
    values = {"loan_type": req.loan_type, "currency": req.currency,
              "loan_amount": req.loan_amount, "guarantee_amount": req.guarantee_amount,
              "tenor_months": req.tenor_months, "grace_months": req.grace_months}
    return ApplicationDraft(company_id, req, values)


async def test_the_packages_form_rules_and_the_parse_errors_are_one_refusal(
        portal: Portal) -> None:
    exporter = Principal("exporter", "usr_any")
    draft = application("cmp_x", tenor_months=61, grace_months=13)
    bad = ApplicationDraft(None, None, draft.values,
                           [FieldError("company_id", "required", "company_id is required")])
    got = await portal.applying.apply(exporter, bad)
    assert isinstance(got, Refusal) and got.code == "validation_failed"
    assert [(e.field, e.code) for e in got.errors or []] == [
        ("company_id", "required"), ("tenor_months", "tenor_above_maximum"),
        ("grace_months", "grace_above_maximum")]
