"""The guarantee rules of PORTAL.md §4 and the decision: pure functions over plain data.

Every number comes from the ``GuaranteePackage`` passed in; time from the ``now`` passed in.
Each refusal has a stable reason ``code``:

terms of the form (checked before anything is looked up; the gateway answers 422):
    loan_amount_not_positive, guarantee_not_positive, guarantee_above_loan,
    currency_not_configured, loan_type_unknown, tenor_below_minimum, tenor_above_maximum,
    grace_negative, grace_above_maximum, grace_not_below_tenor
intake rules needing the company's data (a stored rejection):
    company_inactive, guarantee_rate_above_cap, group_limit_exceeded
hard rules (reject whatever the score):
    non_performing_loan, watch_list_loan, bankruptcy_in_group, public_debt_above_limit,
    unpaid_guarantee_commission
score:
    score_below_pass_mark (rejects), score_passed (note)
notes (no effect): public_debt_paid_first, public_debt_restructured, financials_missing
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from applications import scoring
from applications.model import (
    ApplicationRequest,
    Decision,
    DecisionInputs,
    Exposure,
    GroupMember,
    Reason,
    RegistryRecord,
    RelatedCompany,
    money_text,
    pct_text,
)
from applications.package import RATE_SCALE, GuaranteePackage

ISTANBUL = ZoneInfo("Europe/Istanbul")


# ----------------------------------------------------------------------------- terms
def check_terms(req: ApplicationRequest, package: GuaranteePackage) -> list[Reason]:
    """Rules on the form alone (every one found, not the first)."""
    out: list[Reason] = []

    def bad(code: str, field: str, text: str) -> None:
        out.append(Reason(code, text, "intake", field))

    if req.loan_amount <= 0:
        bad("loan_amount_not_positive", "loan_amount", "the loan amount must be above 0")
    if req.guarantee_amount <= 0:
        bad("guarantee_not_positive", "guarantee_amount", "the guarantee amount must be above 0")
    elif req.loan_amount > 0 and req.guarantee_amount > req.loan_amount:
        bad("guarantee_above_loan", "guarantee_amount",
            "the guarantee amount must not exceed the loan amount")
    if req.currency not in package.fx_rates_e4:
        bad("currency_not_configured", "currency",
            f"package {package.version} has no conversion rate for {req.currency}")
    limits = package.loan_types.get(req.loan_type)
    if limits is None:
        bad("loan_type_unknown", "loan_type",
            f"package {package.version} has no rules for loan type {req.loan_type}")
        return out
    if req.tenor_months < limits.min_tenor_months:
        bad("tenor_below_minimum", "tenor_months",
            f"the tenor must be at least {limits.min_tenor_months} months")
    elif req.tenor_months > limits.max_tenor_months:
        bad("tenor_above_maximum", "tenor_months",
            f"a {req.loan_type} loan's tenor is at most {limits.max_tenor_months} months")
    if req.grace_months < 0:
        bad("grace_negative", "grace_months", "the grace period must not be negative")
    elif req.grace_months > limits.max_grace_months:
        bad("grace_above_maximum", "grace_months",
            f"a {req.loan_type} loan's grace period is at most {limits.max_grace_months} months")
    elif req.grace_months >= req.tenor_months:
        bad("grace_not_below_tenor", "grace_months",
            "the grace period must be shorter than the tenor")
    return out


# ----------------------------------------------------------------------------- the risk group
def risk_group(applicant: RegistryRecord, declared: Sequence[RelatedCompany],
               registry: dict[str, RegistryRecord | None]) -> tuple[GroupMember, ...]:
    """The applicant's risk group: the related companies declared on the form and those the
    trade registry knows, each once (the larger share wins), never the applicant itself.
    ``registry`` holds the registry's record of each member (None: unknown to it)."""
    members: dict[str, GroupMember] = {}
    for a in applicant.affiliates:
        if a.tax_id != applicant.tax_id:
            members[a.tax_id] = GroupMember(a.tax_id, a.relation, a.share_e4, "registry",
                                            registry.get(a.tax_id))
    for r in declared:
        if r.tax_id == applicant.tax_id:
            continue
        known = members.get(r.tax_id)
        if known is None or r.share_e4 > known.share_e4:
            members[r.tax_id] = GroupMember(r.tax_id, r.relation, r.share_e4,
                                            "declared" if known is None else known.source,
                                            registry.get(r.tax_id))
    return tuple(sorted(members.values(), key=lambda m: m.tax_id))


