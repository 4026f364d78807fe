"""Crash tests: the core promise under kill -9.

"An acknowledged offer is a commitment. Once the server answers 2xx it is never lost, reordered
or silently changed, whatever process is killed; rounds close exactly once."

Every test runs its own redis-server (AOF, ``appendfsync always``) in ``tmp_path`` and real
``ige serve`` processes, kills something with SIGKILL in the middle of a burst of bids, and then
compares three records of the same history:

- what the clients were told (every request and its answer, 2xx or not),
- the live book (``GET /v1/bank/rounds/{id}/book`` for each bank, Redis underneath),
- SQL (the SQLite file read directly with ``sqlite3``).

Every request carries a unique ``conditions`` text (its *tag*), so each SQL row names the one
request that wrote it. What is asserted for every round (``assert_history_durable``):

1. SQL seqs are exactly 1..n: no gap, no duplicate, and n is the live book's seq;
2. each offer's versions are 1..k in seq order; (offer_id, version) is unique;
3. every 2xx answer is in SQL exactly once with the same offer_id, version and seq and the
   terms that were sent;
4. no request was applied twice (every tag at most once) and nothing was invented (every tag
   is a request that was sent). A row whose request got no answer or a 5xx is allowed: the
   outcome of such a request is unknown to the client, it was applied or not, never twice;
   a request answered 4xx is never in SQL;
5. the audit trail has one offer_submitted/offer_revised row per SQL version;
6. the live book equals SQL's latest version of every offer (offer_id, version, terms), so the
   book holds every acknowledged offer at its last acknowledged version or a later one;
7. never reordered: if one request was acknowledged before another was first sent, the first
   has the lower seq (and the retries of one request all report the same offer_id, version
   and seq: an Idempotency-Key replay survives the crash too).

Closing (``assert_closed_exactly_once``): one round_closings row and one round_closed audit
row per round, valid and unique reference numbers, final_seq = last quote + 1 in SQL and Redis,
binding offers = every offer's latest version in rank order, every 2xx accepted before the
deadline and every request sent after it answered 409 round_closed.

Redis losing its data set (FLUSHALL, a replaced Redis without AOF) loses what had not reached
SQL yet: that is outside the promise. What is asserted there is that the rebuilt round equals
SQL and carries on from it as one history.

Run with ``-s`` to see each test's numbers (requests, acknowledged, unknown outcomes, kills).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis as redis_sync

from auction.buckets import BUCKETS
from auction.redis import scripts
from auction.redis.keys import bucket_lease, close_claim, round_deadlines, round_keys
from gateway.redis_server import RedisServer
from persistence.db import migrate
from persistence.reference import is_valid_reference
from tests.support import HTTP, OFFER_BODY, ROUND_BODY, Api, checked_client, sqlite_url

pytestmark = pytest.mark.slow

CLOSE_LUA = scripts.source("close")


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, durable redis-server this test may kill -9 and restart (same dir and port)."""
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(server_factory: Callable[..., Any]) -> Callable[..., Any]:
    """The servers of these tests take every offer they are sent: the bursts send many new
    offers per bank and round, past the default IGE_MAX_OFFERS_PER_BANK of 5."""
    def factory(*args: Any, **env: str) -> Any:
        return server_factory(*args, **{"IGE_MAX_OFFERS_PER_BANK": "0", **env})
    return factory


@pytest.fixture
def shared_db(tmp_path: Path) -> tuple[str, Path]:
    """One migrated SQLite file for several gateway processes: (url, path)."""
    url = sqlite_url(tmp_path)
    migrate(url)
    return url, Path(url.removeprefix("sqlite:///"))


def rconn(srv: RedisServer) -> redis_sync.Redis:
    return redis_sync.Redis.from_url(srv.url, socket_timeout=5)


def query(db: Path | str, sql: str, *args: Any) -> list[Any]:
    """Rows (by column name) of ``sql`` (``?`` placeholders) on the SQLite file ``db``, or on
    the PostgreSQL database of the URL ``db`` (tests/e2e/test_faults.py)."""
    if isinstance(db, str):
        return pg_query(db, sql, *args)
    con = sqlite3.connect(db, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return list(con.execute(sql, args))
    finally:
        con.close()


def pg_query(url: str, sql: str, *args: Any) -> list[Any]:
    import asyncio

    import asyncpg

    parts = sql.split("?")
    numbered = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))

    async def run() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return list(await conn.fetch(numbered, *args, timeout=30))
        finally:
            await conn.close()

    return asyncio.run(run())


