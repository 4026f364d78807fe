"""Plain data of the application flow: what the exporter asks for, what the integrations
(trade registry, financial statements, risk centre, export performance) answer, and the
decision. Money is integer kuruş (minor units), shares and rates percent x 10^4."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: the relations an applicant may declare for a partner or related company (risk group)
RELATIONS = ("partner", "subsidiary", "parent", "sister", "affiliate")
#: insolvency states the trade registry can report (iflas, tasfiye, konkordato)
INSOLVENCY = ("bankruptcy", "liquidation", "concordat")


def money_text(minor: int) -> str:
    """Minor units as a decimal string with 2 places (the wire form of money)."""
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def pct_text(e4: int) -> str:
    """Percent x 10^4 as a decimal string with 2 places, more only when needed."""
    sign = "-" if e4 < 0 else ""
    e4 = abs(e4)
    whole, frac = divmod(e4, 10_000)
    digits = f"{frac:04d}"
    digits = digits[:2] + digits[2:].rstrip("0")
    return f"{sign}{whole}.{digits}"


# ----------------------------------------------------------------------------- the request
@dataclass(frozen=True)
class RelatedCompany:
    tax_id: str
    relation: str
    share_e4: int  # the applicant's (or its partners') share in it, percent x 10^4


@dataclass(frozen=True)
class ApplicationRequest:
    """The application form (Kefalet Başvuru Formu) as parsed from the wire."""

    loan_type: str
    currency: str
    loan_amount: int  # minor units of ``currency``
    guarantee_amount: int
    tenor_months: int
    grace_months: int
    related_companies: tuple[RelatedCompany, ...] = ()
    preferred_banks: tuple[str, ...] = ()
    export_commitment: bool = False
    purpose: str = ""

    def to_record(self) -> dict[str, Any]:
        out = asdict(self)
        out["related_companies"] = [asdict(r) for r in self.related_companies]
        out["preferred_banks"] = list(self.preferred_banks)
        return out


# ----------------------------------------------------------------------------- the ports' answers
@dataclass(frozen=True)
class Signatory:
    national_id: str
    name: str
    role: str = "authorised signatory"


@dataclass(frozen=True)
class Affiliate:
    """A company the registry knows to be in the applicant's risk group."""

    tax_id: str
    relation: str
    share_e4: int


@dataclass(frozen=True)
class RegistryRecord:
    """The trade registry (MERSİS) about one company."""

    tax_id: str
    name: str
    active: bool
    is_sme: bool
    sector: str
    insolvency: str | None = None  # bankruptcy | liquidation | concordat | None
    signatories: tuple[Signatory, ...] = ()
    affiliates: tuple[Affiliate, ...] = ()
    founded_year: int | None = None

    def is_signatory(self, national_id: str) -> bool:
        return any(s.national_id == national_id for s in self.signatories)

    def to_record(self) -> dict[str, Any]:
        out = asdict(self)
        out["signatories"] = [asdict(s) for s in self.signatories]
        out["affiliates"] = [asdict(a) for a in self.affiliates]
        return out


@dataclass(frozen=True)
class Financials:
    """The latest financial statements and the tax / social-security debt letters."""

    period: str  # e.g. "2026-Q3"
    revenue: int
    net_profit: int
    current_assets: int
    current_liabilities: int
    total_assets: int
    total_liabilities: int
    equity: int
    overdue_tax_debt: int = 0
    overdue_ssi_debt: int = 0
    debt_restructured: bool = False  # the overdue debt is restructured (yapılandırma)...
    restructuring_broken: bool = False  # ...and the restructuring has been broken

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RiskReport:
    """The risk centre (credit bureau / TBB Risk Merkezi) about one company."""

    credit_score: int  # 0..1900, Findeks-like
    non_performing: bool = False  # classified as non-performing (takipteki alacak)
    watch_list: bool = False  # group 2, loans under close monitoring (yakın izleme)
    bounced_cheques: int = 0  # last 24 months
    protested_bills: int = 0
    total_limits: int = 0  # credit limits at all banks, kuruş TL
    total_risk: int = 0  # exposure at all banks, kuruş TL
    kgf_guarantees: int = 0  # KGF-guaranteed amounts already granted at banks, kuruş TL
    unpaid_guarantee_commission: int = 0  # guarantee commission due from earlier periods

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExportRecord:
    """Export performance (customs / exporters' association data)."""

    years_exporting: int
    exports_last_12m: int  # kuruş TL
    exports_prev_12m: int
    countries: int = 0
    fx_earning: bool = False  # foreign-currency earning activity other than goods exports

    @property
    def is_exporter(self) -> bool:
        """Exporters and FX-earning companies get the 100 % guarantee-rate cap."""
        return self.exports_last_12m > 0 or self.fx_earning

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- decision inputs
@dataclass(frozen=True)
class GroupMember:
    """One company of the applicant's risk group (declared on the form or known to the
    registry), with what the registry and the ledgers say about it."""

    tax_id: str
    relation: str
    share_e4: int
    source: str  # declared | registry
    registry: RegistryRecord | None  # None: unknown to the registry

    def to_record(self) -> dict[str, Any]:
        return {"tax_id": self.tax_id, "relation": self.relation, "share_e4": self.share_e4,
                "source": self.source,
                "registry": self.registry.to_record() if self.registry else None}