# ----------------------------------------------------------------------------- intake
def check_eligibility(inputs: DecisionInputs, package: GuaranteePackage
                      ) -> tuple[list[Reason], int, int, int]:
    """Rules needing the company's data. Returns (reasons, guarantee in kuruş TL, what already
    counts towards the group limit, the group limit)."""
    req, app = inputs.request, inputs.applicant
    out: list[Reason] = []
    if not app.active:
        out.append(Reason("company_inactive", "the trade registry lists the company as not "
                          "active", "intake"))
    exporter = inputs.exports.is_exporter
    cap = package.rate_cap_e4(app.is_sme, exporter)
    if req.loan_amount > 0 and req.guarantee_amount * 100 * RATE_SCALE > cap * req.loan_amount:
        who = ("exporters and FX-earning companies" if exporter
               else "SMEs that are not exporters" if app.is_sme
               else "non-SMEs that are not exporters")
        out.append(Reason("guarantee_rate_above_cap",
                          f"the guarantee rate may be at most {pct_text(cap)} % for {who}",
                          "intake", "guarantee_amount",
                          (("cap_pct", pct_text(cap)),
                           ("who", "exporter" if exporter else "sme" if app.is_sme
                            else "non_sme"))))
    guarantee_tl = package.to_tl(req.guarantee_amount, req.currency) \
        if req.currency in package.fx_rates_e4 else 0
    exposure = exposure_total(inputs.exposures)
    limit = package.group_limit(app.is_sme)
    if exposure + guarantee_tl > limit:
        out.append(Reason(
            "group_limit_exceeded",
            f"the group limit is {money_text(limit)} TL ({'SME' if app.is_sme else 'non-SME'}); "
            f"{money_text(exposure)} TL already counts towards it for the company and its "
            f"{len(inputs.group)} related companies, so at most "
            f"{money_text(max(0, limit - exposure))} TL of guarantee is left "
            f"(requested {money_text(guarantee_tl)} TL)", "intake", "guarantee_amount",
            (("limit_try", money_text(limit)), ("exposure_try", money_text(exposure)),
             ("related", str(len(inputs.group))),
             ("left_try", money_text(max(0, limit - exposure))),
             ("requested_try", money_text(guarantee_tl)))))
    return out, guarantee_tl, exposure, limit


