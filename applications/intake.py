"""An operator's intake is an application too: an application approved outside the portal, or
after a manual review, that the operator takes in with ``POST /v1/admin/rounds``. No scorecard
ran; the operator decided. What it is stored as (its request, its decision and what the decision
read) is made here, pure, so that the intake (``usecases.operator``) and the migration that gave
the rounds taken in before it their records (``persistence`` 0003) write the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from applications.package import GuaranteePackage

#: who decided an application
DECIDED_BY_SCORECARD = "scorecard"
DECIDED_BY_OPERATOR = "operator"
OPERATOR_REASON = {
    "code": "operator_intake",
    "kind": "note",
    "text": ("Approved by the guarantee institution's operator (manual intake): approved outside "
             "the portal or after a manual review; no scorecard ran in the portal."),
}


@dataclass(frozen=True)
class IntakeTerms:
    """The terms of an intake, as the round is opened with them (money in minor units)."""

    loan_type: str
    currency: str
    loan_amount: int
    guarantee_amount: int
    tenor_months: int
    grace_months: int
    export_commitment: bool


@dataclass(frozen=True)
class IntakeApplication:
    """The columns of an intake's application row but its ids and times."""

    status: str
    tax_id: str
    package_version: str
    guarantee_tl: int
    score: int | None
    band: str | None
    request: dict[str, Any]
    inputs: dict[str, Any]
    decision: dict[str, Any]
    package: dict[str, Any]


def _score(assessment: Mapping[str, Any] | None) -> tuple[int | None, str | None]:
    """The operator's score and band, when the assessment it sent carries them."""
    a = assessment or {}
    score, band = a.get("score"), a.get("band")
    ok_score = isinstance(score, int) and not isinstance(score, bool) and 0 <= score <= 100
    ok_band = isinstance(band, str) and 1 <= len(band) <= 2
    return (score if ok_score else None), (band if ok_band else None)


def operator_application(terms: IntakeTerms, company: Mapping[str, Any],
                         assessment: Mapping[str, Any] | None, exporter_user_id: str | None,
                         actor: str, package: GuaranteePackage) -> IntakeApplication:
    """The application record of an intake: approved, decided by the operator (``actor``),
    under the package in force (its conversion rate books the guarantee in TL, as for an
    application scored here)."""
    score, band = _score(assessment)
    decision: dict[str, Any] = {"decided_by": DECIDED_BY_OPERATOR, "actor": actor,
                                "reasons": [dict(OPERATOR_REASON)],
                                "package_version": package.version}
    if score is not None:
        decision["score"] = score
    if band is not None:
        decision["band"] = band
    request = {"loan_type": terms.loan_type, "currency": terms.currency,
               "loan_amount": terms.loan_amount, "guarantee_amount": terms.guarantee_amount,
               "tenor_months": terms.tenor_months, "grace_months": terms.grace_months,
               "related_companies": [], "preferred_banks": [],
               "export_commitment": terms.export_commitment, "purpose": ""}
    inputs = {"source": "operator_intake", "applicant": {
        "name": company.get("name"), "tax_id": company.get("tax_id"),
        "is_sme": company.get("is_sme"), "sector": company.get("sector")},
        "assessment": dict(assessment or {}), "exporter_user_id": exporter_user_id}
    return IntakeApplication(
        "approved", str(company.get("tax_id") or ""), package.version,
        package.to_tl(terms.guarantee_amount, terms.currency), score, band, request, inputs,
        decision, package.to_record())