# ----------------------------------------------------------------------------- banks, rounds
@dataclass
class Bank:
    code: str
    bank_id: str
    headers: dict[str, str]


def make_banks(api: Api, n: int = 3) -> list[Bank]:
    out = []
    for i in range(n):
        creds = api.create_bank(f"BANK{i}")
        out.append(Bank(creds["bank_code"], creds["bank_id"], api.bank_token(creds)))
    return out


def closes_at_ms(db: Path, rid: str) -> int:
    return int(query(db, "SELECT closes_at FROM rounds WHERE id = ?", rid)[0]["closes_at"])


def iso_ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


# ----------------------------------------------------------------------------- the burst
@dataclass
class Attempt:
    """One HTTP try. Tries of one logical request share its tag (and Idempotency-Key)."""

    tag: str  # unique ``conditions`` text: names the SQL row this request wrote, if any
    round_id: str
    bank: Bank
    target: str | None  # offer_id revised (PUT), None for a new offer (POST)
    rate_cents: int  # annual_rate x 100
    t_sent: float
    status: int = 0  # 0: no HTTP answer (connection refused or reset, timeout)
    body: dict[str, Any] = field(default_factory=dict)
    t_done: float = 0.0
    keyed: bool = False  # sent with Idempotency-Key = tag
    retry_after: str | None = None  # the answer's Retry-After header
    media_type: str = ""  # the answer's Content-Type

    @property
    def acked(self) -> bool:
        return 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        """A definite answer that nothing was written."""
        return 400 <= self.status < 500

    @property
    def unknown(self) -> bool:
        return self.status == 0 or self.status >= 500


class Burst:
    """Client threads bidding until stopped: one thread per (bank, round) pair, each submits new
    offers and revises its own acknowledged ones, and records every try and answer.

    Even threads behave like careful bank clients: every request carries an Idempotency-Key and
    is retried with it after a 5xx or a lost connection until it gets a definite answer. Odd
    threads fire and forget: a 5xx or a lost connection leaves the outcome unknown. A thread
    whose gateway stops answering fails over to the next one in ``bases``."""

    MAX_PER_THREAD = 2000
    MAX_TRIES = 60

    def __init__(self, bases: list[str], banks: list[Bank], round_ids: list[str],
                 pace_s: float = 0.0) -> None:
        self.bases = bases
        self.pairs = [(b, rid) for b in banks for rid in round_ids]
        self.pace_s = pace_s
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True)
                        for i in range(len(self.pairs))]

    def __enter__(self) -> Burst:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a client thread hung"

    def acked(self) -> int:
        with self.lock:
            return sum(a.acked for a in self.attempts)

    def wait_acked(self, more: int, timeout: float) -> None:
        """Until ``more`` further requests were acknowledged (bounded by ``timeout``)."""
        goal, deadline = self.acked() + more, time.monotonic() + timeout
        while self.acked() < goal and time.monotonic() < deadline:
            time.sleep(0.02)

    def _work(self, w: int) -> None:
        bank, rid = self.pairs[w]
        rng = random.Random(w)
        base_i = w % len(self.bases)
        keyed = w % 2 == 0
        mine: list[str] = []
        with checked_client(timeout=15) as http:
            for i in range(self.MAX_PER_THREAD):
                if self.stopping.is_set():
                    return
                rate = rng.randint(3000, 4800)
                target = rng.choice(mine) if mine and rng.random() < 0.6 else None
                tag = f"w{w}-{i}"
                body = {**OFFER_BODY, "annual_rate": f"{rate // 100}.{rate % 100:02d}",
                        "conditions": tag}
                headers = {**bank.headers, **({"Idempotency-Key": tag} if keyed else {})}
                for _ in range(self.MAX_TRIES if keyed else 1):
                    a = Attempt(tag, rid, bank, target, rate, time.time(), keyed=keyed)
                    base = self.bases[base_i % len(self.bases)]
                    url = f"{base}/v1/bank/rounds/{rid}/offers"
                    try:
                        if target is None:
                            r = http.post(url, json=body, headers=headers)
                        else:
                            r = http.put(f"{url}/{target}", json=body, headers=headers)
                        a.status = r.status_code
                        a.retry_after = r.headers.get("retry-after")
                        a.media_type = r.headers.get("content-type", "")
                        a.body = r.json() if r.content else {}
                    except httpx.HTTPError as e:
                        a.body = {"error": repr(e)}
                        base_i += 1  # this gateway may be gone: fail over
                    except ValueError:
                        a.body = {"error": "not json"}
                    a.t_done = time.time()
                    with self.lock:
                        self.attempts.append(a)
                    if not a.unknown:
                        break
                    time.sleep(0.05)  # a client's backoff while something is down
                    if self.stopping.is_set():
                        break
                if a.acked and target is None:
                    mine.append(a.body["offer_id"])
                if self.pace_s:
                    time.sleep(self.pace_s)