# ----------------------------------------------------------------------------- hard rules
def check_hard_rules(inputs: DecisionInputs, package: GuaranteePackage) -> list[Reason]:
    out: list[Reason] = []
    risk, fin, req = inputs.risk, inputs.financials, inputs.request
    if risk.non_performing:
        out.append(Reason("non_performing_loan", "the risk centre classifies the company's "
                          "loans as non-performing", "hard_rule"))
    if risk.watch_list:
        out.append(Reason("watch_list_loan", "the risk centre lists the company's loans under "
                          "close monitoring (group 2)", "hard_rule"))
    insolvent = []
    if inputs.applicant.insolvency:
        insolvent.append(f"the company itself ({inputs.applicant.insolvency})")
    for m in inputs.group:
        if m.registry is not None and m.registry.insolvency \
                and m.share_e4 >= package.bankruptcy_share_e4:
            insolvent.append(f"{m.registry.name} ({m.registry.insolvency}, "
                             f"{pct_text(m.share_e4)} % owned)")
    if insolvent:
        out.append(Reason("bankruptcy_in_group", "bankruptcy, liquidation or concordat in the "
                          "group: " + "; ".join(insolvent), "hard_rule"))
    if risk.unpaid_guarantee_commission > 0:
        out.append(Reason("unpaid_guarantee_commission",
                          f"{money_text(risk.unpaid_guarantee_commission)} TL of guarantee "
                          "commission from earlier periods is unpaid", "hard_rule", None,
                          (("amount_try", money_text(risk.unpaid_guarantee_commission)),)))
    if fin is None:
        out.append(Reason("financials_missing", "no financial statements were found; the "
                          "financial factors score as missing", "note"))
        return out
    debt = fin.overdue_tax_debt + fin.overdue_ssi_debt
    if debt > 0:
        if fin.debt_restructured and not fin.restructuring_broken:
            out.append(Reason("public_debt_restructured", "the overdue tax / social-security "
                              "debt is restructured and the restructuring holds", "note"))
        elif req.currency in package.fx_rates_e4:
            loan_tl = package.to_tl(req.loan_amount, req.currency)
            allowed = package.public_debt_max_e4
            if debt * 100 * RATE_SCALE > allowed * loan_tl:
                out.append(Reason(
                    "public_debt_above_limit",
                    f"overdue tax and social-security debt of {money_text(debt)} TL is above "
                    f"{pct_text(allowed)} % of the loan ({money_text(loan_tl)} TL)", "hard_rule",
                    None, (("debt_try", money_text(debt)), ("max_pct", pct_text(allowed)),
                           ("loan_try", money_text(loan_tl)))))
            else:
                out.append(Reason(
                    "public_debt_paid_first",
                    f"overdue tax and social-security debt of {money_text(debt)} TL must be "
                    "paid first from the loan", "note", None,
                    (("debt_try", money_text(debt)),)))
    return out


# ----------------------------------------------------------------------------- decision
def _card(card: Any) -> tuple[tuple[str, str], ...]:
    return (("score", str(card.score)), ("band", str(card.band)),
            ("pass_mark", str(card.pass_mark)))


def decide(inputs: DecisionInputs, package: GuaranteePackage) -> Decision:
    """Approve or reject, with every reason. Everything is evaluated (the score too) so that
    a rejection lists all that is wrong, not the first thing found."""
    reasons = check_terms(inputs.request, package)
    elig, guarantee_tl, exposure, limit = check_eligibility(inputs, package)
    reasons += elig
    reasons += check_hard_rules(inputs, package)
    card = scoring.score(inputs.financials, inputs.risk, inputs.exports, package.scorecard)
    if card.passed:
        reasons.append(Reason("score_passed", f"score {card.score} (band {card.band}) reaches "
                              f"the pass mark {card.pass_mark}", "note", None, _card(card)))
    else:
        reasons.append(Reason("score_below_pass_mark", f"score {card.score} (band {card.band}) "
                              f"is below the pass mark {card.pass_mark}", "score", None,
                              _card(card)))
    rejected = any(r.rejects for r in reasons)
    # rejecting reasons first, in rule order; notes after them
    ordered = tuple([r for r in reasons if r.rejects] + [r for r in reasons if not r.rejects])
    return Decision("rejected" if rejected else "approved", card, ordered, package.version,
                    guarantee_tl, exposure, limit, inputs.exports.is_exporter)


