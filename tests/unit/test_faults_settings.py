"""What the fault tests (tests/e2e/test_faults.py) rely on, checked without servers: the
backing services' timeouts are configurable, an outage's 503 is documented with Retry-After,
/readyz's 503 is its checks, and the fault-injection hook kills only at its own point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.contract import openapi
from gateway.settings import ConfigError, Settings
from persistence.db import create_engine
from tests.support import ROOT

BASE = {"IGE_ADMIN_TOKEN": "a-long-enough-admin-token", "IGE_SECRET_KEY": "k" * 32}


def test_backing_service_timeouts_default_and_are_read_from_the_environment() -> None:
    s = Settings.from_env(BASE)
    assert (s.redis_timeout_s, s.db_timeout_s) == (5.0, 10.0)
    s = Settings.from_env({**BASE, "IGE_REDIS_TIMEOUT": "1.5", "IGE_DB_TIMEOUT": "3"})
    assert (s.redis_timeout_s, s.db_timeout_s) == (1.5, 3.0)
    for bad in ("0", "-1", "soon", "3600"):
        with pytest.raises(ConfigError, match="IGE_REDIS_TIMEOUT"):
            Settings.from_env({**BASE, "IGE_REDIS_TIMEOUT": bad})
        with pytest.raises(ConfigError, match="IGE_DB_TIMEOUT"):
            Settings.from_env({**BASE, "IGE_DB_TIMEOUT": bad})


def test_a_postgresql_engine_waits_for_a_pooled_connection_at_most_its_timeout() -> None:
    engine = create_engine("postgresql://u@127.0.0.1:1/db", timeout_s=2.5)
    assert engine.pool.timeout() == 2.5  # type: ignore[attr-defined]


def test_every_503_problem_documents_retry_after_and_readiness_answers_its_checks() -> None:
    doc = openapi.spec()
    seen = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            r = op.get("responses", {}).get("503")
            if r is None:
                continue
            content = r["content"]
            if path == "/readyz":
                assert list(content) == ["application/json"]
                props = content["application/json"]["schema"]["properties"]
                assert set(props["checks"]["properties"]) == {"redis", "database", "book"}
                continue
            assert "application/problem+json" in content, (path, method)
            assert r["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
            seen += 1
    assert seen > 10


def _die_at(point_set: str | None, reached: str) -> int:
    env = {"PATH": "/usr/bin:/bin", **({"IGE_FAULT_POINT": point_set} if point_set else {})}
    return subprocess.run(
        [sys.executable, "-c", f"from gateway import faults; faults.reached({reached!r})"],
        cwd=ROOT, env=env, capture_output=True, check=False).returncode


def test_the_fault_hook_kills_only_at_its_point_and_refuses_unknown_points() -> None:
    assert _die_at("offer_after_redis", "offer_after_redis") == -9
    assert _die_at("offer_after_reply", "offer_after_redis") == 0
    assert _die_at(None, "offer_after_redis") == 0
    assert _die_at("offer_after_nothing", "offer_after_redis") == 1  # refused at import


def test_replica_acks_are_off_by_default_and_read_from_the_environment() -> None:
    s = Settings.from_env(BASE)
    assert (s.redis_replica_acks, s.redis_replica_timeout_s) == (0, 0.2)
    s = Settings.from_env({**BASE, "IGE_REDIS_REPLICA_ACKS": "2",
                           "IGE_REDIS_REPLICA_TIMEOUT": "0.5"})
    assert (s.redis_replica_acks, s.redis_replica_timeout_s) == (2, 0.5)
    for bad in ("-1", "one", "1.5"):
        with pytest.raises(ConfigError, match="IGE_REDIS_REPLICA_ACKS"):
            Settings.from_env({**BASE, "IGE_REDIS_REPLICA_ACKS": bad})
    for bad in ("0", "-1", "soon", "5"):  # 5: not less than IGE_REDIS_TIMEOUT
        with pytest.raises(ConfigError, match="IGE_REDIS_REPLICA_TIMEOUT"):
            Settings.from_env({**BASE, "IGE_REDIS_REPLICA_TIMEOUT": bad})
    s = Settings.from_env({**BASE, "IGE_REDIS_TIMEOUT": "10", "IGE_REDIS_REPLICA_TIMEOUT": "5"})
    assert (s.redis_timeout_s, s.redis_replica_timeout_s) == (10.0, 5.0)


def test_replica_acks_need_a_replica_and_a_timeout_and_fail_short_of_them() -> None:
    from auction.redis.acks import ReplicaAcks, ReplicationPending
    from gateway.bootstrap import INFRASTRUCTURE_ERRORS, problem_code_of

    for replicas, timeout_ms in ((0, 200), (1, 0)):  # WAIT n 0 would block for ever
        with pytest.raises(ValueError):
            ReplicaAcks(replicas, timeout_ms)
    acks = ReplicaAcks(2, 200)
    acks.check(2)
    acks.check(3)
    with pytest.raises(ReplicationPending) as e:
        acks.check(1)
    assert isinstance(e.value, INFRASTRUCTURE_ERRORS)  # a 503 with Retry-After, never a 500
    assert problem_code_of(e.value) == "replication_pending"
    assert problem_code_of(ConnectionError()) == "unavailable"


def test_only_the_offer_routes_document_replication_pending() -> None:
    doc = openapi.spec()
    having = {(path, method) for path, ops in doc["paths"].items()
              for method, op in ops.items()
              if "replication_pending" in op.get("x-problem-codes", {}).get("503", [])}
    assert having == {("/v1/bank/rounds/{round_id}/offers", "post"),
                      ("/v1/bank/rounds/{round_id}/offers/{offer_id}", "put")}