# ----------------------------------------------------------------------------- waiting
def wait_for(what: str, cond: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except (redis_sync.RedisError, sqlite3.OperationalError, httpx.HTTPError, OSError,
                asyncpg.PostgresError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def wait_persisted(srv: RedisServer, db: Path, round_ids: list[str], timeout: float = 25
                   ) -> dict[str, int]:
    """Until SQL's persisted_seq equals the live seq of every round; returns the seqs."""
    def caught_up() -> dict[str, int] | None:
        r = rconn(srv)
        live = {rid: int(r.hget(round_keys(rid).meta, "seq") or -1) for rid in round_ids}
        got = {row["id"]: row["persisted_seq"] for row in query(
            db, "SELECT id, persisted_seq FROM rounds")}
        return live if all(got.get(rid) == s for rid, s in live.items()) else None

    return wait_for("the persister to catch up", caught_up, timeout)  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- the checks
VERSION_COLS = ("seq, offer_id, version, bank_id, apr_e4, annual_rate_e4, amount, tenor_months, "
                "grace_months, repayment_every_months, upfront_fee, assumes_export_commitment, "
                "conditions")


def sql_versions(db: Path, rid: str) -> list[sqlite3.Row]:
    return query(db, f"SELECT {VERSION_COLS} FROM offer_versions WHERE round_id = ? ORDER BY seq",
                 rid)


def assert_history_durable(db: Path, rid: str, attempts: list[Attempt], quote_seqs: int) -> None:
    """Points 1-5 and 7 of the module docstring for one round (quote_seqs: its quotes)."""
    rows = sql_versions(db, rid)
    tries: dict[str, list[Attempt]] = defaultdict(list)
    for a in attempts:
        if a.round_id == rid:
            tries[a.tag].append(a)
    # 1. seqs 1..n, n = the live book's
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1)), "gap or duplicate in seq"
    assert len(rows) == quote_seqs
    # 2. versions 1..k per offer, in seq order
    per_offer: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        per_offer[r["offer_id"]].append(r["version"])
    for oid, versions in per_offer.items():
        assert versions == list(range(1, len(versions) + 1)), f"{oid}: versions {versions}"
    # 4. at most once, nothing invented, nothing refused
    tags = Counter(r["conditions"] for r in rows)
    twice = {t: n for t, n in tags.items() if n > 1}
    assert not twice, f"requests applied more than once: {twice}"
    invented = [t for t in tags if t not in tries]
    assert not invented, f"SQL rows no request wrote: {invented}"
    refused = [(t, [(a.status, a.body) for a in tries[t]]) for t in tags
               if any(a.refused for a in tries[t])]
    assert not refused, f"requests answered 4xx yet written: {refused}"
    # 3. every 2xx exactly as acknowledged; the retries of one request agree
    row_of = {r["conditions"]: r for r in rows}
    acked: list[tuple[float, float, int]] = []  # (first sent, acknowledged, seq) per request
    for tag, ts in tries.items():
        oks = [a for a in ts if a.acked]
        if not oks:
            continue
        assert not any(a.refused for a in ts), (tag, [(a.status, a.body) for a in ts])
        r = row_of.get(tag)
        assert r is not None, f"acknowledged {tag} {oks[0].body} is not in SQL"
        a = oks[0]
        for other in oks:
            assert (other.body["offer_id"], other.body["version"], other.body["seq"]) == (
                a.body["offer_id"], a.body["version"], a.body["seq"]), f"{tag}: replay differs"
        got = (r["offer_id"], r["version"], r["seq"], r["bank_id"])
        assert got == (a.body["offer_id"], a.body["version"], a.body["seq"], a.bank.bank_id), tag
        assert a.target is None or a.target == r["offer_id"]
        assert a.body["conditions"] == tag
        assert (r["annual_rate_e4"], r["amount"], r["tenor_months"], r["grace_months"],
                r["repayment_every_months"], r["upfront_fee"], bool(r["assumes_export_commitment"])
                ) == (a.rate_cents * 100, 500_000_000, 24, 6, 3, 0, True), tag
        acked.append((min(x.t_sent for x in ts), a.t_done, r["seq"]))
    # 5. one audit row per version
    audit = query(db, "SELECT count(*) AS n FROM audit_log WHERE round_id = ? AND action IN "
                      "('offer_submitted', 'offer_revised')", rid)[0]["n"]
    assert audit == len(rows)
    # 7. never reordered: a request acknowledged before another was first sent has a lower seq
    by_done = sorted(acked, key=lambda x: x[1])
    highest, j = 0, 0
    for first_sent, _, seq in sorted(acked):
        while j < len(by_done) and by_done[j][1] < first_sent:
            highest = max(highest, by_done[j][2])
            j += 1
        assert seq > highest, f"seq {seq} was acknowledged after seq {highest}, yet comes first"


