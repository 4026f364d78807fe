"""The live book on Redis: one Lua script per command (auction/lua/*.lua).

Every key of a round carries the hash tag ``{round_id}`` so a round lives in one slot and the
engine runs unchanged on Redis Cluster. Global keys (the deadline index) are touched only
outside the scripts. Scripts use EVALSHA (Redis 6.2 and 7.x; no Redis Functions).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from redis.asyncio import Redis

from auction.book import BookView, Event, parse_event, parse_record, record_json, record_tail, event_json
from auction.model import CloseResult, OfferTerms, OfferVersion, Outcome, RoundState, RoundTerms, SubmitResult
from auction.rules import KEY_WIDTH, label_pool

CHANNEL = "ige:events"
DEADLINES = "ige:deadlines"
IDEMPOTENCY_TTL_S = 24 * 3600


def keys(round_id: str) -> dict[str, str]:
    t = "{" + round_id + "}"
    return {s: f"ige:{t}:{s}" for s in ("m", "b", "o", "l", "p", "e")}


def idem_key(round_id: str, scoped_key: str) -> str:
    return f"ige:{{{round_id}}}:i:{scoped_key}"


def _load(name: str) -> str:
    return resources.files("auction").joinpath(f"lua/{name}.lua").read_text()


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisBook:
    def __init__(self, redis: Redis, channel: str = CHANNEL) -> None:
        self.redis = redis
        self.channel = channel
        self._submit = redis.register_script(_load("submit"))
        self._revise = redis.register_script(_load("revise"))
        self._close = redis.register_script(_load("close"))
        self._book = redis.register_script(_load("book"))
        self._open = redis.register_script(_load("open"))

    # -- commands ---------------------------------------------------------------------
    async def open_round(self, terms: RoundTerms, labels: list[str] | None = None) -> bool:
        meta = {
            "state": "open", "seq": "0", "closes_at": str(terms.closes_at_ms),
            "opened_at": str(terms.opened_at_ms),
        }
        created = await self._run_open(terms.round_id, meta, labels or label_pool(), {}, [], [])
        if created:
            await self.redis.zadd(DEADLINES, {terms.round_id: terms.closes_at_ms})
        return created

    async def restore(self, round_id: str, state: RoundState, closes_at_ms: int,
                      opened_at_ms: int, closed_at_ms: int, labels_in_use: dict[str, str],
                      unused_labels: list[str], offers: list[OfferVersion],
                      events: list[Event]) -> bool:
        """Rebuild a round that Redis lost, from SQL. No-op when the round still exists."""
        seq = max((e.seq for e in events), default=0)
        meta = {"state": state.value if state is RoundState.OPEN else "closed", "seq": str(seq),
                "closes_at": str(closes_at_ms), "opened_at": str(opened_at_ms)}
        if closed_at_ms:
            meta["closed_at"] = str(closed_at_ms)
        created = await self._run_open(
            round_id, meta, unused_labels, labels_in_use, [record_json(o) for o in offers],
            [[e.seq, event_json(e)] for e in events])
        if created and state is RoundState.OPEN:
            await self.redis.zadd(DEADLINES, {round_id: closes_at_ms})
        return created

    async def _run_open(self, round_id: str, meta: dict[str, str], pool: list[str],
                        labels: dict[str, str], recs: list[str], evs: list[list[object]]) -> bool:
        k = keys(round_id)
        res = await self._open(
            keys=[k["m"], k["b"], k["o"], k["l"], k["p"], k["e"]],
            args=[json.dumps(meta), json.dumps(pool), json.dumps(labels), json.dumps(recs),
                  json.dumps(evs)])
        return bool(int(res))

    async def submit(self, round_id: str, bank_id: str, offer_id: str, ref: str,
                     terms: OfferTerms, apr_e4: int, idem: tuple[str, str] | None = None
                     ) -> SubmitResult:
        k = keys(round_id)
        prefix = f"{apr_e4:0{KEY_WIDTH}d}{terms.annual_rate_e4:0{KEY_WIDTH}d}"
        res = await self._submit(
            keys=[k["m"], k["b"], k["o"], k["l"], k["p"], k["e"],
                  idem_key(round_id, idem[0]) if idem else k["m"]],
            args=[round_id, bank_id, offer_id, ref, prefix, record_tail(terms, apr_e4),
                  idem[1] if idem else "", IDEMPOTENCY_TTL_S, self.channel])
        return await self._result(round_id, res, terms, apr_e4, bank_id)

    async def revise(self, round_id: str, bank_id: str, offer_id: str, terms: OfferTerms,
                     apr_e4: int, idem: tuple[str, str] | None = None) -> SubmitResult:
        k = keys(round_id)
        prefix = f"{apr_e4:0{KEY_WIDTH}d}{terms.annual_rate_e4:0{KEY_WIDTH}d}"
        res = await self._revise(
            keys=[k["m"], k["b"], k["o"], k["e"],
                  idem_key(round_id, idem[0]) if idem else k["m"]],
            args=[round_id, bank_id, offer_id, prefix, record_tail(terms, apr_e4),
                  idem[1] if idem else "", IDEMPOTENCY_TTL_S, self.channel])
        return await self._result(round_id, res, terms, apr_e4, bank_id)

    @staticmethod
    async def _result(round_id: str, res: list[Any], terms: OfferTerms, apr_e4: int,
                      bank_id: str) -> SubmitResult:
        code = Outcome(int(res[0]))
        if code not in (Outcome.OK, Outcome.IDEMPOTENCY_REPLAY):
            return SubmitResult(code)
        # A replay carries the same body (same hash), hence the same terms and apr.
        v = OfferVersion(round_id, _s(res[6]), _s(res[7]), bank_id, _s(res[5]), int(res[3]),
                         int(res[1]), int(res[2]), apr_e4, terms)
        return SubmitResult(code, v, int(res[4]) or None)

    async def close(self, round_id: str) -> CloseResult:
        k = keys(round_id)
        res = await self._close(keys=[k["m"], k["e"]], args=[round_id, self.channel])
        code = Outcome(int(res[0]))
        if code in (Outcome.OK, Outcome.ALREADY_CLOSED):
            view = await self.view(round_id)
            offers = view.offers if view else []
            return CloseResult(code, int(res[1]), int(res[2] or 0), offers)
        if code is Outcome.NOT_DUE:
            return CloseResult(code, int(res[1]))
        return CloseResult(code)

    async def view(self, round_id: str, viewer_bank_id: str = "") -> BookView | None:
        k = keys(round_id)
        res = await self._book(keys=[k["m"], k["b"], k["o"], k["l"]], args=[viewer_bank_id])
        if int(res[0]) != 0:
            return None
        state = RoundState(_s(res[1]))
        label = _s(res[5]) or None
        offers = [parse_record(round_id, r) for r in res[6:]]
        return BookView(round_id, state, int(res[2]), int(res[3]), int(res[4] or 0), label, offers)

    async def events(self, round_id: str, after_seq: int = 0) -> list[Event]:
        got = await self.redis.xrange(keys(round_id)["e"], f"{after_seq + 1}-0", "+")
        return [parse_event(fields[b"d"]) for _, fields in got]

    async def event(self, round_id: str, seq: int) -> Event | None:
        got = await self.redis.xrange(keys(round_id)["e"], f"{seq}-0", f"{seq}-0")
        return parse_event(got[0][1][b"d"]) if got else None

    async def exists(self, round_id: str) -> bool:
        return bool(await self.redis.exists(keys(round_id)["m"]))

    async def has_bid(self, round_id: str, bank_id: str) -> bool:
        return bool(await self.redis.hexists(keys(round_id)["l"], bank_id))

    async def labels(self, round_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys(round_id)["l"])
        return {_s(a): _s(b) for a, b in raw.items()}

    async def unused_labels(self, round_id: str) -> list[str]:
        return [_s(x) for x in await self.redis.lrange(keys(round_id)["p"], 0, -1)]

    async def expire_round(self, round_id: str, seconds: int) -> None:
        """Let a finished round's live keys go once SQL holds everything."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys(round_id).values():
            pipe.expire(key, seconds)
        await pipe.execute()
