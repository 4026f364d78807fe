"""A decision's reasons in plain words, in the page's language: each reason of the decision
record is worded by its stable ``code`` from the catalogue, its numbers (the record's
``params``: decimal strings) formatted by Babel. A code this table does not know, or a record
without the numbers its wording needs (one decided before the numbers were recorded), is shown
as the decision record words it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.pages.i18n import Formats


def N_(message: str) -> str:
    """A message for the catalogue, translated where it is shown."""
    return message


Fmt = Callable[[Formats, str], str]


def _try(f: Formats, v: str) -> str:
    return f.money(v, "TRY")


def _pct(f: Formats, v: str) -> str:
    return f.pct(v)


def _num(f: Formats, v: str) -> str:
    return f.number(v)


def _text(f: Formats, v: str) -> str:
    return v


#: the guarantee-rate cap's group of companies, by the record's ``who``
WHO = {
    "exporter": N_("exporters and FX-earning companies"),
    "sme": N_("SMEs that are not exporters"),
    "non_sme": N_("non-SMEs that are not exporters"),
}

#: the wording of each reason code and how each of its numbers is written
REASONS: dict[str, tuple[str, dict[str, Fmt]]] = {
    "score_passed": (N_("Score {score} (band {band}) reaches the pass mark {pass_mark}."),
                     {"score": _num, "band": _text, "pass_mark": _num}),
    "score_below_pass_mark": (N_("Score {score} (band {band}) is below the pass mark "
                                 "{pass_mark}."),
                              {"score": _num, "band": _text, "pass_mark": _num}),
    "group_limit_exceeded": (N_("The risk group's guarantee limit is {limit_try}; "
                                "{exposure_try} already counts towards it for the company and "
                                "its {related} related companies, so at most {left_try} of "
                                "guarantee is left (requested: {requested_try})."),
                             {"limit_try": _try, "exposure_try": _try, "related": _num,
                              "left_try": _try, "requested_try": _try}),
    "guarantee_rate_above_cap": (N_("The guarantee rate may be at most {cap_pct} for {who}."),
                                 {"cap_pct": _pct, "who": _text}),
    "unpaid_guarantee_commission": (N_("{amount_try} of guarantee commission from earlier "
                                       "periods is unpaid."), {"amount_try": _try}),
    "public_debt_above_limit": (N_("Overdue tax and social-security debt of {debt_try} is "
                                   "above {max_pct} of the loan ({loan_try})."),
                                {"debt_try": _try, "max_pct": _pct, "loan_try": _try}),
    "public_debt_paid_first": (N_("Overdue tax and social-security debt of {debt_try} must be "
                                  "paid first from the loan."), {"debt_try": _try}),
    "public_debt_restructured": (N_("The overdue tax and social-security debt is "
                                    "restructured and the restructuring holds."), {}),
    "company_inactive": (N_("The trade registry lists the company as not active."), {}),
    "non_performing_loan": (N_("The risk centre classifies the company's loans as "
                               "non-performing."), {}),
    "watch_list_loan": (N_("The risk centre lists the company's loans under close monitoring "
                           "(group 2)."), {}),
    "bankruptcy_in_group": (N_("Bankruptcy, liquidation or concordat in the company or in a "
                               "company of its group owned 25 percent or more."), {}),
    "financials_missing": (N_("No financial statements were found: the financial factors "
                              "score as missing."), {}),
    "operator_intake": (N_("Taken in by the guarantee institution after its own review."), {}),
}


def worded(reason: Mapping[str, Any], f: Formats, gettext: Callable[[str], str]) -> str:
    """One reason of a decision record in the page's language (``gettext``: its catalogue)."""
    recorded = str(reason.get("text", ""))
    known = REASONS.get(str(reason.get("code", "")))
    if known is None:
        return recorded
    message, formats = known
    params = reason.get("params")
    if formats and not isinstance(params, Mapping):
        return recorded
    values: dict[str, str] = {}
    try:
        for name, fmt in formats.items():
            raw = str(params[name]) if isinstance(params, Mapping) else ""
            values[name] = gettext(WHO[raw]) if name == "who" else fmt(f, raw)
        return gettext(message).format(**values)
    except (KeyError, ValueError, ArithmeticError, IndexError):
        return recorded