def assert_unavailable_answers(attempts: list[Attempt]) -> int:
    """Every 5xx is 503 ``unavailable`` as an RFC 9457 problem with a Retry-After (what a
    backing service's outage answers: the client retries, with its Idempotency-Key); every
    request got an HTTP answer. Returns how many 503s there were."""
    n = 0
    for a in attempts:
        assert a.status != 0, f"{a.tag}: no HTTP answer from a live gateway: {a.body}"
        if a.status < 500:
            continue
        assert a.status == 503, (a.tag, a.status, a.body)
        assert a.media_type.startswith("application/problem+json"), (a.tag, a.media_type)
        assert (a.body["status"], a.body["code"], a.body["type"]) == (
            503, "unavailable", "https://ige.example/problems/unavailable"), (a.tag, a.body)
        assert a.retry_after is not None and int(a.retry_after) >= 1, (a.tag, a.retry_after)
        n += 1
    return n


def latest_in_sql(db: Path, rid: str) -> dict[str, sqlite3.Row]:
    latest: dict[str, sqlite3.Row] = {}
    for r in sql_versions(db, rid):
        latest[r["offer_id"]] = r
    return latest


def assert_book_matches_sql(base: str, db: Path, rid: str, banks: list[Bank], live_seq: int
                            ) -> None:
    """Point 6: each bank's own offers in the live book are SQL's latest versions."""
    latest = latest_in_sql(db, rid)
    seen = 0
    for b in banks:
        r = HTTP.get(f"{base}/v1/bank/rounds/{rid}/book", headers=b.headers, timeout=15)
        if not any(v["bank_id"] == b.bank_id for v in latest.values()):
            assert r.status_code == 403
            continue
        assert r.status_code == 200, r.text
        book = r.json()
        assert book["seq"] == live_seq
        assert len(book["offers"]) == len(latest)
        own = {o["offer_id"]: o for o in book["offers"] if o["mine"]}
        want = {oid: v for oid, v in latest.items() if v["bank_id"] == b.bank_id}
        assert set(own) == set(want)
        for oid, o in own.items():
            v = want[oid]
            assert (o["version"], o["conditions"], o["annual_rate"]) == (
                v["version"], v["conditions"],
                f"{v['annual_rate_e4'] // 10000}.{v['annual_rate_e4'] // 100 % 100:02d}")
        seen += len(own)
    assert seen == len(latest)


def summarize(name: str, burst: Burst, db: Path, **more: Any) -> None:
    """One line of numbers per test (visible with -s)."""
    tries: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for a in burst.attempts:
        tries[(a.round_id, a.tag)].append(a)
    acked = [ts for ts in tries.values() if any(a.acked for a in ts)]
    unknown = {k for k, ts in tries.items() if all(a.unknown for a in ts)}
    written = {(r["round_id"], r["conditions"]) for r in query(
        db, "SELECT round_id, conditions FROM offer_versions")}
    c = Counter("2xx" if a.acked else "none" if a.status == 0 else str(a.status)
                for a in burst.attempts)
    print(f"\n{name}: {len(tries)} requests in {len(burst.attempts)} tries, "
          f"{len(acked)} acknowledged ({sum(ts[0].target is None for ts in acked)} new, "
          f"{sum(ts[0].target is not None for ts in acked)} revisions, "
          f"{sum(len(ts) > 1 for ts in acked)} after a retry), "
          f"{len(unknown)} left unknown ({len(unknown & written)} of them applied); "
          f"answers {dict(c)}" + "".join(f", {k}={v}" for k, v in more.items()))


