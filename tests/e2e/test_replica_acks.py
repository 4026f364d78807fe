"""Replica acks through a real ``ige serve`` (``IGE_REDIS_REPLICA_ACKS=1``) on a real master
with a real replica (tests/replicas.py): an acknowledged offer is on the replica; with the
replica frozen an offer or a revision is 503 ``replication_pending`` with Retry-After, never a
2xx; the retry with the same Idempotency-Key once the replica is back answers the first result,
and the book holds that offer once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auction.redis.keys import round_keys
from tests.replicas import MasterReplica, master_replica
from tests.support import OFFER_BODY, Api

pytestmark = pytest.mark.slow

#: a loose bound only: the frozen replica must fail the request at about WAIT's timeout (1 s
#: here), not hang it until IGE_REDIS_TIMEOUT (5 s)
HANG_S = 4.5


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[MasterReplica]:
    yield from master_replica(tmp_path / "redis")


def replication_pending(r: httpx.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "replication_pending", r.text
    assert int(r.headers["Retry-After"]) >= 1


def test_offers_wait_for_the_replica_and_a_retry_after_it_is_back_is_the_first_result(
        server_factory: Callable[..., Any], pair: MasterReplica) -> None:
    srv = server_factory(redis=pair.url, IGE_REDIS_REPLICA_ACKS="1",
                         IGE_REDIS_REPLICA_TIMEOUT="1")
    api = Api(srv.base_url)
    h = api.bank_token(api.create_bank())
    rid = api.open_round()["round_id"]
    url = f"/v1/bank/rounds/{rid}/offers"
    replica = pair.replica_client()
    try:
        first = api.http.post(url, json=OFFER_BODY, headers={**h, "Idempotency-Key": "k-1"})
        assert first.status_code == 201, first.text
        oid = first.json()["offer_id"]
        assert replica.hexists(round_keys(rid).offers, oid)  # acknowledged: replicated

        pair.freeze()
        t0 = time.monotonic()
        away = api.http.post(url, json={**OFFER_BODY, "annual_rate": "30.00"},
                             headers={**h, "Idempotency-Key": "k-2"})
        replication_pending(away)
        assert time.monotonic() - t0 < HANG_S
        revised = api.http.put(f"{url}/{oid}", json={**OFFER_BODY, "annual_rate": "31.00"},
                               headers={**h, "Idempotency-Key": "k-3"})
        replication_pending(revised)
        # still away: the retry is not acknowledged either
        replication_pending(api.http.post(url, json={**OFFER_BODY, "annual_rate": "30.00"},
                                          headers={**h, "Idempotency-Key": "k-2"}))
        pair.thaw()

        again = api.http.post(url, json={**OFFER_BODY, "annual_rate": "30.00"},
                              headers={**h, "Idempotency-Key": "k-2"})
        assert again.status_code == 201, again.text
        rev_again = api.http.put(f"{url}/{oid}", json={**OFFER_BODY, "annual_rate": "31.00"},
                                 headers={**h, "Idempotency-Key": "k-3"})
        assert rev_again.status_code == 200, rev_again.text
        assert rev_again.json()["version"] == 2
        # the first result: the same answer as a further retry, and the book has it once
        once_more = api.http.post(url, json={**OFFER_BODY, "annual_rate": "30.00"},
                                  headers={**h, "Idempotency-Key": "k-2"})
        assert once_more.content == again.content
        book = api.http.get(f"/v1/bank/rounds/{rid}/book", headers=h)
        assert book.status_code == 200, book.text
        mine = sorted((o["offer_id"], o["version"]) for o in book.json()["offers"])
        assert mine == sorted([(oid, 2), (again.json()["offer_id"], 1)])
        assert book.json()["seq"] == 3  # first offer, the offer that waited, the revision
        assert replica.hlen(round_keys(rid).offers) == 2
    finally:
        replica.close()
