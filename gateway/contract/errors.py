"""Refusals of request parsing, free of HTTP plumbing: the gateway maps ``InvalidRequest`` to an
RFC 9457 problem (``status``, ``code``, ``detail`` and, for 422, ``errors``) in one place."""

from __future__ import annotations

from auction.rules import FieldError

__all__ = ["MALFORMED_JSON", "FieldError", "FieldProblem", "InvalidRequest", "malformed_json",
           "not_object", "validation_failed"]


class FieldProblem(ValueError):
    """Raised by a converter that names its own error code and message (the message is used
    as it is, without the ``"<field>: "`` prefix of a plain ``ValueError``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidRequest(Exception):
    """The request cannot be served as sent (400 or 422)."""

    def __init__(self, status: int, code: str, detail: str,
                 errors: list[FieldError] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors


def validation_failed(errors: list[FieldError]) -> InvalidRequest:
    """422 listing every offending field; the detail names them, sorted."""
    fields = ", ".join(sorted({e.field for e in errors}))
    return InvalidRequest(422, "validation_failed", f"invalid fields: {fields}", errors)


MALFORMED_JSON = "the body must be a JSON object"


def malformed_json(detail: str = MALFORMED_JSON) -> InvalidRequest:
    return InvalidRequest(400, "malformed_json", detail)


def not_object() -> InvalidRequest:
    return InvalidRequest(422, "validation_failed", MALFORMED_JSON,
                          [FieldError("", "not_object", "expected an object")])