# ----------------------------------------------------------------------------- 1. Redis dies
def test_redis_killed_mid_burst_loses_no_acknowledged_offer(own_redis, shared_db, server_factory):
    """Six client threads (3 banks x 2 rounds) bid while Redis is killed -9 twice and restarted
    from its AOF: every 2xx survives in the book and in SQL, in order, once; every request the
    outages met is answered 503 ``unavailable`` with Retry-After (never a 2xx lost after)."""
    url, db = shared_db
    srv = server_factory(database_url=url, redis=own_redis.url)
    api = Api(srv.base_url)
    banks = make_banks(api)
    rounds = [api.open_round()["round_id"] for _ in range(2)]

    outages = (0.2, 1.5)  # seconds between kill -9 and restart
    with Burst([srv.base_url], banks, rounds) as burst:
        burst.wait_acked(60, 10)
        for down_s in outages:
            own_redis.kill()
            time.sleep(down_s)
            own_redis.start()
            burst.wait_acked(60, 15)

    seqs = wait_persisted(own_redis, db, rounds)
    for rid in rounds:
        assert_history_durable(db, rid, burst.attempts, seqs[rid])
        assert_book_matches_sql(srv.base_url, db, rid, banks, seqs[rid])
    assert burst.acked() >= 150
    assert any(a.unknown for a in burst.attempts), "no request met the outages"
    # what the outages answered: 503 + Retry-After, never a dropped connection
    unavailable = assert_unavailable_answers(burst.attempts)
    assert unavailable > 0
    summarize("redis kill -9", burst, db, kills=len(outages), answered_503=unavailable)


# ----------------------------------------------------------------------------- 2. a gateway dies
def test_gateway_killed_mid_burst_other_process_persists_everything(own_redis, shared_db,
                                                                    server_factory):
    """Two gateways on one Redis and one SQLite file share the buckets of rounds (their worker
    role); one is killed -9 mid-burst. Its clients fail over; the survivor takes its buckets
    over within a lease (5 s) and every 2xx either process gave reaches SQL once, with its
    version history."""
    url, db = shared_db
    r = rconn(own_redis)

    def holders() -> list[bytes | None]:
        return [r.get(bucket_lease(b)) for b in range(BUCKETS)]

    a = server_factory(database_url=url, redis=own_redis.url)
    token_a = wait_for("gateway A to hold every bucket",
                       lambda: len(set(holders())) == 1 and holders()[0], 10)
    b = server_factory(database_url=url, redis=own_redis.url)
    api = Api(b.base_url)
    banks = make_banks(api)
    rounds = [api.open_round()["round_id"] for _ in range(2)]

    with Burst([a.base_url, b.base_url], banks, rounds) as burst:
        burst.wait_acked(150, 15)
        wait_for("the two gateways to share the buckets",
                 lambda: len(set(holders())) == 2 and None not in holders(), 15)
        token_b = next(t for t in holders() if t != token_a)
        a.kill()
        killed_at = time.monotonic()
        burst.wait_acked(150, 15)

    seqs = wait_persisted(own_redis, db, rounds, timeout=30)
    wait_for("B to take every bucket over", lambda: set(holders()) == {token_b}, 15)
    takeover_s = time.monotonic() - killed_at
    for rid in rounds:
        assert_history_durable(db, rid, burst.attempts, seqs[rid])
        assert_book_matches_sql(b.base_url, db, rid, banks, seqs[rid])
    summarize("gateway kill -9", burst, db, kills=1, caught_up_s=round(takeover_s, 1))


# ----------------------------------------------------------------------------- 3. closing
def assert_closed_exactly_once(db: Path, srv: RedisServer, rounds: list[str], banks: list[Bank],
                               base: str, burst: Burst, killed: bool) -> None:
    refs = []
    r = rconn(srv)
    for rid in rounds:
        closes = closes_at_ms(db, rid)
        closings = query(db, "SELECT * FROM round_closings WHERE round_id = ?", rid)
        assert len(closings) == 1
        c = closings[0]
        refs.append(c["reference_number"])
        assert is_valid_reference(c["reference_number"])
        assert c["closed_at"] >= closes
        audits = query(db, "SELECT detail FROM audit_log WHERE round_id = ? AND "
                           "action = 'round_closed'", rid)
        assert len(audits) == 1
        assert json.loads(audits[0]["detail"])["reference_number"] == c["reference_number"]
        row = query(db, "SELECT state, persisted_seq, closed_at FROM rounds WHERE id = ?", rid)[0]
        assert (row["state"], row["closed_at"]) == ("closed", c["closed_at"])
        # the close is the round's last event: after every quote, persisted, same in Redis
        quotes = sql_versions(db, rid)
        assert c["final_seq"] == len(quotes) + 1 == row["persisted_seq"]
        assert_history_durable(db, rid, burst.attempts, len(quotes))
        meta = r.hgetall(round_keys(rid).meta)
        assert (meta[b"state"], int(meta[b"seq"]), int(meta[b"closed_at"])) == (
            b"closed", c["final_seq"], c["closed_at"])
        assert r.zscore(round_deadlines(rid), rid) is None
        # binding offers: every offer at its latest version, ranked by (apr, rate, seq)
        latest = latest_in_sql(db, rid)
        ranked = sorted(latest.values(), key=lambda v: (v["apr_e4"], v["annual_rate_e4"], v["seq"]))
        binding = query(db, "SELECT offer_id, version, final_rank FROM binding_offers "
                            "WHERE round_id = ? ORDER BY final_rank", rid)
        assert [(x["offer_id"], x["version"], x["final_rank"]) for x in binding] == [
            (v["offer_id"], v["version"], i + 1) for i, v in enumerate(ranked)]
        # what was answered around the deadline
        for a in burst.attempts:
            if a.round_id != rid:
                continue
            if a.acked:
                assert iso_ms(a.body["accepted_at"]) < closes, a.tag
            elif a.t_sent * 1000 > closes + 5 and not (killed and a.status in (0, 503)):
                assert (a.status, a.body.get("code")) == (409, "round_closed"), (a.tag, a.body)
        for bk in banks:
            res = HTTP.get(f"{base}/v1/bank/rounds/{rid}/result", headers=bk.headers, timeout=15)
            if any(v["bank_id"] == bk.bank_id for v in latest.values()):
                assert res.status_code == 200, res.text
                assert res.json()["reference_number"] == c["reference_number"]
    assert len(set(refs)) == len(refs)
    assert len(query(db, "SELECT id FROM round_closings")) == len(rounds)


