"""Request plumbing shared by every route module: the core of the app, caller identity,
JSON bodies, idempotent creating POSTs and plain JSON answers."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from gateway.parsing import parse_json
from gateway.problems import Problem
from gateway.security import Principal
from gateway.services import Core


def core(request: Request | WebSocket) -> Core:
    return request.app.state.core  # type: ignore[no-any-return]


def ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def principal(request: Request, *kinds: str) -> Principal:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "unauthorized", "send Authorization: Bearer <token>")
    c = core(request)
    if c.settings.admin_token and hmac.compare_digest(token.encode(), c.settings.admin_token.encode()):
        p = Principal("admin", "admin")
    else:
        found = c.tokens.verify(token)
        if found is None:
            raise Problem(401, "unauthorized", "the token is invalid or expired")
        p = found
    if kinds and p.kind not in kinds:
        # a token of another kind: the object space of that kind does not exist for it
        raise Problem(404, "not_found", "no such resource for this caller")
    return p


async def body_of(request: Request) -> tuple[dict[str, Any], bytes]:
    raw = await request.body()
    return parse_json(raw), raw


async def idempotent(request: Request, actor: str, raw: bytes,
                     run: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    """Idempotency-Key for creating POSTs that are not offers (offers do it inside Lua)."""
    key = request.headers.get("idempotency-key")
    if not key:
        return await run()
    c = core(request)
    rkey = "ige:idem:" + hashlib.sha256(f"{actor}\0{key}".encode()).hexdigest()
    h = hashlib.sha256(request.url.path.encode() + b"\0" + raw).hexdigest()
    if not await c.redis.set(rkey, json.dumps({"h": h, "pending": True}), nx=True, ex=86400):
        prev = json.loads(await c.redis.get(rkey) or "{}")
        if prev.get("h") != h:
            raise Problem(422, "idempotency_mismatch",
                          "this Idempotency-Key was used with a different request")
        if prev.get("pending"):
            raise Problem(409, "conflict", "the first request with this key is still running")
        return JSONResponse(prev["body"], status_code=prev["status"])
    try:
        resp = await run()
    except Problem:
        await c.redis.delete(rkey)
        raise
    await c.redis.set(rkey, json.dumps({"h": h, "status": resp.status_code,
                                        "body": json.loads(bytes(resp.body))}), ex=86400)
    return resp


