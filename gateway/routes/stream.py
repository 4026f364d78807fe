"""The live stream: single-use tickets over HTTP, then the WebSocket (``gateway.hub``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from gateway import views
from gateway.connection import SUBPROTOCOLS
from gateway.contract.limits import STREAM_HANDSHAKE_REFUSED, STREAM_SESSION_ENDED
from gateway.http import ok, portal, principal, runtime
from gateway.logs import get_logger
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.stream import Hub

log = get_logger("ige.stream")


async def ticket(request: Request) -> Response:
    p = principal(request)
    return ok(views.ticket(await portal(request).accounts.issue_ticket(p)), 201)


def _origin_ok(ws: WebSocket, settings: Settings) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser
    if origin in settings.allowed_origins:
        return True
    host = ws.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def stream(ws: WebSocket) -> None:
    settings = runtime(ws).settings
    offered = [s.strip() for s in ws.headers.get("sec-websocket-protocol", "").split(",")
               if s.strip()]
    proto = next((s for s in offered if s in SUBPROTOCOLS), None)
    ticket = ws.query_params.get("ticket", "")
    # a ticket presented is used up, whatever else is wrong with the handshake: a refused
    # handshake never leaves a usable ticket behind (and it is never logged)
    got = await portal(ws).accounts.redeem(ticket) if 0 < len(ticket) <= 100 else None
    who, session = got if got is not None else (None, None)
    origin_ok = _origin_ok(ws, settings)
    if proto is None or who is None or not origin_ok:
        # what was wrong, never the ticket itself nor the Origin's text
        reason = "ticket" if who is None else "subprotocol" if proto is None else "origin"
        log.info("stream_refused", reason=reason,
                 principal=who.kind if who else None, principal_id=who.id if who else None)
        await ws.close(code=STREAM_HANDSHAKE_REFUSED)
        return
    hub: Hub = ws.app.state.hub
    if not hub.admit(who):  # too many WebSockets of this principal here
        await ws.close(code=STREAM_HANDSHAKE_REFUSED)
        return
    try:
        await ws.accept(subprotocol=proto)
    except BaseException:
        hub.release(who)
        raise
    watch = None if session is None else asyncio.create_task(
        _session_watch(ws, session, settings.heartbeat_s), name="stream-session-watch")
    try:
        await hub.serve(ws, who, proto)
    finally:
        if watch is not None:
            watch.cancel()


async def _session_watch(ws: WebSocket, session: str, every_s: float) -> None:
    """A web page's WebSocket lives as long as its browser session: checked (and renewed:
    a page watching its books is in use) once a heartbeat period; closed with
    STREAM_SESSION_ENDED once the session was ended (logout, the person deactivated) or
    reached its absolute limit. A Redis error skips a check, never closes."""
    sessions = portal(ws).sessions
    while True:
        await asyncio.sleep(every_s)
        try:
            live = await sessions.keep(session)
        except Exception:  # noqa: BLE001 - Redis away: the hub reports it; check again later
            continue
        if not live:
            log.info("stream_session_ended")
            with contextlib.suppress(Exception):
                await ws.close(code=STREAM_SESSION_ENDED)
            return


#: the api role issues tickets; the stream role serves the WebSocket
TICKETS: list[BaseRoute] = [Route("/v1/stream/tickets", ticket, methods=["POST"])]
WEBSOCKET: list[BaseRoute] = [WebSocketRoute("/v1/stream", stream)]