@dataclass(frozen=True)
class Exposure:
    """Guarantees that count towards the group limit for one company, kuruş TL."""

    tax_id: str
    external: int = 0  # KGF guarantees granted at banks outside the portal (risk centre)
    granted: int = 0  # accepted offers in the portal (the guarantee-exposure ledger)
    pending: int = 0  # approved applications whose round is open or binding

    @property
    def total(self) -> int:
        return self.external + self.granted + self.pending


@dataclass(frozen=True)
class DecisionInputs:
    request: ApplicationRequest
    applicant: RegistryRecord
    group: tuple[GroupMember, ...]
    financials: Financials | None
    risk: RiskReport
    exports: ExportRecord
    exposures: tuple[Exposure, ...]  # the applicant first, then each group member

    def to_record(self) -> dict[str, Any]:
        return {
            "request": self.request.to_record(),
            "applicant": self.applicant.to_record(),
            "group": [g.to_record() for g in self.group],
            "financials": self.financials.to_record() if self.financials else None,
            "risk": self.risk.to_record(),
            "exports": self.exports.to_record(),
            "exposures": [asdict(e) for e in self.exposures],
        }


# ----------------------------------------------------------------------------- decision
@dataclass(frozen=True)
class Reason:
    """A stable machine ``code`` with a human ``text``. ``kind``: intake (a §4 rule checked
    at intake), hard_rule (rejects whatever the score), score, or note (no effect on the
    decision: a condition or an explanation)."""

    code: str
    text: str
    kind: str
    field: str | None = None
    #: the numbers and names in ``text``, as decimal strings (money in TL with 2 places,
    #: percentages as pct_text): a page words the reason in its language from its code
    params: tuple[tuple[str, str], ...] = ()

    @property
    def rejects(self) -> bool:
        return self.kind != "note"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "text": self.text, "kind": self.kind}
        if self.field:
            out["field"] = self.field
        if self.params:
            out["params"] = dict(self.params)
        return out


@dataclass(frozen=True)
class FactorScore:
    name: str
    group: str
    value: str | None  # the measured value as a decimal string (None: could not compute)
    points: int  # 0..100
    weight: int

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScoreCard:
    score: int  # 0..100
    band: str  # A..E
    pass_mark: int
    factors: tuple[FactorScore, ...]
    group_scores: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.score >= self.pass_mark


@dataclass(frozen=True)
class Decision:
    status: str  # approved | rejected
    scorecard: ScoreCard
    reasons: tuple[Reason, ...]
    package_version: str
    guarantee_tl: int  # the requested guarantee in kuruş TL at the package's rate
    group_exposure_tl: int  # what already counts towards the group limit (before this one)
    group_limit_tl: int
    is_exporter: bool

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    def to_wire(self) -> dict[str, Any]:
        """What the exporter sees: score, band and reasons (plus the factors behind them)."""
        return {
            "score": self.scorecard.score,
            "band": self.scorecard.band,
            "pass_mark": self.scorecard.pass_mark,
            "reasons": [r.to_wire() for r in self.reasons],
            "factors": [f.to_wire() for f in self.scorecard.factors],
            "package_version": self.package_version,
        }
