"""The guarantee package: one versioned configuration object holding every number of the
KGF Treasury-backed rules (PORTAL.md §4) and of the scorecard."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from applications import rules
from applications.model import Exposure
from applications.package import (
    FX_SCALE,
    KGF_HD_2026_1,
    PACKAGES,
    FactorTable,
    GuaranteePackage,
    LoanTypeLimits,
    PackageError,
    package_by_version,
    package_in_force,
)
from applications.testing import M, inputs, request
from auction.model import OfferTerms, RoundTerms
from auction.rules import validate_offer

P = KGF_HD_2026_1


def test_the_default_package_holds_the_rules_of_the_domain_brief():
    assert P.group_limit_sme == 12_000_000_00
    assert P.group_limit_non_sme == 200_000_000_00
    assert (P.rate_cap_exporter_e4, P.rate_cap_sme_e4, P.rate_cap_non_sme_e4) == \
        (100_0000, 85_0000, 80_0000)
    assert P.loan_types["working_capital"] == LoanTypeLimits(6, 60, 12)
    assert P.loan_types["investment"] == LoanTypeLimits(6, 120, 36)
    assert P.public_debt_max_e4 == 20_0000
    assert P.bankruptcy_share_e4 == 25_0000
    assert (P.reapplication_rejections, P.reapplication_window_months,
            P.reapplication_quarters) == (2, 3, 1)
    assert P.scorecard.pass_mark == 40
    assert [b for b, _ in P.scorecard.bands] == ["A", "B", "C", "D", "E"]


def test_offers_are_checked_against_the_package_tenor_and_grace_caps():
    """The package is the one table of tenor and grace limits: offers are held to it."""
    def fields(lt: str, limits: LoanTypeLimits, tenor: int, grace: int) -> set[str]:
        rnd = RoundTerms("r", "TRY", lt, 10**9, 10**9, 24, 0, False, 0, 1)
        offer = OfferTerms(300_000, 10**9, tenor, grace, 1, 0, False, "")
        return {e.field for e in validate_offer(offer, rnd, limits)}

    for lt, limits in P.loan_types.items():

        top = limits.max_tenor_months
        assert fields(lt, limits, top, limits.max_grace_months) == set()
        assert fields(lt, limits, top + 1, 0) == {"tenor_months"}
        assert fields(lt, limits, limits.min_tenor_months - 1, 0) == {"tenor_months"}
        assert fields(lt, limits, top, limits.max_grace_months + 1) == {"grace_months"}


def test_packages_are_listed_oldest_first_with_unique_versions():
    versions = [p.version for p in PACKAGES]
    assert len(set(versions)) == len(versions)
    assert list(PACKAGES) == sorted(PACKAGES, key=lambda p: p.effective_from)
    assert package_by_version(P.version) is P
    assert package_by_version("no-such-version") is None


def _next(version: str = "KGF-HD-2027.1", days: int = 365, **changes: Any) -> GuaranteePackage:
    return dataclasses.replace(P, version=version,
                               effective_from=P.effective_from + timedelta(days=days), **changes)


@pytest.mark.parametrize("offset, expected", [
    (timedelta(days=-1), "KGF-HD-2026.1"),  # before the first package: the first one
    (timedelta(0), "KGF-HD-2026.1"),
    (timedelta(days=365) - timedelta(microseconds=1), "KGF-HD-2026.1"),
    (timedelta(days=365), "KGF-HD-2027.1"),  # the day the new version takes effect
    (timedelta(days=3000), "KGF-HD-2027.1"),
])
def test_the_package_in_force_is_the_latest_effective_one(offset: timedelta, expected: str):
    packages = (P, _next())
    assert package_in_force(P.effective_from + offset, packages).version == expected


def test_a_new_package_version_changes_the_decision_and_names_itself_on_it():
    raised = _next(group_limit_sme=20 * M)
    over = inputs(req=request(guarantee_amount=5 * M),
                  exposures=[Exposure("1100000014", external=10 * M)])
    old = rules.decide(over, P)
    new = rules.decide(over, raised)
    assert old.status == "rejected" and "group_limit_exceeded" in [r.code for r in old.reasons]
    assert new.status == "approved"
    assert (old.package_version, new.package_version) == ("KGF-HD-2026.1", "KGF-HD-2027.1")


@pytest.mark.parametrize("amount, currency, rate_e4, tl", [
    (100, "TRY", FX_SCALE, 100),
    (1, "USD", 40 * FX_SCALE, 40),  # one cent at 40 TL = 40 kuruş
    (1, "USD", 381_234, 39),  # 38.1234 kuruş rounds UP: a limit is never passed by rounding
    (300_000_00, "USD", 40 * FX_SCALE, 12_000_000_00),
    (3, "EUR", 333_334, 101),  # 100.0002 -> 101
])
def test_conversion_to_tl_is_exact_and_rounds_up(amount: int, currency: str, rate_e4: int,
                                                 tl: int):
    pkg = dataclasses.replace(P, fx_rates_e4={**P.fx_rates_e4, currency: rate_e4}) \
        if currency != "TRY" else P
    assert pkg.to_tl(amount, currency) == tl


@pytest.mark.parametrize("changes, problem", [
    ({"version": ""}, "version is empty"),
    ({"effective_from": datetime(2026, 1, 1)}, "time zone"),
    ({"group_limit_sme": 0}, "group limits"),
    ({"rate_cap_sme_e4": 100_0001}, "rate_cap_sme_e4"),
    ({"rate_cap_exporter_e4": 0}, "rate_cap_exporter_e4"),
    ({"public_debt_max_e4": -1}, "public_debt_max_e4"),
    ({"loan_types": {"investment": LoanTypeLimits(12, 6, 3)}}, "investment"),
    ({"fx_rates_e4": {"TRY": 2 * FX_SCALE}}, "TRY conversion rate"),
    ({"fx_rates_e4": {"TRY": FX_SCALE, "USD": 0}}, "conversion rates must be positive"),
    ({"reapplication_quarters": 0}, "re-application"),
    ({"consent_text_version": ""}, "consent_text_version"),
])
def test_a_contradictory_package_is_refused_when_built(changes: dict[str, Any], problem: str):
    with pytest.raises(PackageError, match=problem):
        dataclasses.replace(P, **changes)


@pytest.mark.parametrize("changes, problem", [
    ({"weights": {**P.scorecard.weights, "extra": 5}}, "same factors"),
    ({"weights": {k: 0 for k in P.scorecard.weights}}, "positive total"),
    ({"bands": (("A", 80), ("B", 80), ("E", 0))}, "strictly descending"),
    ({"bands": (("A", 80), ("B", 10))}, "end at 0"),
    ({"pass_mark": 101}, "pass mark"),
    ({"tables": {**P.scorecard.tables, "leverage": FactorTable(False, (("1", 101),))}},
     "points must be 0..100"),
    ({"groups": {**P.scorecard.groups, "leverage": "other"}}, "groups"),
])
def test_a_contradictory_scorecard_is_refused_when_built(changes: dict[str, Any], problem: str):
    with pytest.raises(PackageError, match=problem):
        dataclasses.replace(P, scorecard=dataclasses.replace(P.scorecard, **changes))


def test_the_package_record_is_plain_json_with_every_number():
    rec = json.loads(json.dumps(P.to_record()))
    assert rec["version"] == "KGF-HD-2026.1"
    assert rec["group_limit_sme"] == 12_000_000_00
    assert rec["fx_rates_e4"]["USD"] == 40 * FX_SCALE
    assert rec["scorecard"]["weights"]["credit_score"] == 20
    assert rec["scorecard"]["tables"]["credit_score"]["steps"][0] == ["1700", 100]
    assert "consent_text" not in rec


def test_the_wire_form_uses_decimal_strings():
    w = P.to_wire()
    assert w["group_limits_try"] == {"sme": "12000000.00", "non_sme": "200000000.00"}
    assert w["guarantee_rate_caps"] == {"exporter": "100.00", "sme": "85.00", "non_sme": "80.00"}
    assert w["fx_rates_try"]["USD"] == "40.0000"
    assert w["effective_from"] == "2026-01-01T00:00:00Z"
    assert w["consent_text_version"] == "MUV-2026-01"
    assert P.effective_from.tzinfo is UTC
