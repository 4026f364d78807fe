"""Desk users (people at a bank) and browser sessions, on the use cases alone (memory book,
guards and bus, a real SQLite file): the two-step activation, the exporters' login rules
reused as they are, roles, the audit of a person's offers, and the sessions' limits."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest

from auction.calendar import CalendarRules
from persistence.db import migrate
from persistence.records import DeskUserRecord, RoundRecord
from persistence.store import Store
from tests.unit.test_usecases import BINDING, INTAKE, ROUND, T0, Clock, offer
from usecases.accounts import DESK_ACTIVATION_S, MAX_LOGIN_FAILURES, NewDeskUser, Registered
from usecases.bidding import Accepted
from usecases.context import Policy
from usecases.outcomes import Refusal
from usecases.portal import Portal
from usecases.sessions import BrowserSession
from usecases.testing import memory_deps

PASSWORD = "a desk password, long enough"
IDLE_S, MAX_S = 600, 3600


@pytest.fixture(scope="module")
def desk_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("desk") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def portal(desk_template_db: Path, tmp_path: Path, clock: Clock
                 ) -> AsyncIterator[Portal]:
    db = tmp_path / "ige.db"
    shutil.copy(desk_template_db, db)
    store = Store.from_url(f"sqlite:///{db}")
    policy = Policy(calendar=CalendarRules(round_duration=ROUND, binding_duration=BINDING),
                    session_idle_s=IDLE_S, session_max_s=MAX_S)
    yield Portal(memory_deps(store, clock, policy))
    await store.aclose()


async def _bank(portal: Portal, code: str = "DESKB") -> str:
    creds = await portal.accounts.create_bank(code, f"{code} Bankası", "admin")
    assert creds is not None
    return creds.bank_id


async def _active_user(portal: Portal, clock: Clock, role: str = "trader",
                       email: str = "ali@bank.example") -> tuple[DeskUserRecord, pyotp.TOTP]:
    made = await portal.accounts.create_desk_user(await _bank(portal), email, "Ali Veli",
                                                  role, "admin")
    assert isinstance(made, NewDeskUser)
    started = await portal.accounts.start_desk_activation(email, made.activation_code,
                                                          PASSWORD)
    assert isinstance(started, Registered)
    totp = pyotp.TOTP(pyotp.parse_uri(started.totp_uri).secret)
    done = await portal.accounts.finish_desk_activation(email, made.activation_code,
                                                        totp.at(clock.now / 1000))
    assert done == made.user.id
    clock.now += 60_000
    return made.user, totp


async def test_a_desk_user_activates_in_two_steps_and_logs_in_with_password_and_code(
        portal: Portal, clock: Clock) -> None:
    bank_id = await _bank(portal)
    made = await portal.accounts.create_desk_user(bank_id, "Ayse@Bank.example", "Ayşe",
                                                  "viewer", "admin")
    assert isinstance(made, NewDeskUser) and not made.user.active
    assert made.user.email == "ayse@bank.example"
    # no login before activation, whatever is sent
    assert isinstance(await portal.accounts.desk_login("ayse@bank.example", PASSWORD,
                                                       "123456"), Refusal)
    # a wrong activation code starts nothing
    wrong = await portal.accounts.start_desk_activation("ayse@bank.example", "nope", PASSWORD)
    assert isinstance(wrong, Refusal) and wrong.code == "unauthorized"
    started = await portal.accounts.start_desk_activation("ayse@bank.example",
                                                          made.activation_code, PASSWORD)
    assert isinstance(started, Registered) and started.totp_uri.startswith("otpauth://totp/")
    totp = pyotp.TOTP(pyotp.parse_uri(started.totp_uri).secret)
    bad = await portal.accounts.finish_desk_activation("ayse@bank.example",
                                                       made.activation_code, "000000")
    assert isinstance(bad, Refusal) and bad.code == "totp_invalid"
    assert await portal.accounts.finish_desk_activation(
        "ayse@bank.example", made.activation_code, totp.at(clock.now / 1000)) == made.user.id
    # the activation code is spent
    again = await portal.accounts.start_desk_activation("ayse@bank.example",
                                                        made.activation_code, "x" * 12)
    assert isinstance(again, Refusal)
    clock.now += 60_000
    user = await portal.accounts.desk_login("ayse@bank.example", PASSWORD,
                                            totp.at(clock.now / 1000))
    assert isinstance(user, DeskUserRecord)
    assert (user.bank_id, user.role, user.active) == (bank_id, "viewer", True)
    # the same code again: the exporters' replay rule
    replay = await portal.accounts.desk_login("ayse@bank.example", PASSWORD,
                                              totp.at(clock.now / 1000))
    assert isinstance(replay, Refusal) and replay.code == "totp_reused"


async def test_an_activation_code_expires(portal: Portal, clock: Clock) -> None:
    made = await portal.accounts.create_desk_user(await _bank(portal), "late@bank.example",
                                                  "Late", "trader", "admin")
    assert isinstance(made, NewDeskUser)
    clock.now += DESK_ACTIVATION_S * 1000 + 1
    late = await portal.accounts.start_desk_activation("late@bank.example",
                                                       made.activation_code, PASSWORD)
    assert isinstance(late, Refusal) and late.code == "unauthorized"


async def test_five_failures_with_the_users_own_codes_lock_a_desk_user(
        portal: Portal, clock: Clock) -> None:
    user, totp = await _active_user(portal, clock)
    for _ in range(MAX_LOGIN_FAILURES):
        got = await portal.accounts.desk_login(user.email, "wrong password",
                                               totp.at(clock.now / 1000))
        assert isinstance(got, Refusal) and got.code == "unauthorized"
        clock.now += 30_000
    locked = await portal.accounts.desk_login(user.email, PASSWORD, totp.at(clock.now / 1000))
    assert isinstance(locked, Refusal) and locked.code == "locked"


async def test_desk_users_are_refused_for_an_unknown_bank_a_taken_email_or_role(
        portal: Portal) -> None:
    assert (await portal.accounts.create_desk_user("bnk_nope", "a@b.example", "A", "trader",
                                                   "admin")) == Refusal("not_found",
                                                                        "no such bank")
    bank_id = await _bank(portal)
    first = await portal.accounts.create_desk_user(bank_id, "a@b.example", "A", "trader", "x")
    assert isinstance(first, NewDeskUser)
    taken = await portal.accounts.create_desk_user(bank_id, "A@b.example", "A", "trader", "x")
    assert isinstance(taken, Refusal) and taken.code == "conflict"
    role = await portal.accounts.create_desk_user(bank_id, "c@b.example", "C", "boss", "x")
    assert isinstance(role, Refusal) and role.code == "validation_failed"


async def _session(portal: Portal, user: DeskUserRecord) -> BrowserSession:
    _, s = await portal.sessions.start("desk", user.id, user.full_name, user.bank_id,
                                       user.role)
    return s


async def test_a_viewer_may_not_offer_and_a_traders_offer_is_audited_with_the_person(
        portal: Portal, clock: Clock) -> None:
    trader, _ = await _active_user(portal, clock, "trader", "t@bank.example")
    viewer_made = await portal.accounts.create_desk_user(trader.bank_id, "v@bank.example",
                                                         "Viewer", "viewer", "admin")
    assert isinstance(viewer_made, NewDeskUser)
    rnd = await portal.operator.intake(dict(INTAKE), [], "admin")
    assert isinstance(rnd, RoundRecord)
    as_viewer = await _session(portal, viewer_made.user)
    refused = await portal.desk.offer(as_viewer, rnd.id, None, offer(), None)
    assert isinstance(refused, Refusal) and refused.code == "forbidden"
    assert not await portal.deps.book.has_bid(rnd.id, trader.bank_id)
    as_trader = await _session(portal, trader)
    done = await portal.desk.offer(as_trader, rnd.id, None, offer(), None)
    assert isinstance(done, Accepted) and done.offer.bank_id == trader.bank_id
    revised = await portal.desk.offer(as_trader, rnd.id, done.offer.offer_id,
                                      offer("37.00"), None)
    assert isinstance(revised, Accepted) and revised.offer.version == 2
    trail = [a for a in await portal.operator.audit(rnd.id, 0) if a.action == "desk_offer"]
    assert [(a.actor, a.detail["offer_id"], a.detail["version"]) for a in trail] == [
        (f"desk:{trader.id}", done.offer.offer_id, 1),
        (f"desk:{trader.id}", done.offer.offer_id, 2)]


async def test_a_session_is_renewed_by_use_and_ends_idle_at_its_limit_or_on_logout(
        portal: Portal, clock: Clock) -> None:
    sid, s = await portal.sessions.start("desk", "dsk_1", "Ali", "bnk_1", "trader")
    assert s.created_ms == T0 and len(s.csrf) >= 32
    found = await portal.sessions.find(sid)
    assert found is not None and found.csrf == s.csrf and found.bank_id == "bnk_1"
    assert await portal.sessions.find(sid + "x") is None
    # used within the idle limit, again and again: kept until the absolute limit
    for _ in range(MAX_S // (IDLE_S - 60)):
        clock.now += (IDLE_S - 60) * 1000
        if clock.now - T0 >= MAX_S * 1000:
            break
        assert await portal.sessions.find(sid) is not None
    clock.now = T0 + MAX_S * 1000
    assert await portal.sessions.find(sid) is None  # the absolute limit
    sid2, _ = await portal.sessions.start("desk", "dsk_1", "Ali", "bnk_1", "trader")
    clock.now += IDLE_S * 1000 + 1
    assert await portal.sessions.find(sid2) is None  # idle too long
    sid3, _ = await portal.sessions.start("desk", "dsk_1", "Ali", "bnk_1", "trader")
    assert await portal.sessions.find(sid3) is not None
    await portal.sessions.end(sid3)
    assert await portal.sessions.find(sid3) is None  # logged out: gone


async def test_a_deactivated_desk_user_loses_every_session_and_cannot_sign_in_again(
        portal: Portal, clock: Clock) -> None:
    user, totp = await _active_user(portal, clock, "trader", "gone@bank.example")
    started = [await portal.sessions.start("desk", user.id, user.full_name, user.bank_id,
                                           user.role) for _ in range(3)]  # three browsers
    other = await portal.sessions.start("desk", "dsk_other", "Başka", user.bank_id, "viewer")
    assert all(s is not None for s in started) and other is not None
    # another bank cannot deactivate them, and an unknown id is the same answer
    other_bank = await _bank(portal, "OTHRB")
    for bank_id, user_id in ((other_bank, user.id), (user.bank_id, "dsk_nobody")):
        refused = await portal.accounts.deactivate_desk_user(bank_id, user_id, "admin")
        assert isinstance(refused, Refusal) and refused.code == "not_found"
    assert None not in [await portal.sessions.find(s[0]) for s in started if s]

    done = await portal.accounts.deactivate_desk_user(user.bank_id, user.id, "desk:dsk_admin")
    assert isinstance(done, DeskUserRecord) and done.status == "deactivated"
    assert [await portal.sessions.find(s[0]) for s in started if s] == [None, None, None]
    assert await portal.sessions.find(other[0]) is not None  # nobody else's
    # the right password and a fresh code: told plainly, and no session
    clock.now += 60_000
    login = await portal.accounts.desk_login(user.email, PASSWORD, totp.at(clock.now / 1000))
    assert isinstance(login, Refusal) and login.code == "deactivated"
    # a sign-in whose checks passed just before the deactivation gets no session either
    assert await portal.sessions.start("desk", user.id, user.full_name, user.bank_id,
                                       user.role) is None
    # again: the same answer, one audit row
    again = await portal.accounts.deactivate_desk_user(user.bank_id, user.id, "admin")
    assert isinstance(again, DeskUserRecord) and again.status == "deactivated"
    trail = [a for a in await portal.operator.audit(None, 0)
             if a.action == "desk_user_deactivated"]
    assert [(a.actor, a.detail) for a in trail] == [
        ("desk:dsk_admin", {"user_id": user.id, "bank_id": user.bank_id})]


async def test_a_pending_desk_users_activation_code_is_void_once_deactivated(
        portal: Portal) -> None:
    bank_id = await _bank(portal)
    made = await portal.accounts.create_desk_user(bank_id, "p@bank.example", "P", "viewer",
                                                  "admin")
    assert isinstance(made, NewDeskUser) and made.user.status == "pending"
    done = await portal.accounts.deactivate_desk_user(bank_id, made.user.id, "admin")
    assert isinstance(done, DeskUserRecord) and done.status == "deactivated"
    late = await portal.accounts.start_desk_activation("p@bank.example", made.activation_code,
                                                       PASSWORD)
    assert isinstance(late, Refusal) and late.code == "unauthorized"


async def test_a_rotated_client_secret_replaces_the_old_one_at_once(portal: Portal) -> None:
    creds = await portal.accounts.create_bank("ROTB", "Rot Bankası", "admin")
    assert creds is not None
    assert not isinstance(await portal.accounts.bank_token(creds.client_id,
                                                           creds.client_secret), Refusal)
    new = await portal.accounts.rotate_client_secret(creds.bank_id, "operator:opr_1")
    assert not isinstance(new, Refusal)
    assert (new.client_id, new.bank_code) == (creds.client_id, "ROTB")
    assert new.client_secret != creds.client_secret
    old = await portal.accounts.bank_token(creds.client_id, creds.client_secret)
    assert isinstance(old, Refusal) and old.code == "invalid_client"
    assert not isinstance(await portal.accounts.bank_token(creds.client_id,
                                                           new.client_secret), Refusal)
    unknown = await portal.accounts.rotate_client_secret("bnk_nobody", "admin")
    assert isinstance(unknown, Refusal) and unknown.code == "not_found"
    trail = [a for a in await portal.operator.audit(None, 0)
             if a.action == "client_secret_rotated"]
    assert [(a.actor, a.detail) for a in trail] == [
        ("operator:opr_1", {"bank_id": creds.bank_id, "client_id": creds.client_id})]
    assert new.client_secret not in str([a.detail for a in trail])


async def test_a_watching_page_keeps_its_session_until_it_ends_or_reaches_its_limit(
        portal: Portal, clock: Clock) -> None:
    from usecases.sessions import session_key

    started = await portal.sessions.start("desk", "dsk_w", "Watcher", "bnk_1", "viewer")
    assert started is not None
    sid, _ = started
    key = session_key(sid)
    # watching renews it: idle limits pass by without a request
    for _ in range(3):
        clock.now += (IDLE_S - 60) * 1000
        assert await portal.sessions.keep(key) is True
    assert await portal.sessions.find(sid) is not None
    clock.now = T0 + MAX_S * 1000  # the absolute limit: no more
    assert await portal.sessions.keep(key) is False
    again = await portal.sessions.start("desk", "dsk_w", "Watcher", "bnk_1", "viewer")
    assert again is not None
    await portal.sessions.end(again[0])  # signed out
    assert await portal.sessions.keep(session_key(again[0])) is False
    assert await portal.sessions.keep("no-such-key") is False


# ----------------------------------------------------------------------------- bank admins
async def test_a_bank_admin_lists_and_creates_only_its_own_banks_desk_users_audited(
        portal: Portal, clock: Clock) -> None:
    admin, _ = await _active_user(portal, clock, "admin", "admin@bank-a.example")
    other_bank = await _bank(portal, "DESKC")
    theirs = await portal.accounts.create_desk_user(other_bank, "t@bank-c.example", "Them",
                                                    "trader", "admin")
    assert isinstance(theirs, NewDeskUser)
    as_admin = await _session(portal, admin)
    made = await portal.desk.create_user(as_admin, "new@bank-a.example", "Yeni Kişi", "trader")
    assert isinstance(made, NewDeskUser) and made.activation_code
    assert (made.user.bank_id, made.user.role, made.user.active) == (admin.bank_id, "trader",
                                                                     False)
    listed = await portal.desk.users(as_admin)
    assert not isinstance(listed, Refusal)
    assert sorted(u.email for u in listed) == ["admin@bank-a.example", "new@bank-a.example"]
    another_admin = await portal.desk.create_user(as_admin, "a2@bank-a.example", "A2", "admin")
    assert isinstance(another_admin, NewDeskUser) and another_admin.user.role == "admin"
    bad_role = await portal.desk.create_user(as_admin, "x@bank-a.example", "X", "operator")
    assert isinstance(bad_role, Refusal) and bad_role.code == "validation_failed"
    taken = await portal.desk.create_user(as_admin, "T@bank-c.example", "Dup", "viewer")
    assert isinstance(taken, Refusal) and taken.code == "conflict"
    trail = [a for a in await portal.operator.audit(None, 0) if a.action == "desk_user_created"
             and a.actor == f"desk:{admin.id}"]
    assert [(a.detail["user_id"], a.detail["bank_id"], a.detail["role"]) for a in trail] == [
        (made.user.id, admin.bank_id, "trader"),
        (another_admin.user.id, admin.bank_id, "admin")]


async def test_another_banks_desk_user_is_not_found_exactly_like_an_unknown_one(
        portal: Portal, clock: Clock) -> None:
    admin, _ = await _active_user(portal, clock, "admin", "admin@bank-a.example")
    theirs = await portal.accounts.create_desk_user(await _bank(portal, "DESKC"),
                                                    "t@bank-c.example", "Them", "trader",
                                                    "admin")
    assert isinstance(theirs, NewDeskUser)
    as_admin = await _session(portal, admin)
    foreign = await portal.desk.user(as_admin, theirs.user.id)
    unknown = await portal.desk.user(as_admin, "dsk_nosuchuser")
    assert isinstance(foreign, Refusal) and isinstance(unknown, Refusal)
    assert (foreign.code, foreign.detail) == (unknown.code, unknown.detail) == (
        "not_found", "no such desk user")
    f2 = await portal.desk.deactivate_user(as_admin, theirs.user.id)
    u2 = await portal.desk.deactivate_user(as_admin, "dsk_nosuchuser")
    assert isinstance(f2, Refusal) and isinstance(u2, Refusal)
    assert (f2.code, f2.detail) == (u2.code, u2.detail) == ("not_found", "no such desk user")
    mine = await portal.desk.user(as_admin, admin.id)
    assert isinstance(mine, DeskUserRecord) and mine.id == admin.id


@pytest.mark.parametrize("role", ["viewer", "trader"])
async def test_only_a_bank_admin_manages_desk_users(portal: Portal, clock: Clock,
                                                    role: str) -> None:
    user, _ = await _active_user(portal, clock, role, f"{role}@bank-a.example")
    s = await _session(portal, user)
    assert not s.may_manage_users and s.may_offer == (role == "trader")
    for got in (await portal.desk.users(s),
                await portal.desk.create_user(s, "z@bank-a.example", "Z", "trader"),
                await portal.desk.user(s, user.id),
                await portal.desk.deactivate_user(s, user.id)):
        assert isinstance(got, Refusal) and got.code == "forbidden"
    listed = await portal.accounts.desk_users(user.bank_id)
    assert not isinstance(listed, Refusal) and [u.email for u in listed] == [user.email]


async def test_an_admin_does_not_offer_and_does_not_deactivate_itself(
        portal: Portal, clock: Clock) -> None:
    admin, _ = await _active_user(portal, clock, "admin", "admin@bank-a.example")
    s = await _session(portal, admin)
    assert s.may_manage_users and not s.may_offer
    rnd = await portal.operator.intake(dict(INTAKE), [], "admin")
    assert isinstance(rnd, RoundRecord)
    refused = await portal.desk.offer(s, rnd.id, None, offer(), None)
    assert isinstance(refused, Refusal) and refused.code == "forbidden"
    itself = await portal.desk.deactivate_user(s, admin.id)
    assert isinstance(itself, Refusal) and itself.code == "self"
    again = await portal.desk.user(s, admin.id)
    assert isinstance(again, DeskUserRecord) and again.active


async def test_a_bank_admin_deactivates_its_own_banks_user_whose_sessions_end(
        portal: Portal, clock: Clock) -> None:
    admin, _ = await _active_user(portal, clock, "admin", "admin@bank-a.example")
    made = await portal.desk.create_user(await _session(portal, admin), "t@bank-a.example",
                                         "Tüccar", "trader")
    assert isinstance(made, NewDeskUser)
    started = await portal.sessions.start("desk", made.user.id, "Tüccar", admin.bank_id,
                                          "trader")
    assert started is not None
    as_admin = await _session(portal, admin)
    done = await portal.desk.deactivate_user(as_admin, made.user.id)
    assert isinstance(done, DeskUserRecord) and done.status == "deactivated"
    assert await portal.sessions.find(started[0]) is None
    listed = await portal.desk.users(as_admin)
    assert not isinstance(listed, Refusal)
    assert {u.email: u.status for u in listed} == {"admin@bank-a.example": "active",
                                                   "t@bank-a.example": "deactivated"}
    trail = [(a.actor, a.detail["user_id"]) for a in await portal.operator.audit(None, 0)
             if a.action == "desk_user_deactivated"]
    assert trail == [(f"desk:{admin.id}", made.user.id)]
