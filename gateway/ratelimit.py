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
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from gateway import metrics
from gateway.logs import get_logger
from gateway.problems import Problem, refuse

log = get_logger("ige.ratelimit")


def _ident(value: str) -> str:
    """Counters are keyed by a hash: no e-mail or client id is written to Redis in clear."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


#: how long an address where an account succeeded stays exempt from that account's
#: per-account limit (its per-address and failure limits still apply)
KNOWN_S = 7 * 24 * 3600


class Throttle:
    def __init__(self, redis_url: str, prefix: str, per_address: str, per_account: str,
                 failures: str) -> None:
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        storage = (RedisClusterStorage if uri.startswith("async+redis+cluster://")
                   else RedisStorage)
        self.storage = storage(uri, implementation="redispy",
                               key_prefix=f"{prefix}:rl", socket_timeout=2.0)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.per_address = parse(per_address)
        self.per_account = parse(per_account)
        self.failures = parse(failures)

    async def _hit(self, rule: str, item: RateLimitItem, *ids: str) -> None:
        if await self.limiter.hit(item, rule, *ids):
            return
        stats = await self.limiter.get_window_stats(item, rule, *ids)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        metrics.RATE_LIMITED.labels(rule).inc()
        log.info("rate_limited", rule=rule, retry_after=retry)
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
