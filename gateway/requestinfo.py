"""What the request middleware (``gateway.middleware``) learns about a request while the app
handles it: its id, who asked, the problem code it was answered with, and for offers which
operation it was and whether it was an idempotent replay. The middleware puts one in the ASGI
scope; the code that learns something writes it there (``note``), and the middleware turns it
into the request's log line and metrics once the response starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from usecases.security import Principal

SCOPE_KEY = "ige.request"


class RequestInfo:
    __slots__ = ("code", "op", "principal", "replayed", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.principal: Principal | None = None
        self.code: str | None = None  # the problem answered (RFC 9457 ``code``)
        self.op: str | None = None  # offers: "submit" | "revise"
        self.replayed = False  # offers: the Idempotency-Key's first answer, again


#: for requests that did not pass through the middleware (unit tests calling a handler)
_NOWHERE = RequestInfo("")


def note(scope: Mapping[str, Any]) -> RequestInfo:
    """The request's info, to write what was learned into (a throwaway one when the request
    did not come through the middleware)."""
    info: RequestInfo | None = scope.get(SCOPE_KEY)
    return _NOWHERE if info is None else info


def info_of(scope: Mapping[str, Any]) -> RequestInfo | None:
    info: RequestInfo | None = scope.get(SCOPE_KEY)
    return info
