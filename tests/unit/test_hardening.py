"""Issue #10, the findings a pure test can pin: strict JSON bodies (duplicate keys, NaN, deep
nesting, NUL characters, unknown fields), the media types a route takes, the stream's catch-up
bounded by what it sends (finding 1) and ``round_closed`` held until the results are ready
(finding 9), the hub played with a spy book."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from auction.book import BookHead, BookView, Event, History
from auction.bus import BookChanged, RoundFinalized
from auction.feed import MAX_CATCH_UP, Subscription
from gateway import metrics, serving
from gateway.bounds import media_type_ok
from gateway.connection import Connection
from gateway.contract.errors import InvalidRequest
from gateway.contract.reading import MAX_JSON_DEPTH, decode_json, read
from gateway.contract.requests import LoginBody, OfferTermsBody, RegisterBody
from gateway.settings import Settings
from gateway.stream import Hub
from gateway.tally import Tally
from tests.unit.test_feed import ROUND, TOPIC, history, make_round, view_at
from usecases.security import Principal
from usecases.streaming import RoundSeen


# ----------------------------------------------------------------------------- JSON bodies
def refused(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as e:
        decode_json(raw)
    return e.value


def test_a_key_given_twice_is_malformed_not_last_wins() -> None:
    e = refused(b'{"annual_rate": "30.00", "annual_rate": "1.00"}')
    assert (e.status, e.code) == (400, "malformed_json") and "annual_rate" in e.detail
    e = refused(b'{"company": {"name": "a", "name": "b"}}')
    assert e.code == "malformed_json"


@pytest.mark.parametrize("raw", [b'{"score": NaN}', b'{"score": Infinity}',
                                 b'{"score": -Infinity}', b'{"a": [1, NaN]}'])
def test_nan_and_infinity_are_not_json(raw: bytes) -> None:
    """Finding 6: a NaN in the operator's assessment was stored and broke every pool."""
    assert refused(raw).code == "malformed_json"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 100_000])
def test_deep_nesting_is_malformed_never_a_recursion_error(depth: int) -> None:
    """Finding 7: 100k levels answered 500 with a traceback."""
    assert refused(b"[" * depth + b"]" * depth).code == "malformed_json"
    assert refused(b'{"a":' * depth + b"1" + b"}" * depth).code == "malformed_json"


def test_nesting_up_to_the_limit_is_read() -> None:
    d = MAX_JSON_DEPTH
    assert decode_json(b"[" * d + b"]" * d) is not None


def test_a_nul_character_names_its_field() -> None:
    """Finding 10: NUL characters were stored in names."""
    body = {"full_name": "Ay\u0000şe", "national_id": "10000000146",
            "email": "a@example.com", "mobile": "+905321234567", "password": "correct horse"}
    got = read(RegisterBody, json.dumps(body).encode())
    assert got.model is None and [(e.field, e.code) for e in got.errors] == [
        ("full_name", "invalid")]


def test_unknown_fields_of_the_account_bodies_are_refused() -> None:
    body = {"full_name": "Ayşe Yılmaz", "national_id": "10000000146",
            "email": "a@example.com", "mobile": "+905321234567",
            "password": "correct horse", "is_admin": True}
    got = read(RegisterBody, json.dumps(body).encode())
    assert [(e.field, e.code) for e in got.errors] == [("is_admin", "unknown_field")]
    got2 = read(LoginBody, b'{"email": "a@example.com", "password": "x", "code": "1", "z": 1}')
    assert [(e.field, e.code) for e in got2.errors] == [("z", "unknown_field")]


def test_offers_still_read_as_before() -> None:
    body = {"annual_rate": "31.25", "amount": "1500000.00", "tenor_months": 24,
            "grace_months": 6, "repayment_every_months": 3, "upfront_fee": "0.00",
            "assumes_export_commitment": True, "conditions": ""}
    got = read(OfferTermsBody, json.dumps(body).encode())
    assert got.errors == [] and got.model is not None


@pytest.mark.parametrize(("path", "ctype", "ok"), [
    ("/v1/exporter/register", "application/json", True),
    ("/v1/exporter/register", "application/json; charset=utf-8", True),
    ("/v1/exporter/register", "application/problem+json", True),
    ("/v1/exporter/register", "text/plain", False),
    ("/v1/exporter/register", "application/x-www-form-urlencoded", False),
    ("/v1/exporter/register", "multipart/form-data; boundary=x", False),
    ("/v1/exporter/register", "", False),
    ("/v1/oauth/token", "application/x-www-form-urlencoded", True),
    ("/v1/oauth/token", "text/plain", False),
])
def test_a_body_must_be_of_the_routes_media_type(path: str, ctype: str, ok: bool) -> None:
    """Finding 10: a text/plain register (what a cross-site form can send) succeeded."""
    assert media_type_ok(path, ctype) is ok


