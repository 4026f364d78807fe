"""The bid path's fast path (gateway/fastpath.py) answers exactly as Starlette's stack would:
the same requests sent to an app with it and to one without it (same Redis, same database,
same token) get the same status, headers and body, for accepted offers and for every kind of
refusal, and every other request still goes through the router."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.app import create_app
from gateway.settings import Settings
from tests.support import ADMIN_TOKEN, OFFER_BODY, ROUND_BODY, SECRET_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: headers that differ by construction; content-length too, as the bodies (compared field by
#: field apart from ids and times) differ in length when a time falls on a whole second
#: (rendered without its fraction: 4 bytes shorter)
VOLATILE = {"date", "x-request-id", "content-length"}


def settings(redis_url: str, database_url: str, channel: str) -> Settings:
    return Settings.from_env({"REDIS_URL": redis_url, "DATABASE_URL": database_url,
                              "IGE_ADMIN_TOKEN": ADMIN_TOKEN, "IGE_SECRET_KEY": SECRET_KEY,
                              "IGE_REDIS_CHANNEL": channel, "IGE_ROLES": "api",
                              "IGE_MAX_OFFERS_PER_BANK": "2"})


@pytest.fixture
async def pair(redis_url: str, database_url: str, channel: str, redis: Any
               ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    s = settings(redis_url, database_url, channel)
    fast, slow = create_app(s), create_app(s, fast_path=False)
    async with fast.router.lifespan_context(fast), slow.router.lifespan_context(slow):
        a = httpx.AsyncClient(transport=httpx.ASGITransport(app=fast, raise_app_exceptions=False),
                              base_url="http://ige.test")
        b = httpx.AsyncClient(transport=httpx.ASGITransport(app=slow, raise_app_exceptions=False),
                              base_url="http://ige.test")
        async with a, b:
            yield a, b


def shape(r: httpx.Response, rid: str = "") -> tuple[int, dict[str, str], Any]:
    headers = {k: v.replace(rid, "RID") if rid else v for k, v in r.headers.items()
               if k not in VOLATILE}
    try:
        body: Any = r.json()
    except ValueError:
        body = r.text
    return r.status_code, headers, body


def same_but_ids(a: Any, b: Any) -> bool:
    """Equal once the values that differ by construction (ids, the random label, time)
    are set aside."""
    drop = {"offer_id", "round_id", "label", "ref", "seq", "accepted_at", "instance"}
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_but_ids(a[k], b[k]) for k in a if k not in drop)
    return bool(a == b)


JSON = {"Content-Type": "application/json"}


async def test_every_answer_of_the_offer_routes_is_the_routers(
        pair: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    fast, slow = pair
    bank = (await fast.post("/v1/admin/banks", json={"bank_code": "FST", "name": "Fast"},
                            headers=ADMIN)).json()
    tok = (await fast.post("/v1/oauth/token", data={
        "grant_type": "client_credentials", "client_id": bank["client_id"],
        "client_secret": bank["client_secret"]})).json()["access_token"]
    h = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}

    async def a_round(c: httpx.AsyncClient) -> tuple[str, str]:
        """Each app gets its own round with one offer: the same requests meet the same state."""
        rid = (await c.post("/v1/admin/rounds", json=ROUND_BODY, headers=ADMIN)).json()["round_id"]
        url = f"/v1/bank/rounds/{rid}/offers"
        return url, (await c.post(url, json=OFFER_BODY, headers=h)).json()["offer_id"]

    cases: list[tuple[str, str, dict[str, str], bytes]] = [
        ("POST", "{url}", h, json.dumps(OFFER_BODY).encode()),  # accepted; then the limit: 2
        ("POST", "{url}", h, json.dumps({**OFFER_BODY, "annual_rate": "39.00"}).encode()),
        ("PUT", "{url}/{mine}", h, json.dumps({**OFFER_BODY, "annual_rate": "37.00"}).encode()),
        ("PUT", "{url}/{mine}", h, json.dumps({**OFFER_BODY, "annual_rate": "36.00"}).encode()),
        ("POST", "{url}", h, b'{"annual_rate": '),  # malformed JSON
        ("POST", "{url}", h, json.dumps({**OFFER_BODY, "annual_rate": "1.234567"}).encode()),
        ("POST", "{url}", h, json.dumps({**OFFER_BODY, "tenor_months": 999}).encode()),
        ("POST", "{url}", JSON, json.dumps(OFFER_BODY).encode()),  # no token
        ("POST", "{url}", {**ADMIN, **JSON}, json.dumps(OFFER_BODY).encode()),  # another kind
        ("POST", "/v1/bank/rounds/rnd_nope/offers", h, json.dumps(OFFER_BODY).encode()),
        ("PUT", "{url}/off_nope", h, json.dumps(OFFER_BODY).encode()),
        ("GET", "{url}", h, b""),  # not one of the fast path's: the router's 405
        ("PATCH", "{url}/{mine}", h, b"{}"),
        ("POST", "{url}/", h, json.dumps(OFFER_BODY).encode()),  # no such route
        ("POST", "{url}", {**h, "Content-Type": "text/plain"}, b"x"),  # 415 (gateway/bounds.py)
        ("POST", "{url}", {**h, "Content-Type": "application/json"}, b" " * 70_000),  # 413
    ]
    where = {c: await a_round(c) for c in (fast, slow)}
    statuses = []
    for i, (method, path, headers, body) in enumerate(cases):
        got = []
        for c in (fast, slow):
            url, mine = where[c]
            r = await c.request(method, path.format(url=url, mine=mine), headers=headers,
                                content=body)
            got.append(shape(r, url.split("/")[4]))
        (sa, ha, ba), (sb, hb, bb) = got
        assert (sa, ha) == (sb, hb), (i, method, path, got)
        assert same_but_ids(ba, bb), (i, method, path, ba, bb)
        statuses.append(sa)
    assert statuses[:4] == [201, 409, 200, 200]  # the second new offer met the limit of two
    assert 422 in statuses and 401 in statuses and 404 in statuses and 405 in statuses
    assert statuses[-2:] == [415, 413]  # the bounds come before either path


async def test_a_backing_service_failure_is_the_same_503(
        pair: tuple[httpx.AsyncClient, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
        ) -> None:
    from auction.redis.book import RedisBook

    fast = pair[0]
    bank = (await fast.post("/v1/admin/banks", json={"bank_code": "FSU", "name": "Fast"},
                            headers=ADMIN)).json()
    tok = (await fast.post("/v1/oauth/token", data={
        "grant_type": "client_credentials", "client_id": bank["client_id"],
        "client_secret": bank["client_secret"]})).json()["access_token"]
    rid = (await fast.post("/v1/admin/rounds", json=ROUND_BODY, headers=ADMIN)).json()["round_id"]

    async def down(*_a: Any, **_k: Any) -> Any:
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(RedisBook, "submit", down)
    got = [shape(await c.post(f"/v1/bank/rounds/{rid}/offers", json=OFFER_BODY,
                              headers={"Authorization": f"Bearer {tok}"})) for c in pair]
    assert got[0] == got[1] and got[0][0] == 503 and got[0][2]["code"] == "unavailable"
