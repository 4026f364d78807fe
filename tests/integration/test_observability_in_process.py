"""The request middleware and the hub in a real app built in-process (its lifespan run, real
Redis and SQL): the X-Request-Id rules, the one ``request`` line per request rendered by the
servers' JSON formatter, the HTTP metrics by route template, backing-service errors and pub/sub
reconnects (the single-process registry: no PROMETHEUS_MULTIPROC_DIR here)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import logs
from gateway.app import create_app
from gateway.settings import Settings
from tests.support import ADMIN_TOKEN, ROUND_BODY, SECRET_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GENERATED = re.compile(r"[0-9a-f]{16}")


def settings(redis_url: str, database_url: str, channel: str, roles: str = "api") -> Settings:
    return Settings.from_env({"REDIS_URL": redis_url, "DATABASE_URL": database_url,
                              "IGE_ADMIN_TOKEN": ADMIN_TOKEN, "IGE_SECRET_KEY": SECRET_KEY,
                              "IGE_REDIS_CHANNEL": channel, "IGE_ROLES": roles})


def sample(text: str, name: str, **labels: str) -> float:
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == name and s.labels == labels), 0.0)


async def boom(request: Request) -> Response:
    raise RuntimeError("a bug")


@pytest.fixture
async def client(redis_url: str, database_url: str, channel: str, redis: Any
                 ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(redis_url, database_url, channel))
    app.router.routes.append(Route("/test/boom", boom))  # an unhandled exception: a 500
    async with app.router.lifespan_context(app):
        # the app's exception after its 500 is answered is not the client's business here
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ige.test") as c:
            yield c


class Lines:
    """The JSON lines the servers' formatter renders from the ``ige`` loggers at INFO."""

    def __init__(self) -> None:
        self.out = io.StringIO()

    def __call__(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]


@pytest.fixture
def lines() -> Iterator[Lines]:
    got = Lines()
    handler = logging.StreamHandler(got.out)
    handler.setFormatter(logs.json_formatter())
    ige = logging.getLogger("ige")
    level = ige.level
    ige.addHandler(handler)
    ige.setLevel(logging.INFO)
    try:
        yield got
    finally:
        ige.removeHandler(handler)
        ige.setLevel(level)


