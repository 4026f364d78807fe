"""RFC 9457 problems: every refusal leaves the gateway through here, with a stable ``code``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

TYPE_BASE = "https://ige.example/problems/"

TITLES = {
    "validation_failed": "The request has invalid fields",
    "malformed_json": "The body is not valid JSON",
    "unauthorized": "Missing or invalid credentials",
    "invalid_client": "Unknown client or wrong secret",
    "forbidden": "Not allowed for this caller",
    "not_found": "No such object",
    "round_closed": "The offer round is closed",
    "round_open": "The offer round is still open",
    "offer_required": "Send an offer in this round first",
    "idempotency_mismatch": "Idempotency-Key reused with a different request",
    "binding_expired": "The binding period has ended",
    "already_accepted": "An offer was already accepted in this round",
    "conflict": "Conflicts with the current state",
    "method_not_allowed": "Method not allowed",
    "unsupported_media_type": "Send application/json",
    "totp_invalid": "The one-time code is wrong or already used",
    "locked": "Too many failed attempts",
    "not_activated": "The account is not activated yet",
    "company_not_found": "The trade registry does not know this tax id",
    "company_inactive": "The trade registry lists the company as not active",
    "not_signatory": "The caller is not an authorised signatory of the company",
    "consent_withdrawn": "The company's consent is withdrawn",
    "reapplication_blocked": "Rejected twice within 3 months: re-application not yet allowed",
    "unavailable": "A backing service is unavailable",
    "internal_error": "Internal error",
}


class Problem(Exception):
    def __init__(self, status: int, code: str, detail: str = "",
                 errors: list[dict[str, str]] | None = None, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": TITLES.get(self.code, self.code.replace("_", " ")),
            "status": self.status,
            "code": self.code,
            "detail": self.detail or TITLES.get(self.code, ""),
        }
        if instance:
            out["instance"] = instance
        if self.errors is not None:
            out["errors"] = self.errors
        out.update(self.extra)
        return out


def response(p: Problem, instance: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if p.status == 401 else None
    return JSONResponse(p.body(instance), status_code=p.status, headers=headers,
                        media_type="application/problem+json")


async def handle_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return response(exc, request.url.path)


def invalid(errors: list[dict[str, str]]) -> Problem:
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return Problem(422, "validation_failed", f"invalid fields: {fields}", errors=errors)
