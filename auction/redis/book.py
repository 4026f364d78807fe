"""The live book on Redis (``auction.book.Book``): one Lua script per command.

Every key of a round carries its bucket's hash tag (``keys.round_keys``), as do the bucket's
deadline index and dirty-round set, so each script touches one slot and changes a round and
its bucket's indexes atomically. Reads across buckets are pipelined, one command per bucket.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

from redis.commands.core import AsyncScript

from auction.book import BookHead, BookView, Event, History, Idem, RoundSnapshot
from auction.buckets import all_buckets, bucket_of
from auction.model import (
    CloseResult,
    OfferTerms,
    OfferVersion,
    Outcome,
    RoundState,
    RoundTerms,
    SubmitResult,
)
from auction.redis import keys
from auction.redis.acks import ReplicaAcks, always, fence_exchange, script_exchange, then_wait
from auction.redis.envelope import event_json, parse_event, parse_record, record_json, record_tail
from auction.redis.mux import MuxRedis
from auction.redis.scripts import AnyRedis, Scripts, run_many, source
from auction.rules import label_pool

IDEMPOTENCY_TTL_S = 24 * 3600
FENCE_TTL_MS = 3_600_000  # the persister's fence key (``replicated``): kept a while, then gone
_Entries = list[tuple[bytes, dict[bytes, bytes]]]  # XRANGE's answer


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisBook:
    def __init__(self, redis: AnyRedis, channels: keys.Channels | None = None,
                 fast: MuxRedis | None = None, acks: ReplicaAcks | None = None,
                 once: AnyRedis | None = None) -> None:
        """``fast``: the multiplexed connection the bid path's scripts take (submit, revise);
        None: redis-py's, ``once`` (a client that never sends a command again after a failure
        or a timeout: the script may have run; by default ``redis``). ``acks``: an offer is
        answered only once that many replicas have it (``auction.redis.acks``); None: once
        the master has it."""
        self.redis = redis
        self.once = redis if once is None else once
        self.channels = channels or keys.Channels()
        self.scripts = Scripts(redis)
        self.fast = fast
        self.acks = acks

    async def _bid_script(self, name: str, script: AsyncScript, keys: list[str],
                          args: list[str | int]) -> Any:
        """Run a bid script; with replica acks, answer only once it is replicated (a new
        version or a replay: a refusal wrote nothing a bank relies on)."""
        if self.acks is not None:
            if self.fast is not None:
                return await self.fast.evalsha_replicated(script.sha, source(name), keys, args,
                                                          self.acks, _binding)
            # one connection of a single Redis, or to the master of the round's slot; on a
            # NOSCRIPT the very source registered (on a cluster the one that SPUBLISHes: the
            # single-Redis source would PUBLISH, unheard by the shard subscribers, and leave
            # the EVALSHA missing for good)
            return await then_wait(self.redis, keys[0],
                                   script_exchange(script.sha, script.script, keys, args),
                                   self.acks, _binding)
        if self.fast is not None:
            return await self.fast.evalsha(script.sha, source(name), keys, args)
        return await script(keys=keys, args=args, client=self.once)

    async def _script_many(self, name: str, script: AsyncScript,
                           calls: Sequence[tuple[Sequence[str], Sequence[str | int]]]
                           ) -> list[Any]:
        """One script for many rounds in one round trip (the multiplexed connection when
        there is one: its cost per command is a fifth of a redis-py pipeline's)."""
        if not calls:
            return []
        if self.fast is not None:
            return await self.fast.evalsha_many(script.sha, source(name), calls)
        return await run_many(self.redis, [(script, k, a) for k, a in calls])

    # -- a round's live state --------------------------------------------------------------
    async def open_round(self, terms: RoundTerms, labels: Sequence[str] | None = None) -> bool:
        meta = {"state": "open", "seq": "0", "closes_at": str(terms.closes_at_ms),
                "opened_at": str(terms.opened_at_ms), "epoch": secrets.token_hex(8)}
        return await self._run_open(terms.round_id, meta, labels or label_pool(), {}, [], [])

    async def restore(self, snap: RoundSnapshot) -> bool:
        seq = max((e.seq for e in snap.events), default=0)
        state = "open" if snap.state is RoundState.OPEN else "closed"
        meta = {"state": state, "seq": str(seq), "closes_at": str(snap.closes_at_ms),
                "opened_at": str(snap.opened_at_ms), "epoch": secrets.token_hex(8)}
        if snap.closed_at_ms:
            meta["closed_at"] = str(snap.closed_at_ms)
        for bank_id, n in Counter(o.bank_id for o in snap.offers).items():
            meta[f"n:{bank_id}"] = str(n)  # live offers per bank (submit.lua's limit)
        return await self._run_open(
            snap.round_id, meta, snap.unused_labels, snap.labels,
            [record_json(o) for o in snap.offers], [[e.seq, event_json(e)] for e in snap.events])

    async def _run_open(self, round_id: str, meta: dict[str, str], pool: Sequence[str],
                        labels: Mapping[str, str], recs: list[str], evs: list[list[object]]
                        ) -> bool:
        res = await self.scripts.open(
            keys=[*keys.round_keys(round_id), keys.round_deadlines(round_id)],
            args=[json.dumps(meta), json.dumps(list(pool)), json.dumps(dict(labels)),
                  json.dumps(recs), json.dumps(evs), round_id])
        return bool(int(res))

    async def exists(self, round_id: str) -> bool:
        return bool(await self.redis.exists(keys.round_keys(round_id).meta))

    async def retire(self, round_id: str, seconds: int) -> None:
        await self.retire_many([round_id], seconds)

    # -- bidding ---------------------------------------------------------------------------
    async def submit(self, round_id: str, bank_id: str, offer_id: str, ref: str,
                     terms: OfferTerms, apr_e4: int, idem: Idem | None = None,
                     max_offers: int = 0) -> SubmitResult:
        k = keys.round_keys(round_id)
        res = await self._bid_script(
            "submit", self.scripts.submit,
            [*k, keys.offer_idempotency(round_id, idem[0]) if idem else k.meta,
             keys.round_dirty(round_id)],
            [round_id, bank_id, offer_id, ref, apr_e4, terms.annual_rate_e4,
             record_tail(terms, apr_e4), idem[1] if idem else "", IDEMPOTENCY_TTL_S,
             self.channels.round(round_id), max_offers, self._touch])
        return self._result(round_id, res, terms, apr_e4, bank_id)

    async def revise(self, round_id: str, bank_id: str, offer_id: str, terms: OfferTerms,
                     apr_e4: int, idem: Idem | None = None) -> SubmitResult:
        k = keys.round_keys(round_id)
        res = await self._bid_script(
            "revise", self.scripts.revise,
            [k.meta, k.book, k.offers, k.events,
             keys.offer_idempotency(round_id, idem[0]) if idem else k.meta,
             keys.round_dirty(round_id)],
            [round_id, bank_id, offer_id, apr_e4, terms.annual_rate_e4,
             record_tail(terms, apr_e4), idem[1] if idem else "", IDEMPOTENCY_TTL_S,
             self.channels.round(round_id), self._touch])
        return self._result(round_id, res, terms, apr_e4, bank_id)

    @property
    def _touch(self) -> str:
        """The scripts' flag: a replay writes (refreshes its record's expiry) so that the WAIT
        after it covers the first answer's write (``auction.redis.acks``)."""
        return "1" if self.acks is not None else ""

    @staticmethod
    def _result(round_id: str, res: list[Any], terms: OfferTerms, apr_e4: int,
                bank_id: str) -> SubmitResult:
        code = Outcome(int(res[0]))
        if code not in (Outcome.OK, Outcome.IDEMPOTENCY_REPLAY):
            return SubmitResult(code)
        # A replay carries the same body (same hash), hence the same terms and apr.
        v = OfferVersion(round_id, _s(res[6]), _s(res[7]), bank_id, _s(res[5]), int(res[3]),
                         int(res[1]), int(res[2]), apr_e4, terms)
        return SubmitResult(code, v, int(res[4]) or None)

    # -- reading ---------------------------------------------------------------------------
    async def view(self, round_id: str, viewer_bank_id: str = "") -> BookView | None:
        k = keys.round_keys(round_id)
        res = await self.scripts.book(keys=[k.meta, k.book, k.offers, k.labels],
                                      args=[viewer_bank_id, ""])
        if int(res[0]) != 0:
            return None
        offers = [parse_record(round_id, r) for r in res[7:]]
        return BookView(round_id, RoundState(_s(res[1])), int(res[2]), int(res[3]),
                        int(res[4] or 0), _s(res[5]) or None, offers, _s(res[6]))

    async def head(self, round_id: str, viewer_bank_id: str = "") -> BookHead | None:
        k = keys.round_keys(round_id)
        res = await self.scripts.book(keys=[k.meta, k.book, k.offers, k.labels],
                                      args=[viewer_bank_id, "head"])
        if int(res[0]) != 0:
            return None
        return BookHead(round_id, RoundState(_s(res[1])), int(res[2]), int(res[3]),
                        int(res[4] or 0), _s(res[5]) or None, _s(res[6]))

    async def events(self, round_id: str, after_seq: int = 0) -> list[Event]:
        got = await self.redis.xrange(keys.round_keys(round_id).events, f"{after_seq + 1}-0", "+")
        return [parse_event(fields[b"d"]) for _, fields in cast(_Entries, got)]

    async def events_after(self, after: Mapping[str, int], limit: int | None = None
                           ) -> dict[str, list[Event]]:
        if not after:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for rid, seq in after.items():
            pipe.xrange(keys.round_keys(rid).events, f"{seq + 1}-0", "+", count=limit)
        return {rid: [parse_event(fields[b"d"]) for _, fields in cast(_Entries, got)]
                for rid, got in zip(after, await pipe.execute(), strict=True)}

    async def events_at(self, seqs: Mapping[str, int]) -> dict[str, Event | None]:
        if not seqs:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for rid, seq in seqs.items():
            pipe.xrange(keys.round_keys(rid).events, f"{seq}-0", f"{seq}-0")
        return {rid: parse_event(got[0][1][b"d"]) if got else None
                for rid, got in zip(seqs, await pipe.execute(), strict=True)}

    async def event(self, round_id: str, seq: int) -> Event | None:
        got = cast(_Entries, await self.redis.xrange(keys.round_keys(round_id).events,
                                                     f"{seq}-0", f"{seq}-0"))
        return parse_event(got[0][1][b"d"]) if got else None

    async def history(self, round_id: str, after_seq: int, limit: int) -> History:
        k = keys.round_keys(round_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(k.meta, "seq")
        pipe.xrange(k.events, f"{after_seq + 1}-0", "+", count=limit)
        seq, got = await pipe.execute()
        return History(None if seq is None else int(seq),
                       [parse_event(fields[b"d"]) for _, fields in cast(_Entries, got)])

    async def has_bid(self, round_id: str, bank_id: str) -> bool:
        return bool(await self.redis.hexists(keys.round_keys(round_id).labels, bank_id))

    async def have_bid(self, round_ids: Sequence[str], bank_id: str) -> list[bool]:
        if not round_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for rid in round_ids:
            pipe.hexists(keys.round_keys(rid).labels, bank_id)
        return [bool(x) for x in await pipe.execute()]

    async def seqs(self, round_ids: Sequence[str]) -> list[int | None]:
        if not round_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for rid in round_ids:
            pipe.hget(keys.round_keys(rid).meta, "seq")
        return [None if s is None else int(s) for s in await pipe.execute()]

    async def labels(self, round_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.round_keys(round_id).labels)
        return {_s(a): _s(b) for a, b in raw.items()}

    async def unused_labels(self, round_id: str) -> list[str]:
        return [_s(x) for x in await self.redis.lrange(keys.round_keys(round_id).pool, 0, -1)]

    # -- closing ---------------------------------------------------------------------------
    async def due(self, limit: int, buckets: Sequence[int] | None = None) -> list[str]:
        found: list[tuple[float, str]] = []
        for res in await run_many(self.redis, [
                (self.scripts.due, [keys.deadlines(b)], [limit])
                for b in (all_buckets() if buckets is None else buckets)]):
            found += [(float(res[i + 1]), _s(res[i])) for i in range(0, len(res), 2)]
        return [rid for _, rid in sorted(found)[:limit]]

    async def close(self, round_id: str) -> CloseResult:
        k = keys.round_keys(round_id)
        return _close_result(round_id, await self.scripts.close(
            keys=[k.meta, k.events, k.book, k.offers],
            args=[round_id, self.channels.round(round_id)]))

    async def close_many(self, round_ids: Sequence[str]) -> list[CloseResult]:
        calls = []
        for rid in round_ids:
            k = keys.round_keys(rid)
            calls.append(([k.meta, k.events, k.book, k.offers],
                          [rid, self.channels.round(rid)]))
        return [_close_result(rid, res) for rid, res in zip(
            round_ids, await self._script_many("close", self.scripts.close, calls),
            strict=True)]

    async def retire_many(self, round_ids: Sequence[str], seconds: int) -> None:
        await self._script_many("retire", self.scripts.retire, [
            ([keys.round_deadlines(rid), *keys.round_keys(rid)], [rid, seconds])
            for rid in round_ids])

    async def unschedule(self, round_id: str) -> None:
        await self.redis.zrem(keys.round_deadlines(round_id), round_id)

    async def reschedule(self, deadlines: Mapping[str, int]) -> int:
        if not deadlines:
            return 0
        by_bucket: dict[int, dict[str, int]] = {}
        for rid, at in deadlines.items():
            by_bucket.setdefault(bucket_of(rid), {})[rid] = at
        pipe = self.redis.pipeline(transaction=False)
        for b, part in by_bucket.items():
            pipe.zadd(keys.deadlines(b), part, nx=True)
        return sum(int(n) for n in await pipe.execute())

    # -- the persister's work --------------------------------------------------------------
    async def take_dirty(self, buckets: Sequence[int], limit: int) -> list[str]:
        pipe = self.redis.pipeline(transaction=False)
        for b in buckets:
            pipe.spop(keys.dirty(b), limit)
        return [_s(rid) for got in await pipe.execute() for rid in got or ()]

    async def replicated(self, round_ids: Sequence[str]) -> None:
        """With replica acks, return once every write made so far to these rounds is on enough
        replicas: a fence write in each of their buckets' slots, then WAIT on that same
        connection (``auction.redis.acks``); ``ReplicationPending`` (or a Redis error) if not.
        Without replica acks, at once: the book's writes are the master's alone."""
        if self.acks is None or not round_ids:
            return
        acks, now = self.acks, str(int(time.time() * 1000))
        await asyncio.gather(*(
            then_wait(self.redis, keys.fence(b), fence_exchange(keys.fence(b), now, FENCE_TTL_MS),
                      acks, always)
            for b in sorted({bucket_of(rid) for rid in round_ids})))

    async def forget(self, seqs: Mapping[str, int]) -> None:
        """XTRIM MINID ~: only whole stream nodes go (cheap; a few entries before the seq may
        stay), and nothing is written, nor appended to the AOF, when no node is all before it."""
        if not seqs:
            return
        pipe = self.redis.pipeline(transaction=False)
        for rid, seq in seqs.items():
            pipe.xtrim(keys.round_keys(rid).events, minid=f"{seq + 1}-0", approximate=True)
        await pipe.execute()

    async def mark_dirty(self, round_ids: Sequence[str]) -> None:
        if not round_ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for rid in round_ids:
            pipe.sadd(keys.round_dirty(rid), rid)
        await pipe.execute()

    # -- the data set ----------------------------------------------------------------------
    async def intact(self) -> bool:
        # one EXISTS on a single Redis; a cluster client splits it by slot and adds up
        return int(await self.redis.exists(*keys.ALIVE)) == len(keys.ALIVE)

    async def mark_intact(self) -> None:
        now = str(int(time.time() * 1000))
        pipe = self.redis.pipeline(transaction=False)
        for k in keys.ALIVE:
            pipe.set(k, now)
        await pipe.execute()


def _binding(reply: Any) -> bool:
    """Whether a bid script's answer is one a bank may rely on: a new version or a replay."""
    return Outcome(int(reply[0])) in (Outcome.OK, Outcome.IDEMPOTENCY_REPLAY)


def _close_result(round_id: str, res: Any) -> CloseResult:
    """close.lua's answer."""
    code = Outcome(int(res[0]))
    if code in (Outcome.OK, Outcome.ALREADY_CLOSED):
        offers = [parse_record(round_id, r) for r in res[3:]]
        return CloseResult(code, int(res[1]), int(res[2] or 0), offers)
    if code is Outcome.NOT_DUE:
        return CloseResult(code, int(res[1]))
    return CloseResult(code)