def bank_assessment(inputs: DecisionInputs, decision: Decision,
                    package: GuaranteePackage) -> dict[str, Any]:
    """The assessment banks see in the pool: score, band and the facts behind them. Preferred
    banks are a flag for information; they never restrict who sees or bids on the request."""
    fin, risk, ex = inputs.financials, inputs.risk, inputs.exports
    factors = {f.name: f.value for f in decision.scorecard.factors}
    return {
        "score": decision.scorecard.score,
        "band": decision.scorecard.band,
        "pass_mark": decision.scorecard.pass_mark,
        "group_scores": dict(decision.scorecard.group_scores),
        "package_version": package.version,
        "financials": None if fin is None else {
            "period": fin.period,
            "revenue": money_text(fin.revenue),
            "net_profit": money_text(fin.net_profit),
            "equity": money_text(fin.equity),
            "total_assets": money_text(fin.total_assets),
            "current_ratio": factors.get("current_ratio"),
            "leverage": factors.get("leverage"),
            "net_margin_pct": factors.get("net_margin"),
            "equity_ratio_pct": factors.get("equity_ratio"),
        },
        "risk": {
            "credit_score": risk.credit_score,
            "credit_band": scoring.credit_band(risk.credit_score, package.scorecard),
            "non_performing": risk.non_performing,
            "watch_list": risk.watch_list,
            "bounced_cheques": risk.bounced_cheques,
            "protested_bills": risk.protested_bills,
            "limit_utilisation_pct": factors.get("limit_utilisation"),
        },
        "exports": {
            "is_exporter": ex.is_exporter,
            "years_exporting": ex.years_exporting,
            "exports_last_12m": money_text(ex.exports_last_12m),
            "exports_prev_12m": money_text(ex.exports_prev_12m),
            "countries": ex.countries,
            "export_share_pct": factors.get("export_share"),
            "export_growth_pct": factors.get("export_growth"),
        },
        "group": {
            "related_companies": len(inputs.group),
            "exposure_try": money_text(decision.group_exposure_tl),
            "limit_try": money_text(decision.group_limit_tl),
        },
        "notes": [r.to_wire() for r in decision.reasons
                  if r.kind == "note" and r.code != "score_passed"],
        "preferred_banks": list(inputs.request.preferred_banks),
    }


# ----------------------------------------------------------------------------- re-application
def add_months(t: datetime, months: int) -> datetime:
    """The same day and time ``months`` later, the day clamped to the month's end."""
    y, m = divmod(t.month - 1 + months, 12)
    year, month = t.year + y, m + 1
    nxt_y, nxt_m = (year + 1, 1) if month == 12 else (year, month + 1)
    last_day = (datetime(nxt_y, nxt_m, 1) - datetime(year, month, 1)).days
    return t.replace(year=year, month=month, day=min(t.day, last_day))


def quarter_start(t: datetime) -> datetime:
    return t.replace(month=(t.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0, second=0,
                     microsecond=0)


def reapplication_not_before(rejections: Sequence[datetime],
                             package: GuaranteePackage) -> datetime | None:
    """When a company whose requests were rejected may be assessed again; None: now.

    Rejected ``reapplication_rejections`` (2) times within ``reapplication_window_months``
    (3) -- the last two rejections at most 3 calendar months apart -- the company waits until
    ``reapplication_quarters`` (1) whole quarterly financial-data period(s) (calendar quarters,
    Europe/Istanbul) lie after the last rejection: between 3 and 6 months."""
    n = package.reapplication_rejections
    rs = sorted(rejections)
    if len(rs) < n:
        return None
    first, last = rs[-n], rs[-1]
    if last > add_months(first, package.reapplication_window_months):
        return None
    local = last.astimezone(ISTANBUL)
    q = quarter_start(local)
    if q < local:
        q = add_months(q, 3)
    return add_months(q, 3 * package.reapplication_quarters).astimezone(UTC)


def may_reapply(rejections: Sequence[datetime], now: datetime,
                package: GuaranteePackage) -> tuple[bool, datetime | None]:
    nb = reapplication_not_before(rejections, package)
    return (nb is None or now >= nb), nb


def exposure_total(exposures: Sequence[Exposure]) -> int:
    """What counts towards the group limit: each company of the group once."""
    return sum(e.total for e in {e.tax_id: e for e in exposures}.values())


# ----------------------------------------------------------------------------- the ledger
def booked_guarantee(loan_amount: int, guarantee_amount: int, offer_amount: int | None) -> int:
    """The guarantee an accepted offer books in the exposure ledger: the round's guarantee
    scaled by offer amount / loan amount (a bank may lend less than asked, never more)."""
    amount = loan_amount if offer_amount is None else min(offer_amount, loan_amount)
    return guarantee_amount * amount // loan_amount

