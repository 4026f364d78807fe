"""The guards contract: one suite over the reference (``usecases.testing.MemoryGuards``) and
``auction.redis.guards.RedisGuards`` on Redis 7 and 6.2. Locks are released only by their
holder; tickets and one-time codes are single use; records expire."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from redis.asyncio import Redis

from auction.redis import keys
from auction.redis.guards import RedisGuards
from tests.contract.conftest import CLIENT_FIXTURE, IMPLEMENTATIONS, check_redis_keys
from usecases.testing import MemoryGuards

GLOBAL = {keys.bucket_lease(3), keys.WORKERS}


@pytest.fixture(params=IMPLEMENTATIONS)
def guards(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryGuards()
    client: Redis = request.getfixturevalue(CLIENT_FIXTURE[request.param])
    return RedisGuards(client)


def token() -> str:
    return secrets.token_hex(4)


async def test_a_ticket_is_redeemed_once(guards: Any) -> None:
    t = token()
    await guards.issue_ticket(t, "bank:bnk_1", 30)
    assert await guards.redeem_ticket(t) == "bank:bnk_1"
    assert await guards.redeem_ticket(t) is None
    assert await guards.redeem_ticket("never-issued") is None


async def test_a_ticket_expires(guards: Any) -> None:
    t = token()
    await guards.issue_ticket(t, "bank:bnk_1", 1)
    await asyncio.sleep(1.1)
    assert await guards.redeem_ticket(t) is None


async def test_a_session_is_kept_renewed_and_dropped(guards: Any) -> None:
    k = token()
    assert await guards.get_session(k) is None
    await guards.put_session(k, '{"u": 1}', 30)
    assert await guards.get_session(k) == '{"u": 1}'
    await guards.put_session(k, '{"u": 2}', 30)  # renewed with a new record
    assert await guards.get_session(k) == '{"u": 2}'
    await guards.drop_session(k)
    assert await guards.get_session(k) is None
    # a renewal after the logout's drop brings nothing back (a read, a logout, the renewal)
    assert await guards.renew_session(k, '{"u": 3}', 30) is False
    assert await guards.get_session(k) is None
    await guards.put_session(k, '{"u": 4}', 30)
    assert await guards.renew_session(k, '{"u": 5}', 30) is True
    assert await guards.get_session(k) == '{"u": 5}'


async def test_a_session_expires(guards: Any) -> None:
    k = token()
    await guards.put_session(k, "x", 1)
    await asyncio.sleep(1.1)
    assert await guards.get_session(k) is None


async def test_a_one_time_code_step_is_accepted_once_per_user(guards: Any) -> None:
    assert await guards.use_code("usr_a", 100, 120) is True
    assert await guards.use_code("usr_a", 100, 120) is False
    assert await guards.use_code("usr_b", 100, 120) is True
    assert await guards.use_code("usr_a", 101, 120) is True


async def test_an_idempotency_record_is_pending_then_holds_the_answer(guards: Any) -> None:
    actor, key = "admin", token()
    assert await guards.begin_request(actor, key, "h1", 60) is None
    assert await guards.begin_request(actor, key, "h1", 60) == {"h": "h1", "pending": True}
    await guards.finish_request(actor, key, "h1", 201, {"id": "x"}, 60)
    assert await guards.begin_request(actor, key, "h2", 60) == {
        "h": "h1", "status": 201, "body": {"id": "x"}}
    assert await guards.begin_request("someone-else", key, "h1", 60) is None


async def test_an_abandoned_request_frees_its_key(guards: Any) -> None:
    actor, key = "admin", token()
    assert await guards.begin_request(actor, key, "h1", 60) is None
    await guards.abandon_request(actor, key)
    assert await guards.begin_request(actor, key, "h2", 60) is None


@pytest.mark.parametrize("kind, ident", [("close", "rnd_1"), ("group", "1100000014"),
                                         ("bucket", "7")])
async def test_a_lock_is_held_by_one_holder_and_released_only_by_it(
        guards: Any, kind: str, ident: str) -> None:
    a, b = token(), token()
    assert await guards.acquire(kind, ident, a, 10_000) is True
    assert await guards.acquire(kind, ident, b, 10_000) is False
    assert await guards.release(kind, ident, b) is False  # not b's: left alone
    assert await guards.acquire(kind, ident, b, 10_000) is False
    assert await guards.release(kind, ident, a) is True
    assert await guards.acquire(kind, ident, b, 10_000) is True
    assert await guards.release(kind, ident, b) is True


async def test_an_expired_lock_taken_by_another_is_not_released_by_the_first(
        guards: Any) -> None:
    a, b = token(), token()
    assert await guards.acquire("close", "rnd_2", a, 100) is True
    await asyncio.sleep(0.2)
    assert await guards.acquire("close", "rnd_2", b, 10_000) is True
    assert await guards.release("close", "rnd_2", a) is False
    assert await guards.acquire("close", "rnd_2", a, 10_000) is False  # still b's


async def test_a_lease_is_renewed_by_its_holder_and_taken_over_when_it_lapses(
        guards: Any) -> None:
    a, b = token(), token()
    assert await guards.hold("bucket", "5", a, 300) is True
    assert await guards.hold("bucket", "5", b, 300) is False
    await asyncio.sleep(0.2)
    assert await guards.hold("bucket", "5", a, 300) is True  # renewed
    await asyncio.sleep(0.2)
    assert await guards.hold("bucket", "5", b, 300) is False  # still a's
    await asyncio.sleep(0.35)
    assert await guards.hold("bucket", "5", b, 300) is True  # lapsed: b takes it
    assert await guards.release("bucket", "5", b) is True


async def test_hold_many_holds_what_is_free_or_ours_and_nothing_else(guards: Any) -> None:
    a, b = token(), token()
    assert await guards.hold_many("bucket", [], a, 10_000) == []
    assert await guards.hold_many("bucket", ["10", "11"], a, 10_000) == [True, True]
    assert await guards.hold_many("bucket", ["11", "12", "10"], b, 10_000) == [
        False, True, False]
    assert await guards.hold_many("bucket", ["10", "11", "12"], a, 10_000) == [
        True, True, False]
    for ident, who in (("10", a), ("11", a), ("12", b)):
        assert await guards.release("bucket", ident, who) is True


async def test_the_roll_counts_members_present_within_their_heartbeat(guards: Any) -> None:
    a, b = token(), token()
    await guards.leave("workers", "nobody", 300)  # whoever an earlier test left behind
    assert await guards.heartbeat("workers", a, 300) >= 1
    n = await guards.heartbeat("workers", b, 300)
    assert await guards.heartbeat("workers", a, 300) == n  # a renewal is not a new member
    assert await guards.leave("workers", b, 300) == n - 1
    await asyncio.sleep(0.35)
    assert await guards.heartbeat("workers", b, 300) == 1  # a lapsed: only b is present
    assert await guards.leave("workers", b, 300) == 0


async def test_close_claims_live_beside_their_round(redis: Redis) -> None:
    g = RedisGuards(redis)
    assert await g.acquire("close", "rnd_tagged", token(), 10_000)
    assert await g.hold("bucket", "3", token(), 10_000)
    assert await g.heartbeat("workers", token(), 10_000) == 1
    await check_redis_keys(redis, {"rnd_tagged"}, allowed_global=GLOBAL)


async def test_revoking_a_persons_sessions_drops_each_and_refuses_new_ones_for_a_while(
        guards: Any) -> None:
    owner, other = f"desk:{token()}", f"desk:{token()}"
    mine, theirs = [token() for _ in range(3)], token()
    for k in mine:
        await guards.put_session(k, "r", 60)
        assert await guards.index_session(owner, k, 60) is True
    await guards.put_session(theirs, "r", 60)
    assert await guards.index_session(other, theirs, 60) is True
    await guards.drop_session(mine[0])  # logged out already: not counted
    assert await guards.revoke_sessions(owner, 2) == 2
    assert [await guards.get_session(k) for k in mine] == [None, None, None]
    assert await guards.get_session(theirs) == "r"
    late = token()
    await guards.put_session(late, "r", 60)
    assert await guards.index_session(owner, late, 60) is False  # the caller drops it
    assert await guards.index_session(other, token(), 60) is True
    await asyncio.sleep(2.1)
    assert await guards.index_session(owner, token(), 60) is True  # the hold is over
    assert await guards.revoke_sessions(f"desk:{token()}", 1) == 0  # nobody's: nothing
