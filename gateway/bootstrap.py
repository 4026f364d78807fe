"""The composition root: the only place that builds Redis clients, the SQL store, the book,
the bus, the guards, the application integrations and the use cases. The app, the CLI and the
benchmark all start here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from sqlalchemy import text as sql_text
from sqlalchemy.exc import SQLAlchemyError

from applications import simulated
from applications.ports import Providers
from auction.redis import keys
from auction.redis.acks import ReplicaAcks, ReplicationPending
from auction.redis.book import RedisBook
from auction.redis.bus import RedisBus
from auction.redis.cluster import WaitingCluster
from auction.redis.conn import CLIENT_OPTIONS, DRIVER_INFO, make_ask_safe, make_reset_aware
from auction.redis.guards import RedisGuards
from auction.redis.mux import MuxRedis
from gateway import metrics
from gateway.ratelimit import Throttle
from gateway.settings import RedisTarget, Settings
from persistence.store import Store
from usecases.context import Deps
from usecases.portal import Portal
from usecases.security import TokenSigner

#: Redis connections per process. A blocking pool: past this many commands in flight a
#: request waits for a free connection (up to ``IGE_REDIS_TIMEOUT``) instead of failing with
#: "Too many connections" (503), which redis-py's default pool of 100 did to bursts of bids and
#: stream subscriptions.
#:
#: Commands time out (``Settings.redis_timeout_s``, ``IGE_REDIS_TIMEOUT``, 5 s; PostgreSQL's
#: ``IGE_DB_TIMEOUT``, 10 s), so a hung (not dead) Redis or database cannot hold SQL locks or
#: requests for long: the request answers 503 ``unavailable`` with Retry-After. A command that
#: may have run is never sent again by us: the client retries it (an offer with its
#: Idempotency-Key). On a single Redis redis-py's connections retry nothing (the pool is given
#: no Retry; tests/integration/test_lost_answers.py) and the bid path (``MuxRedis``) does not
#: retry either. redis-py's cluster client retries a failed or timed-out command (three more
#: tries, following a failover): fine for reads and for writes that land the same twice, not
#: for a new offer without an Idempotency-Key (a second offer the bank never saw), a ticket's
#: redemption (used up by the first try, refused on the second) or a SET NX taking a one-time
#: code, an idempotency key or a lock (the second try finds the first's and says "taken"):
#: those go through ``Runtime.once``, a cluster client that does not retry.
REDIS_POOL_SIZE = 256
HEALTH_TIMEOUT_S = 2
#: failures of a backing service (not bugs): 503 to a request, a warning in a loop
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (RedisError, SQLAlchemyError, OSError)


def problem_code_of(exc: BaseException) -> str:
    """The problem code of an infrastructure error: ``replication_pending`` when the write ran
    on the master but too few replicas confirmed it in time (``IGE_REDIS_REPLICA_ACKS``),
    else ``unavailable``. Both are 503 with Retry-After."""
    return "replication_pending" if isinstance(exc, ReplicationPending) else "unavailable"


def service_of(exc: BaseException) -> str:
    """Which backing service an infrastructure error came from (the ``service`` label of
    ``ige_backend_errors_total``): "redis", "sql", or "other" for a bare OSError."""
    if isinstance(exc, RedisError):
        return "redis"
    if isinstance(exc, SQLAlchemyError):
        return "sql"
    return "other"


@dataclass
class Runtime:
    """One process's adapters and use cases."""

    settings: Settings
    redis: Redis | RedisCluster
    #: the pub/sub subscriber blocks on reads by design: a client of its own (on a cluster, the
    #: bus opens one subscribed connection per master from it)
    listener: Redis | RedisCluster
    fast: MuxRedis | None  # the bid path's multiplexed connection (auction/redis/mux.py)
    #: for commands that must not run twice (a bid script, a ticket's GETDEL, a SET NX):
    #: ``redis`` on a single Redis (it retries nothing), on a cluster a client that never retries
    once: Redis | RedisCluster
    store: Store
    bus: RedisBus
    deps: Deps
    portal: Portal
    throttle: Throttle | None = None  # rate limits of the routes anyone may call

    async def health(self) -> dict[str, str]:
        """Whether Redis and the database answer: "ok" or "error: <kind>" each; and whether
        the live book is usable: "rebuilding" from the moment Redis lost its data set until the
        open rounds are rebuilt from SQL (``Durability.ensure_book``, by the worker holding
        bucket 0 of whichever process)."""
        checks: dict[str, str] = {}
        try:
            # on a cluster, its masters: a replica down does not stop the service
            await asyncio.wait_for(
                self.redis.ping(target_nodes=RedisCluster.PRIMARIES)
                if isinstance(self.redis, RedisCluster) else self.redis.ping(),
                HEALTH_TIMEOUT_S)
            checks["redis"] = "ok"
        except Exception as e:  # noqa: BLE001 - report any failure
            checks["redis"] = f"error: {type(e).__name__}"
        try:
            async with self.store.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(sql_text("SELECT 1")), HEALTH_TIMEOUT_S)
            checks["database"] = "ok"
        except Exception as e:  # noqa: BLE001
            checks["database"] = f"error: {type(e).__name__}"
        try:
            pending = await asyncio.wait_for(self.portal.durability.rebuild_pending(),
                                             HEALTH_TIMEOUT_S)
            checks["book"] = "rebuilding" if pending else "ok"
        except Exception as e:  # noqa: BLE001
            checks["book"] = f"error: {type(e).__name__}"
        return checks

    async def aclose(self) -> None:
        if self.throttle is not None:
            await self.throttle.aclose()
        if self.fast is not None:
            await self.fast.aclose()
        await self.redis.aclose()
        if self.once is not self.redis:
            await self.once.aclose()
        await self.listener.aclose()
        await self.store.aclose()


