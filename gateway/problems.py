"""RFC 9457 problems: every refusal leaves the gateway through here, with a stable ``code``.

``PROBLEMS`` is the one table from a refusal's code (``usecases.outcomes.Refusal``, or the
gateway's own: authentication, parsing) to its HTTP status and title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse

from auction.rules import FieldError
from gateway.contract.errors import InvalidRequest
from gateway.requestinfo import note
from usecases.outcomes import Refusal

TYPE_BASE = "https://ige.example/problems/"

#: code -> (HTTP status, title)
PROBLEMS: dict[str, tuple[int, str]] = {
    "validation_failed": (422, "The request has invalid fields"),
    "malformed_json": (400, "The body is not valid JSON"),
    "unsupported_grant_type": (400, "unsupported grant type"),
    "bad_request": (400, "bad request"),
    "unauthorized": (401, "Missing or invalid credentials"),
    "invalid_client": (401, "Unknown client or wrong secret"),
    "totp_invalid": (401, "The one-time code is wrong"),
    "totp_reused": (401, "The one-time code was already used: wait for the next one"),
    "forbidden": (403, "Not allowed for this caller"),
    "offer_required": (403, "Send an offer in this round first"),
    "not_activated": (403, "The account is not activated yet"),
    "deactivated": (403, "The account was deactivated"),
    "not_signatory": (403, "The caller is not an authorised signatory of the company"),
    "not_found": (404, "No such object"),
    "method_not_allowed": (405, "Method not allowed"),
    "round_closed": (409, "The offer round is closed"),
    "round_open": (409, "The offer round is still open"),
    "offer_limit": (409, "The bank keeps as many live offers in this round as it may"),
    "binding_expired": (409, "The binding period has ended"),
    "already_accepted": (409, "An offer was already accepted in this round"),
    "conflict": (409, "Conflicts with the current state"),
    "consent_withdrawn": (409, "The company's consent is withdrawn"),
    "reapplication_blocked": (409, "Rejected twice within 3 months: re-application not yet "
                                   "allowed"),
    "payload_too_large": (413, "The body is larger than this route takes"),
    "unsupported_media_type": (415, "Send application/json"),
    "idempotency_mismatch": (422, "Idempotency-Key reused with a different request"),
    "company_not_found": (422, "The trade registry does not know this tax id"),
    "company_inactive": (422, "The trade registry lists the company as not active"),
    "locked": (423, "Too many failed attempts"),
    "rate_limited": (429, "Too many requests; retry after the time in Retry-After"),
    "request_timeout": (408, "The request was not sent in time"),
    "internal_error": (500, "Internal error"),
    "unavailable": (503, "A backing service is unavailable"),
    "replication_pending": (503, "Not yet confirmed by enough Redis replicas; retry with the "
                                 "same Idempotency-Key"),
}
#: codes whose title is the code itself (no entry of their own in the titles the docs list)
_UNTITLED = frozenset({"unsupported_grant_type", "bad_request"})
TITLES: dict[str, str] = {c: t for c, (_, t) in PROBLEMS.items() if c not in _UNTITLED}


class Problem(Exception):
    """A refusal on its way to the wire, with its HTTP status."""

    def __init__(self, status: int, code: str, detail: str = "",
                 errors: Sequence[FieldError] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.extra = dict(extra or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        title = TITLES.get(self.code, self.code.replace("_", " "))
        out: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail or TITLES.get(self.code, ""),
        }
        if instance:
            out["instance"] = instance
        if self.errors is not None:
            out["errors"] = [{"field": e.field, "code": e.code, "message": e.message}
                             for e in self.errors]
        out.update(self.extra)
        return out


def problem(r: Refusal, status: int | None = None) -> Problem:
    """The problem of a refusal (``status`` overrides the table's, for the rare code whose
    status the contract fixed otherwise)."""
    return Problem(status or PROBLEMS[r.code][0], r.code, r.detail, r.errors, r.extra)


def refuse(code: str, detail: str = "", status: int | None = None, **extra: Any) -> Problem:
    """A refusal of the gateway's own (authentication, parsing), as its problem."""
    return problem(Refusal(code, detail, extra=extra), status)


def unreadable(e: InvalidRequest) -> Problem:
    """The problem of a request that did not parse (gateway.contract)."""
    return Problem(e.status, e.code, e.detail, e.errors)


#: what a path keeps unescaped in ``instance`` (RFC 3986 pchar and "/", less "%")
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


def instance_of(request: Request) -> str:
    """The problem's ``instance``: the request's path as a URI reference (RFC 3986), i.e.
    percent-encoded (UTF-8) as a client would send it: ``/v1/bank/rounds/%C3%94``, never the
    decoded ``/v1/bank/rounds/Ô``."""
    path: str = request.scope["path"]
    return quote(path.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)


def response(p: Problem, instance: str | None = None,
             headers: Mapping[str, str] | None = None) -> JSONResponse:
    out = dict(headers or {})
    if p.status == 401:
        out["WWW-Authenticate"] = "Bearer"
    retry = p.extra.get("retry_after")
    if isinstance(retry, int):  # 429 and 503: when to come back, in seconds
        out["Retry-After"] = str(retry)
    return JSONResponse(p.body(instance), status_code=p.status, headers=out or None,
                        media_type="application/problem+json")


async def handle_problem(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidRequest):
        exc = unreadable(exc)
    assert isinstance(exc, Problem)
    note(request.scope).code = exc.code
    return response(exc, instance_of(request))
