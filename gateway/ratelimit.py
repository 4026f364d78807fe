"""Rate limits on the routes anyone may call: the token endpoint, registration, activation and
login (``limits``, fixed windows in Redis, so every process of the deployment shares the
counters).

Three rules, each a ``limits`` string from the settings:

* ``per_address``: every call of those routes from one client address (the peer of the TCP
  connection) — a single source cannot make the server hash passwords without end;
* ``per_account``: every attempt on one client id or e-mail, from anywhere — a distributed
  guesser is slowed too; short, so the owner waits at most one window. An address where the
  account succeeded in the last ``KNOWN_S`` is not counted against it: a guesser elsewhere,
  however fast, cannot keep a bank from its tokens (the hostile run: every token the owner
  asked for during a brute force was a 429);
* ``failures``: failed attempts on one account from one address — the counter is taken
  (atomically, in Redis) **before** the secret is checked, so concurrent attempts cannot race
  past it; a success clears it. A guesser is stopped at its own address while the owner,
  elsewhere, logs in as usual: nobody can lock another person out.

A refusal is 429 ``rate_limited`` with ``Retry-After`` (seconds until the window ends).

**A refused caller that keeps calling costs next to nothing.** A process remembers each
counter that Redis refused until its window ends (a fixed window's count only grows within
it), so the next calls on it are refused without a Redis round trip; and such a repeated
refusal is answered only after ``delay_s`` (``IGE_RATE_LIMIT_DELAY``, at most the
``Retry-After``): a client that ignores ``Retry-After`` gets one answer per connection and
delay, however fast it asks (the hostile run: 20,000 answers in 27 s took a whole core and
tripled the other clients' p99). At most ``max_delayed`` answers wait at once per process
(``IGE_RATE_LIMIT_DELAYED_MAX``); past it a refusal is answered at once. The first refusal of
a window is never delayed. Refusals are counted in ``ige_rate_limited_total{rule}`` and logged
(``rate_limited``) at once while rare, once per rule and second while not (gateway/tally.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from gateway import metrics
from gateway.problems import Problem, refuse
from gateway.tally import Tally


def _ident(value: str) -> str:
    """Counters are keyed by a hash: no e-mail or client id is written to Redis in clear."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


#: how long an address where an account succeeded stays exempt from that account's
#: per-account limit (its per-address and failure limits still apply)
KNOWN_S = 7 * 24 * 3600
#: refused counters remembered per process at most (the oldest are forgotten first)
REMEMBERED = 100_000


class Throttle:
    def __init__(self, redis_url: str, prefix: str, per_address: str, per_account: str,
                 failures: str, delay_s: float = 1.0, max_delayed: int = 1000,
                 redis_options: dict[str, Any] | None = None) -> None:
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        storage = (RedisClusterStorage if uri.startswith("async+redis+cluster://")
                   else RedisStorage)
        self.storage = storage(uri, implementation="redispy",
                               key_prefix=f"{prefix}:rl", socket_timeout=2.0,
                               **(redis_options or {}))
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.per_address = parse(per_address)
        self.per_account = parse(per_account)
        self.failures = parse(failures)
        self.delay_s = delay_s
        self.max_delayed = max_delayed
        self.delayed = 0  # answers waiting their delay now
        #: (rule, ids) -> the end of the window Redis refused it in (time.time())
        self.refused: dict[tuple[str, ...], float] = {}
        self.tally = Tally("rate_limited", metrics.RATE_LIMITED, "rule")

    async def _hit(self, rule: str, item: RateLimitItem, *ids: str) -> None:
        key = (rule, *ids)
        until = self.refused.get(key)
        if until is not None:
            left = until - time.time()
            if left > 0:  # refused before in this window: no Redis, and an answer that waits
                await self._delay(left)
                self._refuse(rule, until - time.time())
            del self.refused[key]
        if await self.limiter.hit(item, rule, *ids):
            return
        stats = await self.limiter.get_window_stats(item, rule, *ids)
        if len(self.refused) >= REMEMBERED:
            self.refused.pop(next(iter(self.refused)))
        self.refused[key] = stats.reset_time
        self._refuse(rule, stats.reset_time - time.time())

    async def _delay(self, left: float) -> None:
        if self.delay_s <= 0 or self.delayed >= self.max_delayed:
            return
        self.delayed += 1
        try:
            await asyncio.sleep(min(self.delay_s, left))
        finally:
            self.delayed -= 1

    def _refuse(self, rule: str, left: float) -> None:
        retry = max(1, math.ceil(left))
        self.tally.add(rule, retry_after=retry)
        raise refuse("rate_limited", "too many attempts; retry later", retry_after=retry)

    async def attempt(self, route: str, address: str, account: str | None) -> None:
        """One call of ``route`` from ``address`` on ``account`` (None: none named), counted
        before any work; raises the 429 problem past a limit."""
        await self._hit(f"{route}:addr", self.per_address, _ident(address))
        if account:
            acct = _ident(account)
            if not await self.storage.get(self._known(route, acct, address)):
                await self._hit(f"{route}:acct", self.per_account, acct)
            await self._hit(f"{route}:fail", self.failures, acct, _ident(address))

    @staticmethod
    def _known(route: str, acct: str, address: str) -> str:
        return f"known:{route}:{acct}:{_ident(address)}"

    async def succeeded(self, route: str, address: str, account: str) -> None:
        """The attempt was right: the failures of this account from this address are forgotten
        (only failures should stay counted), and the address is known to the account."""
        await self.limiter.clear(self.failures, f"{route}:fail", _ident(account),
                                 _ident(address))
        await self.storage.incr(self._known(route, _ident(account), address), KNOWN_S)

    async def aclose(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        storage = getattr(bridge, "storage", None)
        close = getattr(storage, "aclose", None)
        if close is not None:
            await close()


__all__ = ["Problem", "Throttle"]
