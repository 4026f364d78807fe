"""A command whose answer is lost may have run: the server never sends it again itself (the
bank retries an offer with its Idempotency-Key; a stream ticket is asked for anew). Sent again,
a new offer without a key would be placed twice (the bank told of the second, the first live
and binding without its knowing) and a ticket's redemption would find the ticket used up.

On a real Redis Cluster (redis-py's cluster client retries a failed or timed-out command) and a
real single Redis (its connections retry nothing), with the server's own clients
(``gateway.bootstrap.build``); the answer is lost after the real server has run the command
and answered it (the connection's read raises a timeout, as on a network that drops the reply).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from auction.redis import keys
from gateway import bootstrap
from gateway.settings import Settings
from tests.contract.test_book_contract import a_round, terms
from tests.rediscluster import LoopbackCluster


class LoseAnswers:
    """While armed, the next answer read on a redis-py connection is read, then lost (one
    answer: whatever is sent after it is answered)."""

    def __init__(self) -> None:
        self.armed = False
        self.lost = 0


@pytest.fixture
def lose(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoseAnswers]:
    state = LoseAnswers()
    real = Connection.read_response

    async def read_response(self: Connection, *args: object, **kwargs: object) -> object:
        got = await real(self, *args, **kwargs)  # type: ignore[arg-type]
        if state.armed and not state.lost:
            state.lost += 1
            raise RedisTimeoutError("Timeout reading from socket (a lost answer, injected)")
        return got
    monkeypatch.setattr(Connection, "read_response", read_response)
    yield state


async def ready(rt: bootstrap.Runtime, key: str) -> None:
    """Before any answer is lost: the clients' connections to ``key``'s node made (a new
    connection's handshake and a cluster client's slot map are answers too), and the bid
    scripts loaded."""
    for client in {id(rt.redis): rt.redis, id(rt.once): rt.once}.values():
        if isinstance(client, RedisCluster):
            await client.initialize()
        await client.exists(key)
    await rt.deps.book.scripts.submit.registered_client.script_load(  # type: ignore[attr-defined]
        rt.deps.book.scripts.submit.script)  # type: ignore[attr-defined]


def runtime(url: str, tmp_path: Path) -> bootstrap.Runtime:
    return bootstrap.build(Settings.from_env({
        "IGE_DEMO": "1", "REDIS_URL": url, "DATABASE_URL": f"sqlite:///{tmp_path / 'ige.db'}"}))


async def offer_lost_then_count(rt: bootstrap.Runtime, lose: LoseAnswers) -> tuple[int, int]:
    """A new offer without an Idempotency-Key whose answer is lost: (answers lost, offers of
    that bank in the book)."""
    book = rt.deps.book
    rid = "rnd_" + secrets.token_hex(5)
    assert await book.open_round(a_round(round_id=rid))
    await ready(rt, keys.round_keys(rid).meta)
    lose.armed = True
    try:
        with pytest.raises(RedisError):
            await book.submit(rid, "bank_a", "off_" + secrets.token_hex(4),
                              "ref" + secrets.token_hex(4), terms(), 330_000, max_offers=5)
    finally:
        lose.armed = False
    view = await book.view(rid)
    assert view is not None
    return lose.lost, sum(1 for o in view.offers if o.bank_id == "bank_a")


def test_on_a_cluster_a_lost_offer_answer_is_not_sent_again(
        redis_cluster: LoopbackCluster, lose: LoseAnswers, tmp_path: Path) -> None:
    redis_cluster.flushall()

    async def main() -> tuple[int, int]:
        rt = runtime(redis_cluster.url, tmp_path)
        try:
            assert rt.fast is None  # the bid scripts go through redis-py here
            return await offer_lost_then_count(rt, lose)
        finally:
            await rt.aclose()
    lost, offers = asyncio.run(main())
    assert (lost, offers) == (1, 1)  # sent once; redis-py's retry had placed a second


def test_on_a_cluster_a_lost_ticket_redemption_is_not_sent_again(
        redis_cluster: LoopbackCluster, lose: LoseAnswers, tmp_path: Path) -> None:
    redis_cluster.flushall()

    async def main() -> int:
        rt = runtime(redis_cluster.url, tmp_path)
        try:
            guards = rt.deps.guards
            ticket = secrets.token_urlsafe(16)
            await guards.issue_ticket(ticket, "desk:bank_a", 30)
            await ready(rt, keys.ticket(ticket))
            lose.armed = True
            try:
                with pytest.raises(RedisError):
                    await guards.redeem_ticket(ticket)
            finally:
                lose.armed = False
            return lose.lost
        finally:
            await rt.aclose()
    assert asyncio.run(main()) == 1


def test_on_a_cluster_a_lost_answer_to_a_set_nx_does_not_refuse_its_own_caller(
        redis_cluster: LoopbackCluster, lose: LoseAnswers, tmp_path: Path) -> None:
    """A one-time code, a request's idempotency key and a lock are taken with SET NX: sent
    again after a lost answer, the second run found the first's key and said "taken" (the
    code refused as replayed, the request as already pending, the lock as another's): a wrong
    answer, where the truth is that the service failed (503)."""
    async def main() -> list[int]:
        rt = runtime(redis_cluster.url, tmp_path)
        got = []
        try:
            guards = rt.deps.guards
            user = "usr_" + secrets.token_hex(4)
            takes = [
                (keys.used_code(user, 7), lambda: guards.use_code(user, 7, 60)),
                (keys.idempotency("desk:" + user, "k1"),
                 lambda: guards.begin_request("desk:" + user, "k1", "h", 60)),
                (keys.close_claim(user), lambda: guards.acquire("close", user, "tok", 60_000)),
            ]
            for key, take in takes:
                await ready(rt, key)
                lose.lost = 0
                lose.armed = True
                try:
                    with pytest.raises(RedisError):
                        await take()
                finally:
                    lose.armed = False
                got.append(lose.lost)  # failed (503 to a request), sent once
        finally:
            await rt.aclose()
        return got
    assert asyncio.run(main()) == [1, 1, 1]


def test_a_single_redis_sends_nothing_twice(redis_url: str, lose: LoseAnswers,
                                            tmp_path: Path) -> None:
    """The bid path's own connection (``MuxRedis``) has no retry; redis-py's connections of
    the single Redis retry nothing either (no Retry given to the pool)."""
    async def main() -> tuple[int, int, bool, int]:
        rt = runtime(redis_url, tmp_path)
        try:
            rt.fast = None  # the bid scripts through redis-py, as with a TLS URL
            rt.deps.book.fast = None  # type: ignore[attr-defined]
            lost, offers = await offer_lost_then_count(rt, lose)
            conn = await rt.redis.connection_pool.get_connection()  # type: ignore[union-attr]
            retries = conn.retry.get_retries()
            await rt.redis.connection_pool.release(conn)  # type: ignore[union-attr]
            return lost, offers, rt.once is rt.redis, retries
        finally:
            await rt.aclose()
    assert asyncio.run(main()) == (1, 1, True, 0)
