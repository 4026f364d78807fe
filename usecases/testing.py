"""For fast tests of the use cases on ``auction.book.MemoryBook``: ``MemoryGuards``, the
reference of the guards port (held to the same contract as ``auction.redis.guards.RedisGuards``,
tests/contract/test_guards_contract.py), and ``memory_deps``, every adapter in memory but SQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from applications import simulated
from auction.book import MemoryBook
from auction.bus import MemoryBus
from persistence.store import Store
from usecases.context import Deps, Policy
from usecases.security import TokenSigner


class MemoryGuards:
    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._records: dict[tuple[str, ...], tuple[Any, int]] = {}  # key -> (value, expires ms)

    def _get(self, key: tuple[str, ...]) -> Any:
        got = self._records.get(key)
        if got is None or got[1] <= self._clock():
            self._records.pop(key, None)
            return None
        return got[0]

    def _put(self, key: tuple[str, ...], value: Any, ttl_ms: int) -> None:
        self._records[key] = (value, self._clock() + ttl_ms)

    # -- stream tickets
    async def issue_ticket(self, ticket: str, holder: str, ttl_s: int) -> None:
        self._put(("ticket", ticket), holder, ttl_s * 1000)

    async def redeem_ticket(self, ticket: str) -> str | None:
        holder = self._get(("ticket", ticket))
        self._records.pop(("ticket", ticket), None)
        return None if holder is None else str(holder)

    # -- browser sessions
    async def put_session(self, key: str, record: str, ttl_s: int) -> None:
        self._put(("session", key), record, max(1, ttl_s) * 1000)

    async def renew_session(self, key: str, record: str, ttl_s: int) -> bool:
        if self._get(("session", key)) is None:
            return False
        self._put(("session", key), record, max(1, ttl_s) * 1000)
        return True

    async def get_session(self, key: str) -> str | None:
        got = self._get(("session", key))
        return None if got is None else str(got)

    async def drop_session(self, key: str) -> None:
        self._records.pop(("session", key), None)

    async def index_session(self, owner: str, key: str, ttl_s: int) -> bool:
        listed = set(self._get(("sessions-of", owner)) or ())
        self._put(("sessions-of", owner), frozenset(listed | {key}), max(1, ttl_s) * 1000)
        return self._get(("revoked", owner)) is None

    async def revoke_sessions(self, owner: str, hold_s: int) -> int:
        self._put(("revoked", owner), "1", hold_s * 1000)
        listed = self._get(("sessions-of", owner)) or ()
        self._records.pop(("sessions-of", owner), None)
        ended = 0
        for key in listed:
            ended += self._get(("session", key)) is not None
            self._records.pop(("session", key), None)
        return ended

    # -- one-time codes
    async def use_code(self, user_id: str, counter: int, ttl_s: int) -> bool:
        key = ("code", user_id, str(counter))
        if self._get(key) is not None:
            return False
        self._put(key, "1", ttl_s * 1000)
        return True

    # -- idempotency records
    async def begin_request(self, actor: str, key: str, request_hash: str, ttl_s: int
                            ) -> dict[str, Any] | None:
        k = ("idem", actor, key)
        prev = self._get(k)
        if prev is not None:
            return dict(prev)
        self._put(k, {"h": request_hash, "pending": True}, ttl_s * 1000)
        return None

    async def finish_request(self, actor: str, key: str, request_hash: str, status: int,
                             body: Any, ttl_s: int) -> None:
        self._put(("idem", actor, key), {"h": request_hash, "status": status, "body": body},
                  ttl_s * 1000)

    async def abandon_request(self, actor: str, key: str) -> None:
        self._records.pop(("idem", actor, key), None)

    # -- locks
    async def acquire(self, kind: str, ident: str, token: str, ttl_ms: int) -> bool:
        if self._get(("lock", kind, ident)) is not None:
            return False
        self._put(("lock", kind, ident), token, ttl_ms)
        return True

    async def hold(self, kind: str, ident: str, token: str, ttl_ms: int) -> bool:
        holder = self._get(("lock", kind, ident))
        if holder is not None and holder != token:
            return False
        self._put(("lock", kind, ident), token, ttl_ms)
        return True

    async def release(self, kind: str, ident: str, token: str) -> bool:
        if self._get(("lock", kind, ident)) != token:
            return False
        del self._records[("lock", kind, ident)]
        return True

    async def hold_many(self, kind: str, idents: Sequence[str], token: str, ttl_ms: int
                        ) -> list[bool]:
        return [await self.hold(kind, ident, token, ttl_ms) for ident in idents]

    async def acquire_many(self, kind: str, idents: Sequence[str], token: str, ttl_ms: int
                           ) -> list[bool]:
        return [await self.acquire(kind, ident, token, ttl_ms) for ident in idents]

    async def release_many(self, kind: str, idents: Sequence[str], token: str) -> None:
        for ident in idents:
            await self.release(kind, ident, token)

    # -- the roll of a group of processes
    async def heartbeat(self, group: str, token: str, ttl_ms: int) -> int:
        self._put(("roll", group, token), "1", ttl_ms)
        return self._present(group)

    async def leave(self, group: str, token: str, ttl_ms: int) -> int:
        self._records.pop(("roll", group, token), None)
        return self._present(group)

    def _present(self, group: str) -> int:
        return sum(1 for k in list(self._records)
                   if k[:2] == ("roll", group) and self._get(k) is not None)


def memory_deps(store: Store, clock: Callable[[], int] | None = None,
                policy: Policy | None = None) -> Deps:
    """The use cases' adapters for a fast test: the reference book, bus and guards in memory
    (all on ``clock``), the simulated integrations, and a real SQL ``store``."""
    clock = clock or (lambda: int(time.time() * 1000))
    return Deps(book=MemoryBook(clock), store=store, bus=MemoryBus(),
                guards=MemoryGuards(clock), providers=simulated.providers(),
                tokens=TokenSigner("test-secret-key-for-memory-deps-0123456789"),
                policy=policy or Policy(), clock=clock)