def test_two_processes_close_each_round_exactly_once(own_redis, shared_db, server_factory):
    """Two gateways' schedulers race to close four 3-second rounds while banks keep bidding
    through the deadlines on both."""
    url, db = shared_db
    env = {"IGE_ROUND_DURATION": "PT3S", "IGE_BINDING_DURATION": "PT60S"}
    a = server_factory(database_url=url, redis=own_redis.url, **env)
    b = server_factory(database_url=url, redis=own_redis.url, **env)
    api = Api(a.base_url)
    banks = make_banks(api)
    rounds = [api.open_round()["round_id"] for _ in range(4)]
    last_close = max(closes_at_ms(db, rid) for rid in rounds) / 1000

    with Burst([a.base_url, b.base_url], banks, rounds, pace_s=0.01) as burst:
        time.sleep(max(0.0, last_close - time.time()) + 1.0)  # bid through every deadline

    wait_for("every round to close in SQL", lambda: len(query(
        db, "SELECT 1 FROM rounds WHERE state = 'closed'")) == len(rounds), 15)
    assert_closed_exactly_once(db, own_redis, rounds, banks, b.base_url, burst, killed=False)
    late = sum(a.status == 409 for a in burst.attempts)
    assert late > 0, "no offer was sent after a deadline"
    summarize("close race", burst, db, rounds=len(rounds), refused_after_deadline=late)


def test_close_interrupted_by_a_crash_is_finished_by_the_other_process(own_redis, shared_db,
                                                                       server_factory, channel):
    """One of two gateways is killed -9 at the first deadline, while the schedulers close
    eight rounds; one more round is left exactly as a close cut short by a crash leaves it
    (claim held, Redis flipped to closed, nothing in SQL). The survivor finishes every close,
    the cut-short one once the dead process's claim expires."""
    url, db = shared_db
    env = {"IGE_ROUND_DURATION": "PT3S", "IGE_BINDING_DURATION": "PT60S"}
    a = server_factory(database_url=url, redis=own_redis.url, **env)
    b = server_factory(database_url=url, redis=own_redis.url, **env)
    api = Api(b.base_url)
    banks = make_banks(api)
    rounds = [api.open_round()["round_id"] for _ in range(8)]
    # The last round is left exactly as a process that dies inside finalize_close leaves it:
    # it holds the close claim, Lua has flipped the round to closed in Redis, SQL knows nothing.
    stuck = rounds[-1]
    r = rconn(own_redis)
    k = round_keys(stuck)
    assert r.set(close_claim(stuck), "1", nx=True, px=10_000)
    first_close = min(closes_at_ms(db, rid) for rid in rounds) / 1000
    last_close = max(closes_at_ms(db, rid) for rid in rounds) / 1000

    with Burst([a.base_url, b.base_url], banks, rounds, pace_s=0.01) as burst:
        time.sleep(max(0.0, first_close - time.time()) + 0.1)
        a.kill()  # while the schedulers are closing the first rounds
        flipped = wait_for("the stuck round to be due", lambda: int(r.eval(
            CLOSE_LUA, 4, k.meta, k.events, k.book, k.offers, stuck, channel)[0]) == 0, 10,
            every=0.02)
        assert flipped
        time.sleep(max(0.0, last_close - time.time()) + 1.0)

    assert query(db, "SELECT state FROM rounds WHERE id = ?", stuck)[0]["state"] == "open"
    wait_for("every round to close in SQL, the stuck one after its claim expired", lambda: len(
        query(db, "SELECT 1 FROM rounds WHERE state = 'closed'")) == len(rounds), 25)
    assert_closed_exactly_once(db, own_redis, rounds, banks, b.base_url, burst, killed=True)
    summarize("close + kill -9", burst, db, rounds=len(rounds), kills=1,
              interrupted_by_hand=1)


