"""What the stores return: typed, immutable records of the SQL rows (persistence/tables.py).

Times are integer milliseconds since the epoch (UTC), money integer minor units, rates
percent x 10^4, exactly as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from auction.model import RoundTerms

R = TypeVar("R")


def from_row(cls: type[R], row: Any) -> R:
    """A record from a SQLAlchemy row with (at least) the record's columns."""
    m: Mapping[str, Any] = row._mapping
    return cls(**{f.name: m[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class BankRecord:
    id: str
    code: str
    name: str
    client_id: str
    secret_hash: str
    active: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class ExporterRecord:
    id: str
    email: str
    full_name: str
    national_id: str
    mobile: str
    password_hash: str
    totp_secret: str
    active: bool
    failed_attempts: int
    created_at: int


@dataclass(frozen=True, slots=True)
class DeskUserRecord:
    """A person at a bank with a login of their own (``role``: viewer or trader)."""

    id: str
    bank_id: str
    email: str
    full_name: str
    role: str
    password_hash: str | None
    totp_secret: str | None
    activation_hash: str | None
    activation_until: int | None
    active: bool
    failed_attempts: int
    created_at: int

    @property
    def status(self) -> str:
        """``pending`` (an activation code outstanding), ``active`` or ``deactivated``."""
        if self.active:
            return "active"
        return "pending" if self.activation_hash is not None else "deactivated"


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """A person of the guarantee institution with a login for the console (issue #8)."""

    id: str
    email: str
    full_name: str
    password_hash: str | None
    totp_secret: str | None
    activation_hash: str | None
    activation_until: int | None
    active: bool
    failed_attempts: int
    created_at: int


@dataclass(frozen=True, slots=True)
class RoundRecord:
    id: str
    state: str  # auction.model.RoundState value
    opened_at: int
    closes_at: int
    closed_at: int | None
    binding_until: int | None
    currency: str
    loan_type: str
    loan_amount: int
    guarantee_amount: int
    tenor_months: int
    grace_months: int
    export_commitment: bool
    company: dict[str, Any]
    assessment: dict[str, Any] | None
    exporter_user_id: str | None
    application_id: str | None
    label_pool: list[str]
    persisted_seq: int
    created_at: int

    @property
    def terms(self) -> RoundTerms:
        return RoundTerms(self.id, self.currency, self.loan_type, self.loan_amount,
                          self.guarantee_amount, self.tenor_months, self.grace_months,
                          self.export_commitment, self.opened_at, self.closes_at)


@dataclass(frozen=True, slots=True)
class ClosingRecord:
    id: int
    round_id: str
    reference_number: str
    closed_at: int
    binding_until: int
    final_seq: int


@dataclass(frozen=True, slots=True)
class AcceptanceRecord:
    round_id: str
    offer_id: str
    exporter_user_id: str
    accepted_at: int


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: int
    actor: str
    action: str
    round_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CompanyRecord:
    id: str
    tax_id: str
    name: str
    sector: str | None
    is_sme: bool
    active: bool
    registry: dict[str, Any]
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    id: int
    company_id: str
    user_id: str
    text_version: str
    accepted_at: int
    withdrawn_at: int | None
    withdrawn_by: str | None


@dataclass(frozen=True, slots=True)
class ApplicationRecord:
    """An application: scored here, or taken in by the operator (``decision["decided_by"]``
    "operator": then company_id, user_id, score and band may be None)."""

    id: str
    company_id: str | None
    tax_id: str
    user_id: str | None
    status: str  # approved | rejected
    package_version: str
    currency: str
    loan_amount: int
    guarantee_amount: int
    guarantee_tl: int
    score: int | None
    band: str | None
    request: dict[str, Any]
    inputs: dict[str, Any]
    decision: dict[str, Any]
    package: dict[str, Any]
    round_id: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class ExposureRecord:
    id: int
    tax_id: str
    round_id: str
    application_id: str | None
    offer_id: str
    bank_id: str
    currency: str
    guarantee_amount: int
    guarantee_tl: int
    fx_rate_e4: int
    package_version: str
    granted_at: int
