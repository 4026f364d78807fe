"""Configuration: read once from the environment into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from urllib.parse import unquote, urlsplit

from limits import parse as parse_rate

from auction.calendar import CalendarRules, parse_iso_duration
from usecases.context import Policy

DEFAULT_DATABASE_URL = "sqlite:///./var/ige.db"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
WEAK_ADMIN_TOKENS = {"", "admin", "changeme", "secret", "token", "demo"}
#: what a process does: ``api`` serves HTTP, ``stream`` the WebSocket, ``worker`` the
#: background work (closing, lapsing, persisting); a process has one or more of them
ROLES = ("api", "stream", "worker")


class ConfigError(Exception):
    """The environment does not describe a server that may start."""


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class RedisTarget:
    """What ``REDIS_URL`` names: one Redis (``redis://``, ``rediss://``, ``unix://``: the URL
    as redis-py reads it) or a Redis Cluster (``redis+cluster://[user:password@]h1:p1,h2:p2``:
    its startup nodes; any one reachable master or replica is enough, the client learns the
    rest from ``CLUSTER SLOTS``)."""

    url: str
    cluster: bool = False
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def limits_uri(self) -> str:
        """The same Redis as a storage URI of the ``limits`` library (the rate limits)."""
        if not self.cluster:
            if self.url.startswith("unix://"):
                return "async+redis+unix://" + self.url.removeprefix("unix://")
            return "async+" + self.url
        auth = ""
        if self.password is not None:
            auth = f"{self.username or ''}:{self.password}@"
        hosts = ",".join(f"{h}:{p}" for h, p in self.nodes)
        return f"async+redis+cluster://{auth}{hosts}"


def parse_redis_url(url: str) -> RedisTarget:
    """The one place that decides between a single Redis and a cluster (ConfigError if the
    cluster form is malformed: no node, a node without a port, a database number)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in CLUSTER_SCHEMES:
        return RedisTarget(url)
    parts = urlsplit("redis://" + rest)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("REDIS_URL: a cluster URL names nodes only (no /db, no options): "
                          f"redis+cluster://host:port,host:port, got {url!r}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    nodes: list[tuple[str, int]] = []
    for node in hostlist.split(","):
        host, _, port = node.strip().rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_URL: cluster node {node!r} is not host:port ({url!r})")
        nodes.append((host, int(port)))
    return RedisTarget(url, cluster=True, nodes=tuple(nodes),
                       username=unquote(user) or None,
                       password=unquote(password) if colon else None,
                       tls=scheme == "rediss+cluster")


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL  # or a cluster's: see RedisTarget
    database_url: str = DEFAULT_DATABASE_URL
    admin_token: str = ""
    secret_key: str = ""  # signs bearer tokens; all gateway processes must share it
    demo: bool = False
    calendar: CalendarRules = field(default_factory=CalendarRules)
    token_ttl_s: int = 900
    exporter_token_ttl_s: int = 3600
    ticket_ttl_s: int = 30
    heartbeat_s: float = 10.0
    queue_size: int = 512  # per WebSocket connection, frames
    # -- bounds (README "Bounds"): what one client may cost
    max_body: int = 64 * 1024  # bytes of a request body, routes with a token
    max_body_public: int = 8 * 1024  # bytes of a body to token, register, activate, login
    body_timeout_s: float = 10.0  # the whole body must arrive within this
    header_timeout_s: float = 10.0  # a connection's request head must arrive within this
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    max_conns_per_address: int = 200  # open TCP connections from one client address
    #: open TCP connections of one process (0: no limit; None: the descriptor limit less
    #: FD_RESERVE, so client connections can never use up the descriptors Redis, SQL and the
    #: logs need); at the cap a new connection closes the oldest one still owing its request
    #: head, else it is closed itself
    max_connections: int | None = None
    ws_per_principal: int = 20  # WebSockets one bank, exporter or operator keeps (per process)
    topics_per_connection: int = 100  # topics one WebSocket may follow
    ws_queue_bytes: int = 4 * 1024 * 1024  # unsent bytes a WebSocket may have queued
    ws_send_timeout_s: float = 15.0  # a frame not taken by the client in this time drops it
    #: bytes of snapshots and catch-ups one principal's WebSockets may be sent per second, per
    #: process (0: no limit), after a burst of ``ws_snapshot_burst``: past it the next book read
    #: waits (a client asking for snapshots again and again cannot take the process's CPU)
    ws_snapshot_rate: int = 2 * 1024 * 1024
    ws_snapshot_burst: int = 16 * 1024 * 1024
    #: bytes of encoded snapshot offers a process keeps (gateway/snapshots.py: per round, book
    #: content, viewer and encoding; 0: none): an unchanged book's snapshot is built once
    ws_snapshot_cache_bytes: int = 32 * 1024 * 1024
    #: commands (frames) one WebSocket may send: (burst, per seconds), refilled evenly; past it
    #: the connection is closed with 4029 (IGE_WS_COMMAND_RATE, ``limits`` syntax; 0: no limit)
    ws_command_rate: tuple[int, float] = (300, 10.0)
    # rate limits ("N/second|minute|hour", shared by every process through Redis)
    rate_per_address: str = "60/minute"  # token, register, activate, login from one address
    rate_per_account: str = "20/minute"  # attempts on one client id or e-mail, any address
    rate_failures: str = "5/15 minutes"  # failed attempts on one account from one address
    #: a refusal repeated within the refused window waits this long (at most its Retry-After)
    #: before it is answered (gateway/ratelimit.py; 0: answered at once)
    rate_limit_delay_s: float = 1.0
    rate_limit_delayed_max: int = 1000  # answers waiting their delay at once, per process
    #: a diagnosis (gateway/stalls.py): log the Python stacks that held the event loop longer
    #: than this, and collections as long (IGE_STALL_TRACE_MS; None: off)
    stall_trace_s: float | None = None
    allowed_origins: tuple[str, ...] = ()  # browser Origins accepted on /v1/stream ("" = same host)
    # -- backing services: how long a command may go unanswered before the request answers
    # 503 (+ Retry-After) instead of hanging on a hung (not dead) Redis or database
    redis_timeout_s: float = 5.0  # a Redis connect or command (also the pool's wait)
    db_timeout_s: float = 10.0  # a PostgreSQL connect, statement, or wait for a pooled one
    #: replicas that must have an offer before it is acknowledged (WAIT; 0: off), and how long
    #: to wait for them before answering 503 ``replication_pending`` (auction/redis/acks.py)
    redis_replica_acks: int = 0
    redis_replica_timeout_s: float = 0.2
    scheduler_interval_s: float = 0.2
    live_key_ttl_s: int = 7 * 24 * 3600  # how long a finished round's Redis keys are kept
    max_offers_per_bank: int = 5  # live offers one bank may keep in one round (0: no limit)
    # browser sessions of the pages: idle and absolute limits, seconds
    session_idle_s: int = 30 * 60
    session_max_s: int = 12 * 3600
    idempotency_pending_s: int = 60  # Policy.idempotency_pending_s
    max_body_page: int = 8 * 1024  # bytes of a page's form
    roles: frozenset[str] = frozenset(ROLES)
    #: the prefix of the deployment's pub/sub channel names (pub/sub ignores db numbers:
    #: deployments sharing one Redis set IGE_REDIS_CHANNEL apart); None: the default one
    channel: str | None = None

    @property
    def redis_target(self) -> RedisTarget:
        return parse_redis_url(self.redis_url)

    @property
    def policy(self) -> Policy:
        return Policy(calendar=self.calendar, bank_token_ttl_s=self.token_ttl_s,
                      exporter_token_ttl_s=self.exporter_token_ttl_s,
                      ticket_ttl_s=self.ticket_ttl_s, live_key_ttl_s=self.live_key_ttl_s,
                      max_offers_per_bank=self.max_offers_per_bank,
                      session_idle_s=self.session_idle_s, session_max_s=self.session_max_s,
                      idempotency_pending_s=self.idempotency_pending_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        demo = env.get("IGE_DEMO", "") in ("1", "true", "yes")
        admin = env.get("IGE_ADMIN_TOKEN", "")
        secret = env.get("IGE_SECRET_KEY", "")
        if not demo:
            if admin.lower() in WEAK_ADMIN_TOKENS or len(admin) < 16:
                raise ConfigError(
                    "IGE_ADMIN_TOKEN must be set to a secret of at least 16 characters "
                    "(only demo mode, IGE_DEMO=1, may run without one)")
            if len(secret) < 32:
                raise ConfigError("IGE_SECRET_KEY must be set to at least 32 random characters")
        hh, mm = env.get("IGE_ROUND_CLOSE_TIME", "17:30").split(":")

        def duration(name: str) -> timedelta | None:
            raw = env.get(name, "").strip()
            try:
                return parse_iso_duration(raw) if raw else None
            except ValueError as e:
                raise ConfigError(f"{name}: {e}") from None

        cal = CalendarRules(
            close_time=time(int(hh), int(mm)),
            half_days_off=env.get("IGE_HALF_DAYS_OFF", "0") in ("1", "true", "yes"),
            round_duration=duration("IGE_ROUND_DURATION"),
            binding_duration=duration("IGE_BINDING_DURATION"),
        )
        origins = tuple(o.strip() for o in env.get("IGE_ALLOWED_ORIGINS", "").split(",")
                        if o.strip())
        redis_timeout = _seconds(env, "IGE_REDIS_TIMEOUT", 5.0)
        replica_timeout = _seconds(env, "IGE_REDIS_REPLICA_TIMEOUT", 0.2)
        if replica_timeout >= redis_timeout:
            # a WAIT unanswered for IGE_REDIS_TIMEOUT closes its connection (mux.py's watchdog)
            raise ConfigError("IGE_REDIS_REPLICA_TIMEOUT must be less than IGE_REDIS_TIMEOUT")
        redis_url = env.get("REDIS_URL", DEFAULT_REDIS_URL)
        parse_redis_url(redis_url)  # a malformed cluster URL stops the start
        return cls(
            redis_url=redis_url,
            database_url=env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            admin_token=admin,
            secret_key=secret or admin or "demo-secret-key",
            demo=demo,
            calendar=cal,
            token_ttl_s=int(env.get("IGE_TOKEN_TTL", "900")),
            ticket_ttl_s=int(env.get("IGE_TICKET_TTL", "30")),
            heartbeat_s=float(env.get("IGE_HEARTBEAT_SECONDS", "10")),
            queue_size=int(env.get("IGE_WS_QUEUE", "512")),
            allowed_origins=origins,
            channel=env.get("IGE_REDIS_CHANNEL") or None,
            max_offers_per_bank=_count(env, "IGE_MAX_OFFERS_PER_BANK", 5),
            max_body=_count(env, "IGE_MAX_BODY", 64 * 1024),
            max_body_public=_count(env, "IGE_MAX_BODY_PUBLIC", 8 * 1024),
            body_timeout_s=float(env.get("IGE_BODY_TIMEOUT", "10")),
            header_timeout_s=float(env.get("IGE_HEADER_TIMEOUT", "10")),
            keep_alive_s=float(env.get("IGE_KEEP_ALIVE", "5")),
            max_conns_per_address=_count(env, "IGE_MAX_CONNS_PER_ADDRESS", 200),
            max_connections=(_count(env, "IGE_MAX_CONNECTIONS", 0)
                             if env.get("IGE_MAX_CONNECTIONS", "").strip() else None),
            ws_per_principal=_count(env, "IGE_WS_PER_PRINCIPAL", 20),
            topics_per_connection=_count(env, "IGE_TOPICS_PER_CONNECTION", 100),
            ws_queue_bytes=_count(env, "IGE_WS_QUEUE_BYTES", 4 * 1024 * 1024),
            ws_send_timeout_s=float(env.get("IGE_WS_SEND_TIMEOUT", "15")),
            ws_snapshot_rate=_count(env, "IGE_WS_SNAPSHOT_BYTES_PER_S", 2 * 1024 * 1024),
            ws_snapshot_burst=_count(env, "IGE_WS_SNAPSHOT_BURST", 16 * 1024 * 1024),
            ws_snapshot_cache_bytes=_count(env, "IGE_WS_SNAPSHOT_CACHE_BYTES",
                                           32 * 1024 * 1024),
            ws_command_rate=_rate(env, "IGE_WS_COMMAND_RATE", "300/10 seconds"),
            rate_per_address=env.get("IGE_RATE_PER_ADDRESS", "60/minute"),
            rate_per_account=env.get("IGE_RATE_PER_ACCOUNT", "20/minute"),
            rate_failures=env.get("IGE_RATE_FAILURES", "5/15 minutes"),
            rate_limit_delay_s=_seconds(env, "IGE_RATE_LIMIT_DELAY", 1.0, zero=True),
            rate_limit_delayed_max=_count(env, "IGE_RATE_LIMIT_DELAYED_MAX", 1000),
            stall_trace_s=(_count(env, "IGE_STALL_TRACE_MS", 0) / 1000) or None,
            roles=parse_roles(env.get("IGE_ROLES", "")),
            redis_timeout_s=redis_timeout,
            db_timeout_s=_seconds(env, "IGE_DB_TIMEOUT", 10.0),
            redis_replica_acks=_count(env, "IGE_REDIS_REPLICA_ACKS", 0),
            redis_replica_timeout_s=replica_timeout,
            session_idle_s=_duration(env, "IGE_SESSION_IDLE", 30 * 60),
            session_max_s=_duration(env, "IGE_SESSION_MAX", 12 * 3600),
            idempotency_pending_s=_duration(env, "IGE_IDEMPOTENCY_PENDING", 60),
            max_body_page=_count(env, "IGE_MAX_BODY_PAGE", 8 * 1024),
        )


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if n < 0:
        raise ConfigError(f"{name} must not be negative")
    return n


def _seconds(env: Mapping[str, str], name: str, default: float, zero: bool = False) -> float:
    """Seconds, more than 0 (``zero``: or 0, which turns the thing off) and less than 3600."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        n = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not (n >= 0 if zero else n > 0) or n >= 3600:
        least = "0 or more" if zero else "more than 0"
        raise ConfigError(f"{name} must be {least} and less than 3600 seconds")
    return n


def _duration(env: Mapping[str, str], name: str, default: int) -> int:
    """Whole seconds (``1800``) or an ISO 8601 duration (``PT30M``); above 0."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        n = int(raw) if raw.isdigit() else int(parse_iso_duration(raw).total_seconds())
    except ValueError as e:
        raise ConfigError(f"{name}: seconds or an ISO 8601 duration, got {raw!r} ({e})") \
            from None
    if n <= 0:
        raise ConfigError(f"{name} must be above 0")
    return n


def _rate(env: Mapping[str, str], name: str, default: str) -> tuple[int, float]:
    """A rate in ``limits`` syntax ("300/10 seconds") as (amount, seconds); "0": no limit."""
    raw = env.get(name, "").strip() or default
    if raw == "0":
        return (0, 0.0)
    try:
        item = parse_rate(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a rate such as {default!r} (or 0), got {raw!r}"
                          ) from None
    return (item.amount, float(item.get_expiry()))


def parse_roles(raw: str) -> frozenset[str]:
    """``api,stream,worker`` (any non-empty subset; empty: all of them)."""
    roles = [r.strip() for r in raw.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ConfigError(f"unknown role(s) {', '.join(unknown)}: the roles are "
                          f"{', '.join(ROLES)}")
    return frozenset(roles or ROLES)