def cluster_client(target: RedisTarget, timeout: float, retries: int | None = None
                   ) -> RedisCluster:
    """A Redis Cluster client (``REDIS_URL=redis+cluster://...``): commands go to the master of
    their key's slot; MOVED/ASK redirections and a failover's CLUSTERDOWN are followed and
    retried by redis-py (its Retry); a bid script with replica acks is
    routed by our adapter (``auction.redis.acks.cluster_then_wait``). At most
    ``REDIS_POOL_SIZE`` commands in flight (so as many connections per node at most); as with
    the single Redis's blocking pool, the others wait their turn for the timeout, then fail
    (``MaxConnectionsError``: 503 ``unavailable``; ``auction/redis/cluster.py``). ``retries``:
    how often a command that failed or timed out is sent again (None: redis-py's default;
    redirections are followed either way)."""
    make_ask_safe()  # an ASK redirection followed on one connection (auction/redis/conn.py)
    return WaitingCluster(
        retry=None if retries is None else Retry(NoBackoff(), retries),
        startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
        username=target.username, password=target.password, ssl=target.tls,
        max_in_flight=REDIS_POOL_SIZE, wait_s=timeout, socket_keepalive=True,
        socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=5,
        # a MOVED patches the slot map with the owner it names, never more: by default
        # redis-py closed every connection of every node at each fifth MOVED (to read the
        # map again), cutting the commands in flight on them, ours included (an offer's
        # script and WAIT: a 503; a read caught mid-reconnect: an AttributeError, a 500)
        # while a reshard or a failover sent MOVEDs to many commands at once
        reinitialize_steps=0, driver_info=DRIVER_INFO)


def build(settings: Settings, providers: Providers | None = None) -> Runtime:
    timeout = settings.redis_timeout_s
    target = settings.redis_target
    redis: Redis | RedisCluster
    listener: Redis | RedisCluster
    once: Redis | RedisCluster
    if target.cluster:
        redis = cluster_client(target, timeout)
        once = cluster_client(target, timeout, retries=0)
        listener = cluster_client(target, timeout)  # its topology; the bus links per master
    else:
        pool = BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_POOL_SIZE, timeout=timeout,
            health_check_interval=5, socket_keepalive=True, socket_timeout=timeout,
            socket_connect_timeout=timeout, **CLIENT_OPTIONS)
        make_reset_aware(pool)  # a connection the peer reset is lost, not a 500 (uvloop)
        redis = once = Redis.from_pool(pool)
        listener = Redis.from_url(settings.redis_url, health_check_interval=5,
                                  socket_keepalive=True, socket_connect_timeout=timeout,
                                  **CLIENT_OPTIONS)
        make_reset_aware(listener.connection_pool)
    store = Store.from_url(settings.database_url, settings.db_timeout_s)
    channels = keys.Channels(settings.channel or keys.PREFIX)
    bus = RedisBus(redis, listener, channels)
    # the multiplexed connection speaks to one server: none on a cluster
    fast = (MuxRedis(settings.redis_url, timeout_s=timeout)
            if not target.cluster and settings.redis_url.startswith(("redis://", "unix://"))
            else None)
    acks = (ReplicaAcks(settings.redis_replica_acks,
                        max(1, round(settings.redis_replica_timeout_s * 1000)))
            if settings.redis_replica_acks else None)
    deps = Deps(book=RedisBook(redis, channels, fast, acks, once=once), store=store, bus=bus,
                guards=RedisGuards(redis, once=once), providers=providers or simulated.providers(),
                tokens=TokenSigner(settings.secret_key), policy=settings.policy)
    throttle = Throttle(target.limits_uri(), settings.channel or keys.PREFIX,
                        settings.rate_per_address, settings.rate_per_account,
                        settings.rate_failures, settings.rate_limit_delay_s,
                        settings.rate_limit_delayed_max, redis_options=CLIENT_OPTIONS)
    portal = Portal(deps)
    portal.durability.on_clash = lambda _: metrics.PERSIST_CLASHES.inc()
    return Runtime(settings, redis, listener, fast, once, store, bus, deps, portal, throttle)
