"""Bounds on what one HTTP request may cost before a route sees it (pure ASGI, ahead of the
offer fast path and the router): the media type of a body, its size per route, and how long
the client may take to send it.

* A body (``Content-Length`` above 0, or chunked) must be ``application/json`` (or
  ``application/*+json``); the token endpoint takes ``application/x-www-form-urlencoded``,
  and so do the web pages (``gateway.pages``: ``/desk``..., their forms), which take nothing
  else and at most ``max_body_page`` bytes.
  Anything else is 415 ``unsupported_media_type`` before a byte of it is read: a cross-site
  form (``text/plain``) cannot post to the API.
* A body larger than its route's limit is 413 ``payload_too_large``: at once when
  ``Content-Length`` says so, else as soon as the bytes read pass it (nothing more is read).
  The routes anyone may call without a token take ``max_body_public`` bytes, the others
  ``max_body``.
* The whole body must arrive within ``body_timeout_s`` of the first read: else 408
  ``request_timeout`` (a slow-body client holds nothing longer than that). When the server's
  protocol (``gateway.serving``) has already received the whole body before the route runs,
  as it has for nearly every request (a body of a few hundred bytes comes in the packet of its
  headers), it says so in the scope (``BODY_COMPLETE``) and the body is read without a timer:
  nothing is left to wait for, and its size was checked from ``Content-Length``.

Header and idle timeouts and connections per address are the server's (gateway/serving.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.logs import get_logger
from gateway.pages.paths import is_page
from gateway.problems import Problem, refuse, response

log = get_logger("ige.bounds")

#: the routes that take no token (their bodies get the small limit)
PUBLIC_BODIES = frozenset({"/v1/oauth/token", "/v1/exporter/register",
                           "/v1/exporter/activate", "/v1/exporter/login"})
FORM_ROUTES = frozenset({"/v1/oauth/token"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: set in the scope by the server's protocol once the request's whole body has arrived
BODY_COMPLETE = "ige.body_complete"


@dataclass(frozen=True)
class BodyLimits:
    max_body: int = 64 * 1024
    max_body_public: int = 8 * 1024
    body_timeout_s: float = 10.0
    max_body_page: int = 8 * 1024


def form_route(path: str) -> bool:
    return path in FORM_ROUTES or is_page(path)


def media_type_ok(path: str, content_type: str) -> bool:
    mt = content_type.split(";", 1)[0].strip().lower()
    if form_route(path):
        return mt == "application/x-www-form-urlencoded"
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


def admit_body(scope: Scope, limits: BodyLimits) -> tuple[Problem | None, int | None]:
    """What the rules above say of a request before its body is read: a refusal, or None and
    the limit its body must be read under (None: nothing to wait for, no bound to apply)."""
    if scope["method"] not in _BODY_METHODS:
        return None, None
    path: str = scope["path"]
    length: int | None = None
    chunked = False
    ctype = ""
    for k, v in scope["headers"]:
        if k == b"content-length":
            try:
                length = int(v)
            except ValueError:
                length = -1
        elif k == b"transfer-encoding":
            chunked = True
        elif k == b"content-type":
            ctype = v.decode("latin-1")
    limit = limits.max_body_page if is_page(path) else \
        limits.max_body_public if path in PUBLIC_BODIES else limits.max_body
    has_body = chunked or (length is not None and length != 0)
    if length is not None and length < 0:
        return refuse("bad_request", "Content-Length is not a number"), None
    if has_body and not media_type_ok(path, ctype):
        want = ("application/x-www-form-urlencoded" if form_route(path)
                else "application/json")
        return refuse("unsupported_media_type", f"send the body as {want}"), None
    if length is not None and length > limit:
        return refuse("payload_too_large", f"this route takes at most {limit} bytes"), None
    if not chunked and (not has_body or scope.get(BODY_COMPLETE)):
        return None, None  # no body to wait for, or all of it here (its size checked above)
    return None, limit


def bounded_receive(receive: Receive, limit: int | None, limits: BodyLimits) -> Receive:
    """``receive`` as the request's body must be read: as it is, or bounded (``_bounded``)."""
    return receive if limit is None else _bounded(receive, limit, limits.body_timeout_s)


class RequestBounds:
    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused, limit = admit_body(scope, self.limits)
        if refused is not None:
            await response(refused, scope["path"])(scope, receive, send)
            return
        await self.app(scope, bounded_receive(receive, limit, self.limits), send)


def _bounded(receive: Receive, limit: int, timeout_s: float) -> Receive:
    """``receive`` that refuses a body past ``limit`` bytes or ``timeout_s`` seconds."""
    got = 0
    done = False
    deadline: float | None = None

    async def bounded() -> Message:
        nonlocal got, done, deadline
        if done:
            return await receive()  # after the body: disconnect messages, no bound
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):  # no task per call, unlike wait_for
                msg = await receive()
        except TimeoutError:
            log.info("body_timeout", timeout_s=timeout_s, read=got)
            raise refuse("request_timeout",
                         f"the body did not arrive within {timeout_s:g} s") from None
        if msg["type"] == "http.request":
            got += len(msg.get("body", b""))
            if got > limit:
                raise refuse("payload_too_large", f"this route takes at most {limit} bytes")
            if not msg.get("more_body", False):
                done = True
        return msg

    return bounded
