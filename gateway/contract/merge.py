"""One 422 for parse and rule errors: pure helpers that run a rule set over the values that
did parse and add its errors to a ``Parsed`` (no HTTP here).

Each reproduces what the gateway's handlers have always done:

* offers: the round rules (``auction.rules.validate_offer``) run over the parsed terms, with
  neutral values standing in for fields that did not parse; a rule error on a field that is
  already bad is dropped. With no parse error this is exactly ``validate_offer``;
* manual intake: the round-terms rules run when every field they read parsed;
* applications: the guarantee package's form rules run when every term field parsed.
"""

from __future__ import annotations

from applications import rules as application_rules
from applications.model import ApplicationRequest
from applications.package import GuaranteePackage
from auction.model import RATE_SCALE, OfferTerms, RoundTerms
from auction.rules import validate_offer, validate_round_terms
from gateway.contract.errors import FieldError
from gateway.contract.reading import Parsed
from gateway.contract.requests import ApplicationForm, OfferTermsBody, RoundIntakeBody

__all__ = ["NEUTRAL_RATE_E4", "probe_terms", "with_application_rules", "with_offer_rules",
           "with_round_rules"]

#: stands in for an annual_rate that did not parse (a valid rate, so it adds no error)
NEUTRAL_RATE_E4 = 10 * RATE_SCALE

_ROUND_RULE_FIELDS = frozenset({"loan_type", "currency", "loan_amount", "guarantee_amount",
                                "tenor_months", "grace_months"})


def probe_terms(p: Parsed[OfferTermsBody], rnd: RoundTerms) -> OfferTerms:
    """The offer's terms, with a neutral value for every field that did not parse."""
    if p.model is not None:
        return p.model.terms()
    v, bad = p.values, p.bad

    def good(name: str) -> bool:
        return name not in bad and v.get(name) is not None

    cond = v.get("conditions")
    return OfferTerms(
        v["annual_rate"] if good("annual_rate") else NEUTRAL_RATE_E4,
        v["amount"] if good("amount") else rnd.loan_amount,
        v["tenor_months"] if good("tenor_months") else rnd.tenor_months,
        v["grace_months"] if good("grace_months") else 0,
        v["repayment_every_months"] if good("repayment_every_months") else 1,
        v["upfront_fee"] if good("upfront_fee") else 0,
        bool(v.get("assumes_export_commitment")),
        cond if isinstance(cond, str) else "")


def with_offer_rules(p: Parsed[OfferTermsBody], rnd: RoundTerms) -> Parsed[OfferTermsBody]:
    bad = p.bad
    rule_errors: list[FieldError] = [
        {"field": e.field, "code": e.code, "message": e.message}
        for e in validate_offer(probe_terms(p, rnd), rnd) if e.field not in bad]
    return p.with_errors(rule_errors)


def with_round_rules(p: Parsed[RoundIntakeBody]) -> Parsed[RoundIntakeBody]:
    if not _ROUND_RULE_FIELDS.isdisjoint(p.bad):
        return p
    v = p.values
    probe = RoundTerms("probe", v["currency"], v["loan_type"], v["loan_amount"],
                       v["guarantee_amount"], v["tenor_months"], v["grace_months"],
                       bool(v.get("export_commitment")), 0, 0)
    return p.with_errors([{"field": e.field, "code": e.code, "message": e.message}
                          for e in validate_round_terms(probe)])


def with_application_rules(p: Parsed[ApplicationForm], package: GuaranteePackage
                           ) -> Parsed[ApplicationForm]:
    if not _ROUND_RULE_FIELDS.isdisjoint(p.bad):
        return p
    v = p.values
    req = ApplicationRequest(v["loan_type"], v["currency"], v["loan_amount"],
                             v["guarantee_amount"], v["tenor_months"], v["grace_months"])
    return p.with_errors([{"field": r.field or "", "code": r.code, "message": r.text}
                          for r in application_rules.check_terms(req, package)])
