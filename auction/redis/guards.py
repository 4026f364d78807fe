"""Short-lived records on Redis that guard the use cases (``usecases.ports.Guards``): stream
tickets, used one-time codes, idempotency records of non-offer requests, locks (close claims,
application group locks, the workers' bucket leases) and the workers' roll. A lock is released
only by its holder (compare-and-delete in ``release.lua``), never by a plain DEL that could
drop another holder's lock after ours expired."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from auction.redis import keys
from auction.redis.scripts import AnyRedis, Scripts, run_many


def _lock_key(kind: str, ident: str) -> str:
    if kind == "close":
        return keys.close_claim(ident)
    if kind == "group":
        return keys.group_lock(ident)
    if kind == "bucket":
        return keys.bucket_lease(int(ident))
    raise ValueError(f"no lock of kind {kind!r}")


def _roll_key(group: str) -> str:
    if group != "workers":
        raise ValueError(f"no roll named {group!r}")
    return keys.WORKERS


class RedisGuards:
    def __init__(self, redis: AnyRedis, once: AnyRedis | None = None) -> None:
        """``once``: the client for a command whose second run answers differently from its
        first (a ticket's GETDEL; a SET NX taking a one-time code, an idempotency key or a
        lock): sent again after a lost answer, it would find what its first run took and
        refuse its own caller. By default ``redis``."""
        self.redis = redis
        self.once = redis if once is None else once
        self.scripts = Scripts(redis)

    # -- stream tickets ----------------------------------------------------------------------
    async def issue_ticket(self, ticket: str, holder: str, ttl_s: int) -> None:
        await self.redis.set(keys.ticket(ticket), holder, ex=ttl_s)

    async def redeem_ticket(self, ticket: str) -> str | None:
        got = await self.once.getdel(keys.ticket(ticket))
        return None if got is None else (got.decode() if isinstance(got, bytes) else str(got))

    # -- browser sessions ----------------------------------------------------------------
    async def put_session(self, key: str, record: str, ttl_s: int) -> None:
        await self.redis.set(keys.session(key), record, ex=max(1, ttl_s))

    async def renew_session(self, key: str, record: str, ttl_s: int) -> bool:
        """SET XX: atomic with a logout's DEL, which a GET then SET was not."""
        return bool(await self.redis.set(keys.session(key), record, ex=max(1, ttl_s), xx=True))

    async def get_session(self, key: str) -> str | None:
        got = await self.redis.get(keys.session(key))
        return None if got is None else (got.decode() if isinstance(got, bytes) else str(got))

    async def drop_session(self, key: str) -> None:
        await self.redis.delete(keys.session(key))

    async def index_session(self, owner: str, key: str, ttl_s: int) -> bool:
        # one transaction: either before a revocation's SMEMBERS (which then ends this
        # session too) or after its marker (which this then sees)
        async with self.redis.pipeline(transaction=True) as p:
            p.sadd(keys.sessions_of(owner), key)
            p.expire(keys.sessions_of(owner), max(1, ttl_s))
            p.exists(keys.sessions_revoked(owner))
            got = await p.execute()
        return not got[2]

    async def revoke_sessions(self, owner: str, hold_s: int) -> int:
        await self.redis.set(keys.sessions_revoked(owner), "1", ex=max(1, hold_s))
        listed = [m.decode() if isinstance(m, bytes) else str(m)
                  for m in await self.redis.smembers(keys.sessions_of(owner))]
        ended = 0
        if listed:
            ended = int(await self.redis.delete(*[keys.session(k) for k in listed]))
        await self.redis.delete(keys.sessions_of(owner))
        return ended

    # -- one-time codes ----------------------------------------------------------------------
    async def use_code(self, user_id: str, counter: int, ttl_s: int) -> bool:
        return bool(await self.once.set(keys.used_code(user_id, counter), "1", nx=True,
                                        ex=ttl_s))

    # -- idempotency records of non-offer requests ---------------------------------------------
    async def begin_request(self, actor: str, key: str, request_hash: str, ttl_s: int
                            ) -> dict[str, Any] | None:
        """None when the key is new (it is now taken, pending); else its record
        ``{"h": hash, "pending": True}`` or ``{"h", "status", "body"}``."""
        k = keys.idempotency(actor, key)
        if await self.once.set(k, json.dumps({"h": request_hash, "pending": True}), nx=True,
                               ex=ttl_s):
            return None
        prev: dict[str, Any] = json.loads(await self.redis.get(k) or "{}")
        return prev

    async def finish_request(self, actor: str, key: str, request_hash: str, status: int,
                             body: Any, ttl_s: int) -> None:
        await self.redis.set(keys.idempotency(actor, key),
                             json.dumps({"h": request_hash, "status": status, "body": body}),
                             ex=ttl_s)

    async def abandon_request(self, actor: str, key: str) -> None:
        await self.redis.delete(keys.idempotency(actor, key))

    # -- locks, claims, leases ---------------------------------------------------------------
    async def acquire(self, kind: str, ident: str, token: str, ttl_ms: int) -> bool:
        return bool(await self.once.set(_lock_key(kind, ident), token, nx=True, px=ttl_ms))

    async def hold(self, kind: str, ident: str, token: str, ttl_ms: int) -> bool:
        """Take the lock if free, or extend it if ``token`` holds it (a lease)."""
        return bool(int(await self.scripts.lease(keys=[_lock_key(kind, ident)],
                                                 args=[token, ttl_ms])))

    async def release(self, kind: str, ident: str, token: str) -> bool:
        return bool(int(await self.scripts.release(keys=[_lock_key(kind, ident)],
                                                   args=[token])))

    async def hold_many(self, kind: str, idents: Sequence[str], token: str, ttl_ms: int
                        ) -> list[bool]:
        if not idents:
            return []
        return [bool(int(x)) for x in await run_many(self.redis, [
            (self.scripts.lease, [_lock_key(kind, ident)], [token, ttl_ms])
            for ident in idents])]

    async def acquire_many(self, kind: str, idents: Sequence[str], token: str, ttl_ms: int
                           ) -> list[bool]:
        if not idents:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for ident in idents:
            pipe.set(_lock_key(kind, ident), token, nx=True, px=ttl_ms)
        return [bool(x) for x in await pipe.execute()]

    async def release_many(self, kind: str, idents: Sequence[str], token: str) -> None:
        if not idents:
            return
        await run_many(self.redis, [(self.scripts.release, [_lock_key(kind, ident)], [token])
                                    for ident in idents])

    # -- the roll of a group of processes --------------------------------------------------
    async def heartbeat(self, group: str, token: str, ttl_ms: int) -> int:
        return int(await self.scripts.crew(keys=[_roll_key(group)], args=[token, ttl_ms, "1"]))

    async def leave(self, group: str, token: str, ttl_ms: int) -> int:
        return int(await self.scripts.crew(keys=[_roll_key(group)], args=[token, ttl_ms, "0"]))