def test_rounds_whose_opening_a_redis_crash_cut_short_still_close_exactly_once(
        own_redis, shared_db, server_factory):
    """A round is in SQL before it is in Redis. Opened while Redis is down, the operator gets a
    503 but the round exists: banks see it in the pool and may bid. It must close like any
    other, bids or not; so must a round whose deadline-index entry was lost (a crash between
    open.lua and the ZADD)."""
    url, db = shared_db
    srv = server_factory(database_url=url, redis=own_redis.url, IGE_ROUND_DURATION="PT4S",
                         IGE_BINDING_DURATION="PT60S")
    api = Api(srv.base_url)
    bank = make_banks(api, 1)[0]
    own_redis.kill()
    cut = [api.http.post("/v1/admin/rounds", json=ROUND_BODY, headers=api.admin)
           for _ in range(2)]
    assert [r.status_code for r in cut] == [503, 503]
    own_redis.start()
    orphans = [r["id"] for r in query(db, "SELECT id FROM rounds ORDER BY opened_at")]
    assert len(orphans) == 2
    unindexed = api.open_round()["round_id"]
    assert rconn(own_redis).zrem(round_deadlines(unindexed), unindexed) == 1
    rounds = [*orphans, unindexed]
    res = HTTP.get(f"{srv.base_url}/v1/bank/rounds?state=open", headers=bank.headers)
    assert res.status_code == 200, res.text
    assert {x["round_id"] for x in res.json()["rounds"]} == set(rounds)
    bid = api.offer(bank.headers, orphans[0], conditions="bid on a cut-short round")
    assert bid.status_code == 201, bid.text

    wait_for("every round to close in SQL", lambda: len(query(
        db, "SELECT 1 FROM rounds WHERE state = 'closed'")) == len(rounds), 15)
    refs = set()
    for rid in rounds:
        closings = query(db, "SELECT reference_number, final_seq FROM round_closings "
                             "WHERE round_id = ?", rid)
        assert len(closings) == 1 and is_valid_reference(closings[0]["reference_number"])
        refs.add(closings[0]["reference_number"])
        assert len(query(db, "SELECT 1 FROM audit_log WHERE round_id = ? AND "
                             "action = 'round_closed'", rid)) == 1
        binding = query(db, "SELECT offer_id FROM binding_offers WHERE round_id = ?", rid)
        want = [bid.json()["offer_id"]] if rid == orphans[0] else []
        assert [b["offer_id"] for b in binding] == want
        assert closings[0]["final_seq"] == len(want) + 1
    assert len(refs) == len(rounds)
    assert api.offer(bank.headers, orphans[0]).status_code == 409
    print(f"\ncut-short openings: {len(rounds)} rounds closed exactly once")


