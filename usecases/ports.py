"""What the use cases need from the outside world besides the book (``auction.book.Book``),
the bus (``auction.bus.Bus``), the SQL store (``persistence.store.Store``) and the
application integrations (``applications.ports.Providers``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

#: the server clock: milliseconds since the epoch, UTC (the only clock outside the book)
Clock = Callable[[], int]


class Guards(Protocol):
    """Short-lived records that guard the use cases (``auction.redis.guards.RedisGuards``;
    ``usecases.testing.MemoryGuards`` is the reference)."""

    # stream tickets: single use
    async def issue_ticket(self, ticket: str, holder: str, ttl_s: int) -> None: ...

    async def redeem_ticket(self, ticket: str) -> str | None: ...

    # browser sessions (``usecases.sessions``): a record under a key, until it expires or is
    # dropped; ``put_session`` also sets a new time to live
    async def put_session(self, key: str, record: str, ttl_s: int) -> None: ...
    # the record replaced and its time to live set again only if it is still there (never a
    # session brought back that a logout ended meanwhile); whether it was
    async def renew_session(self, key: str, record: str, ttl_s: int) -> bool: ...

    async def get_session(self, key: str) -> str | None: ...

    async def drop_session(self, key: str) -> None: ...

    # every session of one person (``owner``: ``kind:user id``), so that all of them can be
    # ended at once: ``index_session`` lists a new session under its owner and says False
    # when the owner's sessions were revoked in the last ``REVOKE_HOLD_S`` (the new session
    # must then be dropped: a sign-in racing a deactivation never outlives it);
    # ``revoke_sessions`` drops every listed session and holds the owner revoked
    async def index_session(self, owner: str, key: str, ttl_s: int) -> bool: ...

    async def revoke_sessions(self, owner: str, hold_s: int) -> int: ...

    # one-time codes: a (user, time step) is accepted once
    async def use_code(self, user_id: str, counter: int, ttl_s: int) -> bool: ...

    # idempotency records of creating requests that are not offers
    async def begin_request(self, actor: str, key: str, request_hash: str, ttl_s: int
                            ) -> dict[str, Any] | None:
        """Take the key (pending, for ``ttl_s``: a bound on the request's run, so that a
        request that never finishes does not hold it longer) or return its record."""
        ...

    async def finish_request(self, actor: str, key: str, request_hash: str, status: int,
                             body: Any, ttl_s: int) -> None: ...

    async def abandon_request(self, actor: str, key: str) -> None: ...

    # locks of a kind ("close": a round's close claim, "group": an application risk group,
    # "bucket": a worker's lease on a bucket of rounds), released only by their holder
    async def acquire(self, kind: str, ident: str, token: str, ttl_ms: int) -> bool: ...

    async def hold(self, kind: str, ident: str, token: str, ttl_ms: int) -> bool:
        """Take the lock if free, or extend it if ``token`` holds it (a lease)."""
        ...

    async def release(self, kind: str, ident: str, token: str) -> bool: ...

    async def hold_many(self, kind: str, idents: Sequence[str], token: str, ttl_ms: int
                        ) -> list[bool]:
        """``hold`` of many locks in one go."""
        ...

    async def acquire_many(self, kind: str, idents: Sequence[str], token: str, ttl_ms: int
                           ) -> list[bool]:
        """``acquire`` of many locks in one go."""
        ...

    async def release_many(self, kind: str, idents: Sequence[str], token: str) -> None:
        """``release`` of many locks in one go."""
        ...

    # the roll of a group of processes ("workers"): who is present
    async def heartbeat(self, group: str, token: str, ttl_ms: int) -> int:
        """``token`` is present (for ``ttl_ms``); returns how many members are present."""
        ...

    async def leave(self, group: str, token: str, ttl_ms: int) -> int:
        """``token`` leaves the group; returns how many members are still present."""
        ...
