"""The persister copies only what the replicas have (``IGE_REDIS_REPLICA_ACKS``; usecases/
durability.py, ``RedisBook.replicated``): an offer whose script ran on the master while its
replica was away (the bank got 503 ``replication_pending``) is in the master's book, yet it
does not reach SQL until the replica has it, on a single Redis with a replica and on a Redis
Cluster. Otherwise a failover could lose an event SQL holds and the promoted master reissue
its seq."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from auction.buckets import bucket_of
from auction.redis import keys
from auction.redis.acks import ReplicationPending
from gateway import bootstrap
from gateway.settings import Settings
from tests.integration.conftest import Proc, bank_id, offer_terms, open_round
from tests.integration.test_persistence_core import bid
from tests.rediscluster import LoopbackCluster
from tests.replicas import master_replica
from tests.support import ADMIN_TOKEN, SECRET_KEY
from usecases.bidding import Accepted


@dataclass
class Target:
    """A Redis with replicas, and how to freeze / thaw the replica of a round's master."""

    url: str
    replica_of_round: Callable[[str], tuple[Callable[[], None], Callable[[], None]]]


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "single":
        for pair in master_replica(tmp_path / "redis"):  # started, stopped afterwards
            yield Target(pair.url, lambda _, p=pair: (p.freeze, p.thaw))  # type: ignore[misc]
        return
    cluster: LoopbackCluster = request.getfixturevalue("redis_cluster")
    thawed: list[Callable[[], None]] = []

    def replica(rid: str) -> tuple[Callable[[], None], Callable[[], None]]:
        port = cluster.replica_of(cluster.master_of(keys.round_keys(rid).meta))
        thawed.append(lambda: cluster.thaw(port))
        return (lambda: cluster.freeze(port)), (lambda: cluster.thaw(port))

    yield Target(cluster.url, replica)
    for thaw in thawed:  # whatever happened: a frozen node would stall the session's cluster
        thaw()
    cluster.wait_ok()


@pytest.fixture
async def proc(target: Target, database_url: str, channel: str) -> AsyncIterator[Proc]:
    p = Proc(bootstrap.build(Settings(
        redis_url=target.url, database_url=database_url, admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY, channel=channel, redis_replica_acks=1,
        redis_replica_timeout_s=1.0)))
    yield p
    await p.rt.aclose()


async def test_an_offer_not_yet_replicated_does_not_reach_sql(proc: Proc, target: Target
                                                             ) -> None:
    rnd = await open_round(proc)
    acked = await bid(proc, rnd, bank_id(), 390_000)  # replicated: acknowledged
    freeze, thaw = target.replica_of_round(rnd.round_id)
    freeze()
    try:
        # the script runs on the master; the bank is told to retry (503 replication_pending)
        with pytest.raises(ReplicationPending):
            await proc.submit(rnd, bank_id(), offer_terms(380_000), ("k1", "h1"))
        view = await proc.book.view(rnd.round_id)
        assert view is not None and len(view.offers) == 2  # on the master
        durability = proc.portal.durability
        with pytest.raises(RedisError):  # ReplicationPending: the fence is not confirmed
            await durability.persist_dirty([bucket_of(rnd.round_id)], {})
        with pytest.raises(RedisError):
            await durability.persist_round(rnd.round_id)
        assert await proc.versions(rnd.round_id) == []  # not even the replicated one
        assert (await proc.round(rnd.round_id)).persisted_seq == 0
    finally:
        thaw()
    # once the replica has it, everything goes in, once; the round was given back as dirty
    done = await proc.portal.durability.persist_dirty([bucket_of(rnd.round_id)], {})
    assert (done.rounds, done.events) == (1, 2)
    versions = await proc.versions(rnd.round_id)
    assert [v.seq for v in versions] == [1, 2] and versions[0].offer_id == acked
    again = await proc.submit(rnd, bank_id(), offer_terms(380_000), ("k1", "h1"))
    assert isinstance(again, Accepted) and again.offer.seq == 2  # the retry: the first result
