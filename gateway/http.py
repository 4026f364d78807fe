"""Request plumbing shared by the route modules: the process's portal, the caller's identity,
idempotent creating requests, and turning a use case's outcome into a response."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from gateway import faults
from gateway.contract.requests import idempotency_key
from gateway.problems import problem, refuse
from gateway.requestinfo import note
from usecases.outcomes import Refusal
from usecases.portal import Portal
from usecases.security import Principal

if TYPE_CHECKING:
    from gateway.bootstrap import Runtime

T = TypeVar("T")


def runtime(request: Request | WebSocket) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def portal(request: Request | WebSocket) -> Portal:
    return runtime(request).portal


class FastJSONResponse(JSONResponse):
    """Compact UTF-8 JSON, as Starlette's JSONResponse writes it, rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(body: Any, status: int = 200) -> JSONResponse:
    return FastJSONResponse(body, status_code=status)


def reply(outcome: T | Refusal, render: Callable[[T], Any], status: int = 200) -> JSONResponse:
    """The use case's result rendered, or its refusal as the problem of the table."""
    if isinstance(outcome, Refusal):
        raise problem(outcome)
    return ok(render(outcome), status)


def address(request: Request) -> str:
    """The client's address: the TCP peer (a proxy in front must be trusted explicitly)."""
    return request.client.host if request.client is not None else "unknown"


async def throttled(request: Request, route: str, account: object) -> str | None:
    """Count one call of a route anyone may call (gateway/ratelimit.py); raises 429 past a
    limit. Returns the account the call names (None: none usable), for ``passed``."""
    acct = account.lower()[:320] if isinstance(account, str) and account else None
    t = runtime(request).throttle
    if t is not None:
        await t.attempt(route, address(request), acct)
    return acct


async def passed(request: Request, route: str, account: str | None) -> None:
    """The call succeeded: forget this account's failures from this address."""
    t = runtime(request).throttle
    if t is not None and account:
        await t.succeeded(route, address(request), account)


def principal(request: Request, *kinds: str) -> Principal:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise refuse("unauthorized", "send Authorization: Bearer <token>")
    rt = runtime(request)
    admin = rt.settings.admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        p = Principal("admin", "admin")
    else:
        found = rt.deps.tokens.verify(token)
        if found is None:
            raise refuse("unauthorized", "the token is invalid or expired")
        p = found
    note(request.scope).principal = p  # its kind and id go into the request's log line
    if kinds and p.kind not in kinds:
        # a token of another kind: the object space of that kind does not exist for it
        raise refuse("not_found", "no such resource for this caller")
    return p


async def idempotent(request: Request, actor: str, raw: bytes,
                     run: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    """Idempotency-Key for creating requests that are not offers (offers do it in the book):
    the same key and body from the same caller gets the first response again."""
    key = idempotency_key(request.headers.get("idempotency-key"))
    if key is None:
        return await run()
    guards = runtime(request).deps.guards
    policy = runtime(request).deps.policy
    ttl = policy.idempotency_ttl_s
    h = hashlib.sha256(request.url.path.encode() + b"\0" + raw).hexdigest()
    # held while it runs for a bounded time only: a process killed here leaves no key taken
    # for a day (tests/e2e/test_faults.py, ``request_begun``)
    prev = await guards.begin_request(actor, key, h, policy.idempotency_pending_s)
    if prev is None and faults.POINT is not None:
        faults.reached("request_begun")
    if prev is not None:
        if prev.get("h") != h:
            raise refuse("idempotency_mismatch",
                         "this Idempotency-Key was used with a different request")
        if prev.get("pending"):
            raise refuse("conflict", "the first request with this key is still running")
        return JSONResponse(prev["body"], status_code=prev["status"])
    try:
        resp = await run()
    except BaseException:
        with contextlib.suppress(Exception):  # the first failure is the one to report
            await guards.abandon_request(actor, key)
        raise
    await guards.finish_request(actor, key, h, resp.status_code, json.loads(bytes(resp.body)),
                                ttl)
    return resp


def offer_idempotency(bank_id: str, key: str | None, method: str, path: str, raw: bytes
                      ) -> tuple[str, str] | None:
    """An offer's Idempotency-Key scoped to the bank, and a hash of the request."""
    key = idempotency_key(key)
    if key is None:
        return None
    scoped = hashlib.sha256(f"{bank_id}\0{key}".encode()).hexdigest()[:32]
    body = hashlib.sha256(method.encode() + b"\0" + path.encode() + b"\0" + raw).hexdigest()[:32]
    return scoped, body