# ----------------------------------------------------------------------------- the hub
@dataclass
class SpyBook:
    """Book.history and Book.view over a fixed round, counting what they read."""

    live: list[Event]
    reads: list[tuple[int, int, int]] = field(default_factory=list)  # after, limit, got

    async def history(self, round_id: str, after_seq: int, limit: int) -> History:
        h = history(self.live, after_seq, limit)
        self.reads.append((after_seq, limit, len(h.events)))
        return h

    async def view(self, round_id: str, viewer_bank_id: str = "") -> BookView | None:
        return view_at(self.live, "bank_alpha")

    async def head(self, round_id: str, viewer_bank_id: str = "") -> BookHead | None:
        return view_at(self.live, "bank_alpha").head

    async def has_bid(self, round_id: str, bank_id: str) -> bool:
        return True


class Streaming:
    def __init__(self) -> None:
        self.ready = False

    async def round_seen_by(self, who: Principal, round_id: str) -> RoundSeen:
        return RoundSeen(None, False)

    async def results_ready(self, round_id: str) -> bool:
        return self.ready


class Bus:
    reconnects = 0

    async def watch(self, round_id: str) -> None:
        return None

    async def unwatch(self, round_id: str) -> None:
        return None


def hub_over(live: list[Event]) -> tuple[Hub, SpyBook, Streaming]:
    book, streaming = SpyBook(live), Streaming()
    rt = SimpleNamespace(deps=SimpleNamespace(book=book, clock=lambda: 1_776_781_800_000),
                         portal=SimpleNamespace(streaming=streaming),
                         settings=Settings(queue_size=512), bus=Bus())
    return Hub(rt), book, streaming  # type: ignore[arg-type]


def connection() -> Connection:
    return Connection(None, Principal("admin", "admin"), False,  # type: ignore[arg-type]
                      asyncio.Queue(512))


def frames(conn: Connection) -> list[dict[str, Any]]:
    out = []
    while not conn.queue.empty():
        item = conn.queue.get_nowait()
        frame = getattr(item, "frame", item)
        assert isinstance(frame, str)
        out.append(json.loads(frame))
    return out


async def test_since_seq_far_behind_reads_a_bounded_stretch_of_history_then_a_snapshot() -> None:
    """Finding 1: a subscribe with since_seq replayed the whole history, recomputing the
    ranking after every event (O(n²)). The catch-up now reads at most MAX_CATCH_UP + 1
    events, whatever the round's length, and a subscriber further behind gets a snapshot."""
    live = make_round(5_000)
    hub, book, _ = hub_over(live)
    conn = connection()
    await hub.subscribe(conn, TOPIC, 1)
    got = frames(conn)
    assert [m["type"] for m in got] == ["snapshot"]
    assert got[0]["seq"] == 5_000
    assert len(book.reads) == 1 and book.reads[0][1] <= MAX_CATCH_UP + 1
    assert sum(n for _, _, n in book.reads) <= MAX_CATCH_UP + 1


async def test_since_seq_two_behind_reads_and_sends_two_events() -> None:
    live = make_round(5_000)
    hub, book, _ = hub_over(live)
    conn = connection()
    await hub.subscribe(conn, TOPIC, 4_998)
    assert [(m["type"], m["seq"]) for m in frames(conn)] == [("quote", 4_999), ("quote", 5_000)]
    assert sum(n for _, _, n in book.reads) == 2


async def test_round_closed_reaches_a_round_topic_only_once_the_results_are_ready() -> None:
    """Finding 9: the book's close event (close.lua, at the flip) went out at once, before
    the closing record was in SQL (GET .../result still answered round_open)."""
    live = make_round(3, closed=True)
    hub, _, _ = hub_over(live[:-1])
    conn = connection()
    await hub.subscribe(conn, TOPIC, None)
    assert [m["type"] for m in frames(conn)] == ["snapshot"]
    await hub._dispatch(BookChanged(live[-1]))
    assert frames(conn) == []  # the flip alone: nothing yet
    await hub._dispatch(RoundFinalized(ROUND))
    got = frames(conn)
    assert [(m["type"], m["seq"]) for m in got] == [("round_closed", 4)]
    await hub._dispatch(RoundFinalized(ROUND))  # once only
    assert frames(conn) == []


