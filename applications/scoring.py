"""The transparent scorecard of the decision-support system (İDES): pure functions.

Ten factors in three groups (financial ratios, risk-centre signals, export track record).
Each factor's value is computed exactly (``Fraction``), looked up in its table of the package
(first step reached gives the points, 0..100), and the score is the weighted mean of the
points, rounded half up to an integer 0..100. The band is the first band whose lower bound the
score reaches; the application passes at ``pass_mark`` (default 40) or above.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from applications.model import (
    ExportRecord,
    FactorScore,
    Financials,
    RiskReport,
    ScoreCard,
)
from applications.package import FactorTable, ScorecardConfig

#: a factor's value; ``BEST`` / ``WORST`` stand for values the table cannot take (a zero
#: denominator that makes the ratio as good as it gets, a negative equity)
BEST = "best"
WORST = "worst"
Value = Fraction | str | None


def points_for(value: Value, table: FactorTable) -> int:
    if value is None:
        return table.missing
    if value == BEST:
        return table.steps[0][1] if table.steps else table.otherwise
    if value == WORST:
        return table.otherwise
    assert isinstance(value, Fraction)
    for threshold, pts in table.steps:
        t = Fraction(threshold)
        if (value >= t) if table.higher_is_better else (value <= t):
            return pts
    return table.otherwise


def _ratio(num: int, den: int, pct: bool = False) -> Fraction:
    return Fraction(num * (100 if pct else 1), den)


def _factor_values(fin: Financials | None, risk: RiskReport,
                   exports: ExportRecord) -> dict[str, Value]:
    v: dict[str, Value] = {}
    if fin is None:
        v.update(current_ratio=None, leverage=None, net_margin=None, equity_ratio=None,
                 export_share=None)
    else:
        if fin.current_liabilities > 0:
            v["current_ratio"] = _ratio(fin.current_assets, fin.current_liabilities)
        else:
            v["current_ratio"] = BEST if fin.current_assets > 0 else None
        v["leverage"] = _ratio(fin.total_liabilities, fin.equity) if fin.equity > 0 else WORST
        v["net_margin"] = _ratio(fin.net_profit, fin.revenue, pct=True) if fin.revenue > 0 else None
        v["equity_ratio"] = (_ratio(fin.equity, fin.total_assets, pct=True)
                             if fin.total_assets > 0 else None)
        v["export_share"] = (_ratio(exports.exports_last_12m, fin.revenue, pct=True)
                             if fin.revenue > 0 else None)
    v["credit_score"] = Fraction(risk.credit_score)
    v["payment_incidents"] = Fraction(risk.bounced_cheques + risk.protested_bills)
    if risk.total_limits > 0:
        v["limit_utilisation"] = _ratio(risk.total_risk, risk.total_limits, pct=True)
    else:
        v["limit_utilisation"] = WORST if risk.total_risk > 0 else None
    v["export_years"] = Fraction(exports.years_exporting)
    if exports.exports_prev_12m > 0:
        v["export_growth"] = _ratio(exports.exports_last_12m - exports.exports_prev_12m,
                                    exports.exports_prev_12m, pct=True)
    else:
        v["export_growth"] = None
    return v


def value_text(value: Value) -> str | None:
    """A factor value for people: a decimal string with at most 4 places."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value.denominator == 1:
        return str(value.numerator)
    d = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    return f"{d:f}"


def weighted_mean(pairs: list[tuple[int, int]]) -> int:
    """sum(weight * points) / sum(weight), rounded half up; 0 when no weight."""
    num = sum(w * p for w, p in pairs)
    den = sum(w for w, _ in pairs)
    if den == 0:
        return 0
    return (2 * num + den) // (2 * den)


def band_for(score: int, config: ScorecardConfig) -> str:
    for band, low in config.bands:
        if score >= low:
            return band
    return config.bands[-1][0]


def credit_band(credit_score: int, config: ScorecardConfig) -> str:
    for label, low in config.credit_bands:
        if credit_score >= low:
            return label
    return config.credit_bands[-1][0]


def score(fin: Financials | None, risk: RiskReport, exports: ExportRecord,
          config: ScorecardConfig) -> ScoreCard:
    values = _factor_values(fin, risk, exports)
    factors = tuple(
        FactorScore(name, config.groups[name], value_text(values[name]),
                    points_for(values[name], config.tables[name]), config.weights[name])
        for name in config.weights)
    total = weighted_mean([(f.weight, f.points) for f in factors])
    groups = {g: weighted_mean([(f.weight, f.points) for f in factors if f.group == g])
              for g in ("financials", "risk", "exports")}
    return ScoreCard(total, band_for(total, config), config.pass_mark, factors, groups)


FACTOR_TEXT: dict[str, str] = {
    "current_ratio": "current assets / current liabilities",
    "leverage": "total liabilities / equity",
    "net_margin": "net profit / revenue, %",
    "equity_ratio": "equity / total assets, %",
    "credit_score": "risk-centre credit score (0-1900)",
    "payment_incidents": "bounced cheques + protested bills, last 24 months",
    "limit_utilisation": "total risk / total limits at all banks, %",
    "export_years": "years with exports",
    "export_share": "exports of the last 12 months / revenue, %",
    "export_growth": "export growth over the previous 12 months, %",
}

__all__: list[str] = [
    "FACTOR_TEXT",
    "band_for",
    "credit_band",
    "points_for",
    "score",
    "value_text",
    "weighted_mean",
]
