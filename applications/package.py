"""The guarantee package: every number of the KGF Treasury-backed guarantee rules (PORTAL.md §4,
seeds 001 and 004) and of the scorecard, in ONE immutable, versioned configuration object.

Rules elsewhere in this package read their numbers from a ``GuaranteePackage`` passed in; none
is a module constant. The package in force is chosen by date (``package_in_force``) and its
``version`` is recorded on every application, so a decision can be explained later with the
numbers it was made under.

Units: money is integer kuruş (TL x 100), rates and shares are percent x 10^4 (``RATE_SCALE``,
``"85.00"`` -> 850_000), FX rates are TL per unit of currency x 10^4 (``"40.0000"`` ->
400_000). Nothing here is a binary float.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from applications.model import money_text, pct_text

RATE_SCALE = 10_000  # percent x 10^4, as in auction.model
FX_SCALE = 10_000  # TL per unit x 10^4
TL = 100  # kuruş per TL


def to_tl(amount_minor: int, fx_rate_e4: int) -> int:
    """An amount in kuruş TL at a conversion rate (TL per unit x 10^4), rounded UP to the
    kuruş: a limit is never passed by rounding a foreign-currency amount down."""
    return -(-amount_minor * fx_rate_e4 // FX_SCALE)


class PackageError(ValueError):
    """A guarantee package that contradicts itself (a bug in configuration, not a refusal)."""


@dataclass(frozen=True)
class LoanTypeLimits:
    min_tenor_months: int
    max_tenor_months: int
    max_grace_months: int


@dataclass(frozen=True)
class FactorTable:
    """Points of one scorecard factor: the first step the value reaches gives its points.

    ``higher_is_better``: a step is reached when value >= threshold (steps best first);
    otherwise when value <= threshold. ``otherwise``: points when no step is reached;
    ``missing``: points when the value cannot be computed (no statements, no limits...).
    Thresholds are decimal strings, compared exactly."""

    higher_is_better: bool
    steps: tuple[tuple[str, int], ...]
    otherwise: int = 0
    missing: int = 0


@dataclass(frozen=True)
class ScorecardConfig:
    """Weights (integers, any positive total), factor tables, bands and the pass mark."""

    weights: Mapping[str, int]
    tables: Mapping[str, FactorTable]
    groups: Mapping[str, str]  # factor -> financials | risk | exports
    #: (band, lowest score in it), best first; the last one must start at 0
    bands: tuple[tuple[str, int], ...] = (("A", 80), ("B", 65), ("C", 50), ("D", 40), ("E", 0))
    pass_mark: int = 40
    #: risk-centre credit score bands (Findeks-like 0-1900, PORTAL.md §6): (label, lowest)
    credit_bands: tuple[tuple[str, int], ...] = (
        ("very_high", 1700), ("high", 1500), ("medium", 1300), ("hard", 1100),
        ("practically_none", 0))


@dataclass(frozen=True)
class GuaranteePackage:
    version: str
    effective_from: datetime
    description: str
    #: group limits in kuruş TL (company + risk group, all KGF guarantees at every bank)
    group_limit_sme: int
    group_limit_non_sme: int
    #: guarantee rate caps, percent x 10^4
    rate_cap_exporter_e4: int  # exporters / FX-earning, SME and non-SME
    rate_cap_sme_e4: int
    rate_cap_non_sme_e4: int
    loan_types: Mapping[str, LoanTypeLimits]
    #: configured conversion rates for the TL limits (TL per unit x 10^4); TRY is 1
    fx_rates_e4: Mapping[str, int]
    #: overdue tax + social-security debt allowed, percent of the loan x 10^4 (paid first from it)
    public_debt_max_e4: int
    #: bankruptcy / liquidation / concordat counts in companies owned at least this much (x 10^4)
    bankruptcy_share_e4: int
    #: re-application: this many rejections within this many months block the company...
    reapplication_rejections: int
    reapplication_window_months: int
    #: ...until this many whole quarterly financial-data periods passed since the last one
    reapplication_quarters: int
    scorecard: ScorecardConfig
    #: the consent (muvafakatname) text version an exporter must accept
    consent_text_version: str
    consent_text: str = field(repr=False, default="")

    def __post_init__(self) -> None:
        problems = validate_package(self)
        if problems:
            raise PackageError(f"guarantee package {self.version}: " + "; ".join(problems))

    def group_limit(self, is_sme: bool) -> int:
        return self.group_limit_sme if is_sme else self.group_limit_non_sme

    def rate_cap_e4(self, is_sme: bool, is_exporter: bool) -> int:
        if is_exporter:
            return self.rate_cap_exporter_e4
        return self.rate_cap_sme_e4 if is_sme else self.rate_cap_non_sme_e4

    def to_tl(self, amount_minor: int, currency: str) -> int:
        """An amount in kuruş TL at the package's configured rate, rounded UP to the kuruş:
        a limit is never passed by rounding a foreign-currency request down."""
        return to_tl(amount_minor, self.fx_rates_e4[currency])

    def to_record(self) -> dict[str, Any]:
        """Plain JSON (ints and strings) of every number the rules read."""
        out = asdict(self)
        out["effective_from"] = self.effective_from.isoformat()
        out.pop("consent_text", None)
        out["scorecard"]["weights"] = dict(self.scorecard.weights)
        out["scorecard"]["groups"] = dict(self.scorecard.groups)
        out["scorecard"]["tables"] = {k: asdict(v) for k, v in self.scorecard.tables.items()}
        plain: dict[str, Any] = json.loads(json.dumps(out))  # tuples -> lists, as JSON reads back
        return plain

    def to_wire(self) -> dict[str, Any]:
        """The package as an exporter reads it: money and rates as decimal strings."""
        money, pct = money_text, pct_text
        return {
            "version": self.version,
            "effective_from": self.effective_from.astimezone(UTC)
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "description": self.description,
            "group_limits_try": {"sme": money(self.group_limit_sme),
                                 "non_sme": money(self.group_limit_non_sme)},
            "guarantee_rate_caps": {"exporter": pct(self.rate_cap_exporter_e4),
                                    "sme": pct(self.rate_cap_sme_e4),
                                    "non_sme": pct(self.rate_cap_non_sme_e4)},
            "loan_types": {k: asdict(v) for k, v in self.loan_types.items()},
            "fx_rates_try": {k: f"{v // FX_SCALE}.{v % FX_SCALE:04d}"
                             for k, v in self.fx_rates_e4.items()},
            "public_debt_max_pct": pct(self.public_debt_max_e4),
            "bankruptcy_share_pct": pct(self.bankruptcy_share_e4),
            "reapplication": {"rejections": self.reapplication_rejections,
                              "within_months": self.reapplication_window_months,
                              "wait_quarters": self.reapplication_quarters},
            "scorecard": {"weights": dict(self.scorecard.weights),
                          "bands": [{"band": b, "from": s} for b, s in self.scorecard.bands],
                          "pass_mark": self.scorecard.pass_mark},
            "consent_text_version": self.consent_text_version,
        }


def validate_package(p: GuaranteePackage) -> list[str]:
    out: list[str] = []
    if not p.version:
        out.append("version is empty")
    if p.effective_from.tzinfo is None:
        out.append("effective_from needs a time zone")
    if p.group_limit_sme <= 0 or p.group_limit_non_sme <= 0:
        out.append("group limits must be positive")
    for name in ("rate_cap_exporter_e4", "rate_cap_sme_e4", "rate_cap_non_sme_e4",
                 "public_debt_max_e4", "bankruptcy_share_e4"):
        if not 0 < getattr(p, name) <= 100 * RATE_SCALE:
            out.append(f"{name} must be in (0, 100 %]")
    for lt, r in p.loan_types.items():
        if not 0 < r.min_tenor_months <= r.max_tenor_months or r.max_grace_months < 0:
            out.append(f"loan type {lt}: inconsistent tenor/grace limits")
    if p.fx_rates_e4.get("TRY") != FX_SCALE:
        out.append("the TRY conversion rate must be 1")
    if any(v <= 0 for v in p.fx_rates_e4.values()):
        out.append("conversion rates must be positive")
    if p.reapplication_rejections < 1 or p.reapplication_window_months < 1 \
            or p.reapplication_quarters < 1:
        out.append("re-application rule needs positive numbers")
    sc = p.scorecard
    if set(sc.weights) != set(sc.tables) or set(sc.weights) != set(sc.groups):
        out.append("scorecard weights, tables and groups must name the same factors")
    if any(w < 0 for w in sc.weights.values()) or sum(sc.weights.values()) <= 0:
        out.append("scorecard weights must be non-negative with a positive total")
    if set(sc.groups.values()) - {"financials", "risk", "exports"}:
        out.append("scorecard groups are financials, risk and exports")
    lows = [low for _, low in sc.bands]
    if not lows or lows[-1] != 0 or lows != sorted(lows, reverse=True) \
            or len(set(lows)) != len(lows):
        out.append("scorecard bands must be strictly descending and end at 0")
    if not 0 <= sc.pass_mark <= 100:
        out.append("pass mark must be 0..100")
    for name, t in sc.tables.items():
        if not all(0 <= pts <= 100 for _, pts in t.steps) or not 0 <= t.otherwise <= 100 \
                or not 0 <= t.missing <= 100:
            out.append(f"factor {name}: points must be 0..100")
    if not p.consent_text_version:
        out.append("consent_text_version is empty")
    return out


# ----------------------------------------------------------------------------- defaults
DEFAULT_SCORECARD = ScorecardConfig(
    weights={
        "current_ratio": 12, "leverage": 12, "net_margin": 8, "equity_ratio": 8,
        "credit_score": 20, "payment_incidents": 8, "limit_utilisation": 7,
        "export_years": 10, "export_share": 10, "export_growth": 5,
    },
    groups={
        "current_ratio": "financials", "leverage": "financials", "net_margin": "financials",
        "equity_ratio": "financials", "credit_score": "risk", "payment_incidents": "risk",
        "limit_utilisation": "risk", "export_years": "exports", "export_share": "exports",
        "export_growth": "exports",
    },
    tables={
        # current assets / current liabilities
        "current_ratio": FactorTable(True, (("2.0", 100), ("1.5", 80), ("1.2", 60),
                                            ("1.0", 40), ("0.8", 20))),
        # total liabilities / equity (no or negative equity: 0 points)
        "leverage": FactorTable(False, (("1.0", 100), ("2.0", 75), ("3.0", 50), ("5.0", 25))),
        # net profit / revenue, percent
        "net_margin": FactorTable(True, (("10", 100), ("5", 75), ("2", 50), ("0", 25))),
        # equity / total assets, percent
        "equity_ratio": FactorTable(True, (("40", 100), ("25", 70), ("15", 40), ("5", 15))),
        # risk-centre credit score 0-1900 (Findeks-like bands, PORTAL.md §6)
        "credit_score": FactorTable(True, (("1700", 100), ("1500", 80), ("1300", 55),
                                           ("1100", 25))),
        # bounced cheques + protested bills, last 24 months
        "payment_incidents": FactorTable(False, (("0", 100), ("1", 50), ("2", 20))),
        # total risk / total limits at all banks, percent (no limits at all: 60 points)
        "limit_utilisation": FactorTable(False, (("50", 100), ("75", 70), ("90", 40),
                                                 ("100", 15)), missing=60),
        # whole years with exports
        "export_years": FactorTable(True, (("5", 100), ("3", 75), ("1", 45))),
        # exports of the last 12 months / revenue, percent
        "export_share": FactorTable(True, (("50", 100), ("25", 75), ("10", 50), ("1", 25))),
        # exports of the last 12 months vs the 12 before, percent (none before: 50 points)
        "export_growth": FactorTable(True, (("10", 100), ("0", 70), ("-10", 40)),
                                     otherwise=10, missing=50),
    },
)

CONSENT_TEXT_2026 = (
    "Muvafakatname: Şirketimizin ticaret sicili, mali tabloları, Risk Merkezi kayıtları ve "
    "ihracat performansı bilgilerinin Kredi Garanti Fonu ve İGE Kefalet Portalı'na üye "
    "bankalarla kefalet başvurusunun değerlendirilmesi amacıyla paylaşılmasına muvafakat "
    "ederiz. (Consent: we agree that our company's trade-registry record, financial "
    "statements, risk-centre records and export performance are shared with the guarantee "
    "institution and the partner banks of the portal to assess our guarantee request. This "
    "consent can be withdrawn at any time; withdrawal stops new processing.)")

#: KGF Treasury-backed guarantee package (Hazine destekli kefalet), rules of PORTAL.md §4.
#: FX rates are the configured conversion rates for the TL limits of this package version.
KGF_HD_2026_1 = GuaranteePackage(
    version="KGF-HD-2026.1",
    effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    description="KGF Treasury-backed guarantee for export loans (PORTAL.md §4)",
    group_limit_sme=12_000_000 * TL,
    group_limit_non_sme=200_000_000 * TL,
    rate_cap_exporter_e4=100 * RATE_SCALE,
    rate_cap_sme_e4=85 * RATE_SCALE,
    rate_cap_non_sme_e4=80 * RATE_SCALE,
    loan_types={
        "working_capital": LoanTypeLimits(min_tenor_months=6, max_tenor_months=60,
                                          max_grace_months=12),
        "investment": LoanTypeLimits(min_tenor_months=6, max_tenor_months=120,
                                     max_grace_months=36),
    },
    fx_rates_e4={"TRY": FX_SCALE, "USD": 40 * FX_SCALE, "EUR": 45 * FX_SCALE},
    public_debt_max_e4=20 * RATE_SCALE,
    bankruptcy_share_e4=25 * RATE_SCALE,
    reapplication_rejections=2,
    reapplication_window_months=3,
    reapplication_quarters=1,
    scorecard=DEFAULT_SCORECARD,
    consent_text_version="MUV-2026-01",
    consent_text=CONSENT_TEXT_2026,
)

#: every package ever in force, oldest first (a new version is appended, never edited)
PACKAGES: tuple[GuaranteePackage, ...] = (KGF_HD_2026_1,)


def package_in_force(now: datetime,
                     packages: Sequence[GuaranteePackage] = PACKAGES) -> GuaranteePackage:
    """The package whose ``effective_from`` is the latest one not after ``now``; before the
    first package, the first one (the portal has no earlier rules)."""
    chosen = packages[0]
    for p in sorted(packages, key=lambda p: p.effective_from):
        if p.effective_from <= now:
            chosen = p
    return chosen


def package_by_version(version: str,
                       packages: Sequence[GuaranteePackage] = PACKAGES) -> GuaranteePackage | None:
    return next((p for p in packages if p.version == version), None)