def requests_of(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = [ln for ln in lines if ln["event"] == "request"]
    by_id = {ln["request_id"]: ln for ln in found}
    assert len(by_id) == len(found), "two request lines share an id"
    return by_id


async def test_a_well_formed_request_id_is_kept_returned_and_logged(
        client: httpx.AsyncClient, lines: Lines):
    ids = ["abc-DEF_1.2", "x" * 64, "0", "A.B-C_d"]
    for rid in ids:
        r = await client.get("/healthz", headers={"X-Request-Id": rid})
        assert r.status_code == 200 and r.headers.get_list("x-request-id") == [rid]
    assert sorted(requests_of(lines())) == sorted(ids)


async def test_a_malformed_or_missing_request_id_is_replaced_by_a_new_one(
        client: httpx.AsyncClient):
    seen = set()
    for bad in ["", "has space", "x" * 65, "semi;colon", "a/b", "a:b", "ünï".encode()]:
        r = await client.get("/healthz", headers={"X-Request-Id": bad})
        got = r.headers["x-request-id"]
        assert GENERATED.fullmatch(got), (bad, got)
        seen.add(got)
    for _ in range(3):
        r = await client.get("/healthz")
        assert GENERATED.fullmatch(r.headers["x-request-id"])
        seen.add(r.headers["x-request-id"])
    assert len(seen) == 10  # a new one each time
    assert len(r.headers.get_list("x-request-id")) == 1


async def test_every_problem_carries_the_request_id(client: httpx.AsyncClient, lines: Lines):
    cases = [
        ("GET", "/no/such/path", {}, None, 404, "not_found"),
        ("GET", "/v1/admin/rounds", ADMIN, None, 405, "method_not_allowed"),
        ("POST", "/v1/bank/rounds/rnd_x/offers", {}, {}, 401, "unauthorized"),
        ("POST", "/v1/admin/banks", ADMIN, {"bank_code": ""}, 422, "validation_failed"),
        ("POST", "/v1/admin/banks", {**ADMIN, "Content-Type": "application/json"}, "{",
         400, "malformed_json"),
        ("GET", "/test/boom", {}, None, 500, "internal_error"),
    ]
    for i, (method, path, headers, body, status, code) in enumerate(cases):
        rid = f"problem-{i}"
        kw: dict[str, Any] = {"content": body} if isinstance(body, str) else {"json": body}
        r = await client.request(method, path, headers={**headers, "X-Request-Id": rid},
                                 **({} if body is None else kw))
        assert (r.status_code, r.json()["code"]) == (status, code), (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers.get_list("x-request-id") == [rid], path
    logged = requests_of(lines())
    for i, (method, _, _, _, status, code) in enumerate(cases):
        line = logged[f"problem-{i}"]
        assert (line["method"], line["status"], line["code"]) == (method, status, code)
    assert logged["problem-0"]["route"] == "unmatched"
    assert logged["problem-1"]["route"] == "/v1/admin/rounds"
    assert logged["problem-2"]["route"] == "/v1/bank/rounds/{round_id}/offers"
    assert logged["problem-3"]["principal"] == "admin"
    # the 500's traceback is one line too, with the request's id
    crash = [ln for ln in lines() if ln["event"] == "unhandled_error"]
    assert len(crash) == 1 and crash[0]["request_id"] == "problem-5"
    assert "RuntimeError: a bug" in crash[0]["exception"]


async def test_one_request_line_each_with_the_route_template_and_the_principal(
        client: httpx.AsyncClient, lines: Lines):
    r = await client.post("/v1/admin/rounds", json=ROUND_BODY,
                          headers={**ADMIN, "X-Request-Id": "open-1"})
    assert r.status_code == 201, r.text
    rid = r.json()["round_id"]
    r = await client.get(f"/v1/admin/rounds/{rid}?x=secret-query",
                         headers={**ADMIN, "X-Request-Id": "get-1"})
    assert r.status_code == 200
    logged = requests_of(lines())
    assert set(logged) == {"open-1", "get-1"}
    got = logged["get-1"]
    assert (got["route"], got["status"], got["principal"], got["principal_id"]) == (
        "/v1/admin/rounds/{round_id}", 200, "admin", "admin")
    assert got["duration_ms"] >= 0 and got["level"] == "info" and got["timestamp"]
    opened = [ln for ln in lines() if ln["event"] == "round_opened"]
    assert [(o["round_id"], o["request_id"]) for o in opened] == [(rid, "open-1")]
    text = lines.out.getvalue()
    assert "secret-query" not in text and "Anadolu" not in text  # no query, no names
    assert f"/v1/admin/rounds/{rid}" not in text  # the template, never the raw path


async def test_http_metrics_count_by_route_template(client: httpx.AsyncClient):
    def count(text: str, **labels: str) -> float:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "ige_http_requests_total" and all(
                        s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return 0.0

    before = (await client.get("/metrics")).text
    await client.get("/v1/admin/rounds/rnd_0123456789", headers=ADMIN)
    await client.get("/v1/admin/rounds/rnd_abcdef", headers=ADMIN)
    await client.get("/not/a/route/rnd_0123456789")
    await client.request("BREW", "/healthz")  # a method of the client's own: "other"
    m = await client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    after = m.text
    template = {"route": "/v1/admin/rounds/{round_id}", "method": "GET", "status": "404"}
    assert count(after, **template) - count(before, **template) == 2
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert count(after, **unmatched) - count(before, **unmatched) == 1
    brew = {"route": "/healthz", "method": "other", "status": "405"}
    assert count(after, **brew) - count(before, **brew) == 1
    assert "rnd_0123456789" not in after and "rnd_abcdef" not in after and "BREW" not in after


async def test_a_backing_service_failure_is_a_503_with_the_id_and_is_counted(
        redis_url: str, channel: str, tmp_path: Path):
    missing = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'ige.db'}"
    app = create_app(settings(redis_url, missing, channel))

    def errors(text: str) -> float:
        return sample(text, "ige_backend_errors_total", service="sql")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ige.test") as c:
            before = errors((await c.get("/metrics")).text)
            r = await c.get("/v1/admin/banks", headers={**ADMIN, "X-Request-Id": "down-1"})
            assert (r.status_code, r.json()["code"]) == (503, "unavailable")
            assert r.headers.get_list("x-request-id") == ["down-1"]
            assert errors((await c.get("/metrics")).text) == before + 1


async def test_a_lost_pub_sub_link_is_counted_when_the_hub_reconnects(
        redis_url: str, database_url: str, channel: str, redis: Any):
    """Redis drops the stream's subscriber connection (CLIENT KILL): the bus reconnects, the
    hub resyncs and ige_pubsub_reconnects_total counts it."""
    app = create_app(settings(redis_url, database_url, channel, roles="stream"))
    db = int(urlparse(redis_url).path.strip("/") or 0)  # this session's own database

    async def subscribers() -> list[dict[str, Any]]:
        return [c for c in await redis.client_list()
                if int(c["db"]) == db and int(c.get("sub", 0)) > 0]

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ige.test") as c:
            before = sample((await c.get("/metrics")).text, "ige_pubsub_reconnects_total")
            deadline = time.monotonic() + 5
            while not (listening := await subscribers()):
                assert time.monotonic() < deadline, "the hub never subscribed"
                await asyncio.sleep(0.05)
            assert len(listening) == 1
            await redis.client_kill_filter(_id=listening[0]["id"])
            deadline = time.monotonic() + 5
            while sample((await c.get("/metrics")).text,
                         "ige_pubsub_reconnects_total") < before + 1:
                assert time.monotonic() < deadline, "the reconnect was not counted"
                await asyncio.sleep(0.05)
            assert len(await subscribers()) == 1  # listening again
