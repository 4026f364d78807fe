"""The scorecard: factor tables at their edges, exact ratios, weights, bands and the pass
mark, all read from the guarantee package."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from applications import scoring
from applications.package import KGF_HD_2026_1, FactorTable
from applications.testing import M, exports, financials, risk

SC = KGF_HD_2026_1.scorecard
TINY = Fraction(1, 10**9)


def _edges() -> list[tuple[str, Fraction, int]]:
    """For every step of every default table: the threshold itself gets the step's points,
    a value just on the wrong side gets the next step's (or the table's otherwise)."""
    out = []
    for name, t in SC.tables.items():
        for i, (thr, pts) in enumerate(t.steps):
            nxt = t.steps[i + 1][1] if i + 1 < len(t.steps) else t.otherwise
            at = Fraction(thr)
            out.append((name, at, pts))
            out.append((name, at - TINY if t.higher_is_better else at + TINY, nxt))
    return out


@pytest.mark.parametrize("name, value, points", _edges(),
                         ids=[f"{n}={float(v):g}" for n, v, _ in _edges()])
def test_every_factor_table_at_and_just_beyond_each_threshold(name: str, value: Fraction,
                                                              points: int):
    assert scoring.points_for(value, SC.tables[name]) == points


@pytest.mark.parametrize("value, points", [
    (None, 7), (scoring.BEST, 90), (scoring.WORST, 3),
    (Fraction(5), 90), (Fraction(4), 3)])
def test_missing_best_and_worst_values(value: object, points: int):
    t = FactorTable(True, (("5", 90),), otherwise=3, missing=7)
    assert scoring.points_for(value, t) == points  # type: ignore[arg-type]


@pytest.mark.parametrize("pairs, expected", [
    ([(1, 40), (1, 39)], 40),  # 39.5 rounds half up
    ([(3, 40), (1, 38)], 40),  # 39.5
    ([(1, 40), (2, 39)], 39),  # 39.33
    ([(1, 100)], 100), ([(1, 0)], 0), ([], 0), ([(0, 80)], 0),
])
def test_weighted_mean_rounds_half_up(pairs: list[tuple[int, int]], expected: int):
    assert scoring.weighted_mean(pairs) == expected


@pytest.mark.parametrize("score, band", [
    (100, "A"), (80, "A"), (79, "B"), (65, "B"), (64, "C"), (50, "C"), (49, "D"), (40, "D"),
    (39, "E"), (0, "E")])
def test_band_edges(score: int, band: str):
    assert scoring.band_for(score, SC) == band


@pytest.mark.parametrize("credit, band", [
    (1900, "very_high"), (1700, "very_high"), (1699, "high"), (1500, "high"),
    (1499, "medium"), (1300, "medium"), (1299, "hard"), (1100, "hard"),
    (1099, "practically_none"), (0, "practically_none")])
def test_risk_centre_credit_bands_follow_the_findeks_like_bands(credit: int, band: str):
    assert scoring.credit_band(credit, SC) == band


def only(factor: str, pass_mark: int = 40):
    """A scorecard that weighs one factor only."""
    return dataclasses.replace(SC, weights={k: (1 if k == factor else 0) for k in SC.weights},
                               pass_mark=pass_mark)


@pytest.mark.parametrize("credit, score, passed", [
    (1300, 55, True), (1299, 25, False), (1100, 25, False), (1700, 100, True)])
def test_the_score_is_the_weighted_points_and_passes_at_the_mark(credit: int, score: int,
                                                                 passed: bool):
    card = scoring.score(financials(), risk(credit_score=credit), exports(), only("credit_score"))
    assert (card.score, card.passed) == (score, passed)


@pytest.mark.parametrize("pass_mark, passed", [(55, True), (56, False)])
def test_the_pass_mark_is_configurable(pass_mark: int, passed: bool):
    card = scoring.score(financials(), risk(credit_score=1300), exports(),
                         only("credit_score", pass_mark))
    assert card.score == 55 and card.passed is passed and card.pass_mark == pass_mark


def test_the_default_weights_over_known_inputs():
    fin = financials(current_assets=30 * M, current_liabilities=20 * M,  # 1.5 -> 80
                     total_liabilities=60 * M, equity=40 * M, total_assets=100 * M,  # 1.5 -> 75
                     revenue=100 * M, net_profit=2 * M)  # margin 2 % -> 50; equity 40 % -> 100
    rsk = risk(credit_score=1450, bounced_cheques=1, protested_bills=0,  # 55; 1 incident -> 50
               total_limits=40 * M, total_risk=30 * M)  # 75 % -> 70
    exp = exports(years_exporting=3, exports_last_12m=25 * M,  # 75; share 25 % -> 75
                  exports_prev_12m=25 * M)  # growth 0 % -> 70
    card = scoring.score(fin, rsk, exp, SC)
    pts = {f.name: f.points for f in card.factors}
    assert pts == {"current_ratio": 80, "leverage": 75, "net_margin": 50, "equity_ratio": 100,
                   "credit_score": 55, "payment_incidents": 50, "limit_utilisation": 70,
                   "export_years": 75, "export_share": 75, "export_growth": 70}
    # (12*80 + 12*75 + 8*50 + 8*100 + 20*55 + 8*50 + 7*70 + 10*75 + 10*75 + 5*70) / 100 = 69.0
    assert (card.score, card.band) == (69, "B")
    # financials 3060/40 = 76.5 -> 77; risk 1990/35 = 56.9 -> 57; exports 1850/25 = 74
    assert card.group_scores == {"financials": 77, "risk": 57, "exports": 74}
    assert {f.name: f.value for f in card.factors}["current_ratio"] == "1.5000"


def test_ratios_are_exact_not_floats():
    # 1/3 of a kuruş above 1.2 is still 1.2 or more: exact comparison, no float error
    fin = financials(current_assets=36 * M + 1, current_liabilities=30 * M)
    card = scoring.score(fin, risk(), exports(), SC)
    f = next(f for f in card.factors if f.name == "current_ratio")
    assert f.points == 60 and f.value == "1.2000"
    fin = financials(current_assets=36 * M - 1, current_liabilities=30 * M)
    f = next(f for f in scoring.score(fin, risk(), exports(), SC).factors
             if f.name == "current_ratio")
    assert f.points == 40


@pytest.mark.parametrize("fin_changes, risk_changes, exp_changes, factor, value, points", [
    ({"current_liabilities": 0}, {}, {}, "current_ratio", "best", 100),
    ({"current_liabilities": 0, "current_assets": 0}, {}, {}, "current_ratio", None, 0),
    ({"equity": 0}, {}, {}, "leverage", "worst", 0),
    ({"equity": -5 * M}, {}, {}, "leverage", "worst", 0),
    ({"revenue": 0}, {}, {}, "net_margin", None, 0),
    ({"revenue": 0}, {}, {}, "export_share", None, 0),
    ({}, {"total_limits": 0, "total_risk": 0}, {}, "limit_utilisation", None, 60),
    ({}, {"total_limits": 0, "total_risk": 1}, {}, "limit_utilisation", "worst", 0),
    ({}, {}, {"exports_prev_12m": 0}, "export_growth", None, 50),
    ({}, {}, {"exports_last_12m": 40 * M, "exports_prev_12m": 50 * M}, "export_growth", "-20",
     10),
    ({}, {"bounced_cheques": 2, "protested_bills": 1}, {}, "payment_incidents", "3", 0),
])
def test_special_values(fin_changes: dict[str, int], risk_changes: dict[str, int],
                        exp_changes: dict[str, int], factor: str, value: str | None,
                        points: int):
    card = scoring.score(financials(**fin_changes), risk(**risk_changes),
                         exports(**exp_changes), SC)
    f = next(f for f in card.factors if f.name == factor)
    assert (f.value, f.points) == (value, points)


def test_the_score_stays_within_0_and_100():
    worst = scoring.score(financials(current_assets=0, equity=-1, revenue=1, net_profit=-1,
                                     total_assets=1),
                          risk(credit_score=0, bounced_cheques=9, total_limits=1, total_risk=9),
                          exports(years_exporting=0, exports_last_12m=0, exports_prev_12m=9), SC)
    # everything at its floor: only export_growth keeps its 10 points (weight 5): 0.5 -> 1
    assert (worst.score, worst.band, worst.passed) == (1, "E", False)
    best = scoring.score(financials(current_liabilities=0, total_liabilities=0, equity=100 * M,
                                    net_profit=50 * M),
                         risk(total_risk=0),
                         exports(exports_last_12m=100 * M, exports_prev_12m=1 * M), SC)
    assert (best.score, best.band) == (100, "A")