async def test_a_catch_up_over_the_close_sends_it_only_when_sql_holds_the_results() -> None:
    live = make_round(3, closed=True)
    hub, _, streaming = hub_over(live)
    early = connection()
    await hub.subscribe(early, TOPIC, 2)
    assert [m["type"] for m in frames(early)] == ["quote"]  # seq 3; the close is held
    streaming.ready = True
    late = connection()
    await hub.subscribe(late, TOPIC, 2)
    assert [m["type"] for m in frames(late)] == ["quote", "round_closed"]
    await hub._dispatch(RoundFinalized(ROUND))
    assert [m["type"] for m in frames(early)] == ["round_closed"]


def test_the_feed_holds_a_live_close_until_finalized() -> None:
    live = make_round(2, closed=True)
    sub = Subscription(TOPIC, "bank_alpha")
    sub.start(None)
    sub.on_snapshot(view_at(live[:-1]), 0)
    assert sub.on_live(live[-1]) == []
    assert sub.held is live[-1]
    out = sub.on_finalized()
    assert len(out) == 1 and sub.held is None
    assert sub.on_live(live[-1]) == []  # a duplicate of the close is still dropped


# ----------------------------------------------------------------------------- descriptors
def test_serve_raises_the_descriptor_limit_and_the_connection_cap_follows_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``ige serve`` lifts its soft limit on descriptors to the hard one, and by default caps
    its connections below it (``FD_RESERVE`` kept for Redis, SQL and files); a setting
    overrides the cap, 0 lifts it."""
    import resource

    from gateway.cli import raise_fd_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 2048:
            resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
            assert raise_fd_limit() == (hard, hard)
        assert Settings.from_env({"IGE_DEMO": "1"}).max_connections is None
        assert Settings.from_env({"IGE_DEMO": "1", "IGE_MAX_CONNECTIONS": "0"}
                                 ).max_connections == 0
        monkeypatch.setenv("IGE_DEMO", "1")
        monkeypatch.delenv("IGE_MAX_CONNECTIONS", raising=False)
        resource.setrlimit(resource.RLIMIT_NOFILE, (5000, hard))
        serving.max_connections.cache_clear()
        serving._settings.cache_clear()
        assert serving.max_connections() == 5000 - serving.FD_RESERVE
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        serving.max_connections.cache_clear()
        serving._settings.cache_clear()


# ----------------------------------------------------------------------------- snapshot budget
def test_a_principal_asking_for_snapshots_again_and_again_waits_for_its_budget() -> None:
    """A non-reader asking for the snapshot of a big round again and again (hostile run: two
    thirds of the process's CPU went to it and the other banks' offers waited seconds) gets
    them at the budget's bytes per second once its burst is spent; another principal does not
    wait."""
    from gateway.readbudget import ReadBudget

    now = [0.0]
    b = ReadBudget(rate=1000, burst=3000, clock=lambda: now[0])
    for _ in range(3):  # the burst: three 1,000-byte snapshots at once
        assert b.wait_s("bank:a") == 0
        b.charge("bank:a", 1000)
    b.charge("bank:a", 2000)  # one more read, charged once its size was known
    assert b.wait_s("bank:a") == pytest.approx(2.0)
    assert b.wait_s("bank:b") == 0  # budgets are per principal
    now[0] = 1.0
    assert b.wait_s("bank:a") == pytest.approx(1.0)
    now[0] = 100.0  # refilled, never beyond the burst
    assert b.wait_s("bank:a") == 0
    b.charge("bank:a", 3000)
    assert b.wait_s("bank:a") == 0
    b.charge("bank:a", 1)
    assert b.wait_s("bank:a") > 0
    assert ReadBudget(rate=0, burst=0).wait_s("bank:a") == 0  # 0: no limit


# ----------------------------------------------------------------------------- stream commands
def test_a_connections_commands_are_a_burst_refilled_evenly() -> None:
    from gateway.connection import CommandBudget

    b = CommandBudget(300, 10.0, now=100.0)
    assert all(b.take(100.0) for _ in range(300))  # the burst, at once
    assert not b.take(100.0)  # one more at the same instant: none left
    assert not b.take(100.03)  # 0.03 s refill 0.9 of a token
    assert b.take(100.04) and not b.take(100.04)  # 0.04 s: one token (30 a second)
    assert sum(b.take(105.04) for _ in range(400)) == 150  # 5 s later: 150, not 400
    assert sum(b.take(1000.0) for _ in range(400)) == 300  # a long pause: the burst, no more
    unbounded = CommandBudget(0, 0.0, now=0.0)
    assert all(unbounded.take(0.0) for _ in range(10_000))


def test_the_command_rate_is_read_in_limits_syntax() -> None:
    from gateway.settings import ConfigError

    assert Settings.from_env({"IGE_DEMO": "1"}).ws_command_rate == (300, 10.0)
    rate = Settings.from_env({"IGE_DEMO": "1", "IGE_WS_COMMAND_RATE": "50/second"})
    assert rate.ws_command_rate == (50, 1.0)
    off = Settings.from_env({"IGE_DEMO": "1", "IGE_WS_COMMAND_RATE": "0"})
    assert off.ws_command_rate == (0, 0.0)
    with pytest.raises(ConfigError):
        Settings.from_env({"IGE_DEMO": "1", "IGE_WS_COMMAND_RATE": "lots"})


# ----------------------------------------------------------------------------- TCP refusals
async def test_refusals_are_logged_once_then_counted_per_second(
        caplog: pytest.LogCaptureFixture) -> None:
    tally = Tally("connection_refused", metrics.REFUSED_CONNECTIONS, "reason",
                  interval_s=3600.0)  # flushed by hand below
    with caplog.at_level(logging.INFO):
        for _ in range(500):
            tally.add("evicted")
        tally.add("per_address")
        lines = [r.getMessage() for r in caplog.records if "connection_refused" in
                 r.getMessage()]
        assert len(lines) == 2  # the first of each reason at once
        tally.flush()  # the second ends: the other 499 evictions on one line
        lines = [r.getMessage() for r in caplog.records if "connection_refused" in
                 r.getMessage()]
        assert len(lines) == 3 and "499" in lines[-1] and "evicted" in lines[-1]
        assert tally.timer is not None  # still refusing: the next second is counted
        tally.flush()  # a quiet second: nothing logged, the window closes
        assert tally.timer is None and len([r for r in caplog.records if
                                            "connection_refused" in r.getMessage()]) == 3
        tally.add("evicted")  # the next one after a quiet second: logged at once again
        assert len([r for r in caplog.records if "connection_refused" in
                    r.getMessage()]) == 4
        assert tally.timer is not None
        tally.timer.cancel()
    await asyncio.sleep(0)


# ----------------------------------------------------------------------------- a failing read
@dataclass
class FailingBook(SpyBook):
    """``SpyBook`` whose history read fails ``failures`` times first (Redis failing over, a
    slot migrating)."""

    failures: int = 0

    async def history(self, round_id: str, after_seq: int, limit: int) -> History:
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("a master failing over")
        return await super().history(round_id, after_seq, limit)


def hub_failing(live: list[Event], failures: int) -> tuple[Hub, FailingBook]:
    book = FailingBook(live, failures=failures)
    rt = SimpleNamespace(deps=SimpleNamespace(book=book, clock=lambda: 1_776_781_800_000),
                         portal=SimpleNamespace(streaming=Streaming()),
                         settings=Settings(queue_size=512), bus=Bus())
    return Hub(rt), book  # type: ignore[arg-type]


async def settled(hub: Hub) -> None:
    """Until every read the hub spawned is done."""
    while pending := [t for t in hub._tasks if not t.done()]:
        await asyncio.gather(*pending, return_exceptions=True)


async def test_a_read_failing_for_a_while_is_tried_again(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Found by the Redis Cluster reshard soak: a subscriber's resync read that failed left
    the connection flagged dropped yet open, silent for good. A read that fails is tried
    again; the subscriber gets what it missed, in order."""
    monkeypatch.setattr("gateway.stream.SYNC_RETRY_PAUSES_S", (0.0, 0.0, 0.0), raising=False)
    live = make_round(10)
    hub, book = hub_failing(live, failures=2)
    conn = connection()
    await hub.subscribe(conn, TOPIC, 5)
    await settled(hub)
    got = frames(conn)
    assert [m["seq"] for m in got] == [6, 7, 8, 9, 10] and not conn.dropped
    assert book.failures == 0


async def test_a_read_failing_past_the_retries_closes_the_client_to_resync(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.stream.SYNC_RETRY_PAUSES_S", (0.0, 0.0), raising=False)
    live = make_round(10)
    hub, _ = hub_failing(live, failures=100)
    conn = connection()
    reader = asyncio.create_task(asyncio.sleep(60))  # the reader, waiting on the client
    conn.reader, conn.receiving = reader, True
    await hub.subscribe(conn, TOPIC, 5)
    await settled(hub)
    # closed (SLOW_CLIENT_CLOSE: resync with since_seq), its reader woken, not left open
    assert conn.dropped and conn.slow
    await asyncio.sleep(0)
    assert reader.cancelled()