# ----------------------------------------------------------------------------- 4. Redis forgets
def test_redis_losing_its_data_set_rebuilds_open_rounds_from_sql(own_redis, shared_db,
                                                                 server_factory):
    """FLUSHALL once everything is in SQL: the persister lease holder rebuilds the open rounds
    from SQL before anyone asks, every bank's book is what it was, and bidding carries on with
    the next seq and the next version."""
    url, db = shared_db
    srv = server_factory(database_url=url, redis=own_redis.url)
    api = Api(srv.base_url)
    banks = make_banks(api)
    rounds = [api.open_round()["round_id"] for _ in range(2)]
    with Burst([srv.base_url], banks, rounds) as burst:
        burst.wait_acked(80, 10)
    seqs = wait_persisted(own_redis, db, rounds)

    def books() -> dict[tuple[str, str], Any]:
        out = {}
        for rid in rounds:
            for bk in banks:
                res = HTTP.get(f"{srv.base_url}/v1/bank/rounds/{rid}/book", headers=bk.headers,
                                timeout=15)
                body = res.json()
                body.pop("server_time", None)
                out[(rid, bk.code)] = (res.status_code, body)
        return out

    before = books()
    r = rconn(own_redis)
    r.flushall()
    # the persister lease holder notices the lost data set and rebuilds before anyone asks
    wait_for("the open rounds to be rebuilt", lambda: all(
        r.exists(round_keys(rid).meta) for rid in rounds), 10, every=0.05)
    assert books() == before
    assert {rid: int(r.hget(round_keys(rid).meta, "seq")) for rid in rounds} == seqs

    # bidding continues: a new offer takes the next seq, a revision the next version
    bk, extra = banks[0], []
    for rid in rounds:
        new = Attempt(f"after-flush-{rid}", rid, bk, None, 2999, time.time())
        res = api.offer(bk.headers, rid, annual_rate="29.99", conditions=new.tag)
        new.status, new.body, new.t_done = res.status_code, res.json(), time.time()
        assert new.status == 201, res.text
        assert new.body["seq"] == seqs[rid] + 1
        oid, v = next((o, x) for o, x in latest_in_sql(db, rid).items()
                      if x["bank_id"] == bk.bank_id)
        rev = Attempt(f"revised-{rid}", rid, bk, oid, 2998, time.time())
        res = api.http.put(f"/v1/bank/rounds/{rid}/offers/{oid}", headers=bk.headers,
                           json={**OFFER_BODY, "annual_rate": "29.98", "conditions": rev.tag})
        rev.status, rev.body, rev.t_done = res.status_code, res.json(), time.time()
        assert rev.status == 200, res.text
        assert (rev.body["version"], rev.body["seq"]) == (v["version"] + 1, seqs[rid] + 2)
        extra += [new, rev]
    seqs2 = wait_persisted(own_redis, db, rounds)
    for rid in rounds:
        assert seqs2[rid] == seqs[rid] + 2
        assert_history_durable(db, rid, burst.attempts + extra, seqs2[rid])
        assert_book_matches_sql(srv.base_url, db, rid, banks, seqs2[rid])
    summarize("flushall", burst, db, rebuilt_rounds=len(rounds))


def test_a_batch_read_before_redis_lost_its_data_never_lands_on_the_rebuilt_round(
        own_redis, shared_db, server_factory):
    """The persister reads a batch from Redis, then waits for SQL's write lock (another writer
    holds it: a close, another process); meanwhile Redis loses its data set, the round is rebuilt
    from SQL and takes a new offer at the next seq. The stale batch must not be written on top:
    SQL and the rebuilt book stay one history and the new 2xx is in SQL at its seq."""
    url, db = shared_db
    srv = server_factory(database_url=url, redis=own_redis.url)
    api = Api(srv.base_url)
    bank = make_banks(api, 1)[0]
    rid = api.open_round()["round_id"]
    attempts: list[Attempt] = []

    def bid(tag: str) -> Attempt:
        a = Attempt(tag, rid, bank, None, 4000, time.time())
        res = HTTP.post(f"{srv.base_url}/v1/bank/rounds/{rid}/offers", headers=bank.headers,
                         json={**OFFER_BODY, "annual_rate": "40.00", "conditions": tag},
                         timeout=30)
        a.status, a.body, a.t_done = res.status_code, res.json(), time.time()
        attempts.append(a)
        return a

    for i in range(3):
        assert bid(f"persisted-{i}").status == 201
    wait_persisted(own_redis, db, [rid])

    lock = sqlite3.connect(db, timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # SQL's write lock, held by "another writer"
    try:
        lost = [bid(f"unpersisted-{i}") for i in range(3)]  # acknowledged, only in Redis
        assert [a.body["seq"] for a in lost] == [4, 5, 6]
        time.sleep(0.5)  # the persister has read seq 4..6 and waits for the lock
        rconn(own_redis).flushall()
        after: list[Attempt] = []
        t = threading.Thread(target=lambda: after.append(bid("after-flush")), daemon=True)
        t.start()
        t.join(0.7)  # the rebuild waits for the lock (without it the bid is already answered)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    t.join(30)
    assert after and after[0].status == 201, after and after[0].body
    assert after[0].body["seq"] == 4  # the rebuilt round continues after what SQL had

    seqs = wait_persisted(own_redis, db, [rid])
    assert seqs[rid] == 4
    # Redis lost seq 4..6 before they reached SQL (no AOF: beyond the promise); they are gone
    # from both records alike, and everything else is one history
    kept = [a for a in attempts if not a.tag.startswith("unpersisted")]
    assert_history_durable(db, rid, kept, 4)
    assert_book_matches_sql(srv.base_url, db, rid, [bank], 4)
    print("\nstale batch after data loss: refused; the rebuilt round carried on at seq 4")
