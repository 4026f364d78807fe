"""Wire shapes (API.md) of what the use cases return, typed with the response declarations
of the contract (``gateway.contract.responses``): mypy checks that every view builds exactly
the shape the document publishes. Masking of the book is the pure core's (``auction.masking``,
whose dicts are checked against ``BookEntry`` by tests/unit/test_masking.py); everything here
renders records the caller may see in full."""

from __future__ import annotations

from typing import Any, Literal, cast

from applications.intake import DECIDED_BY_SCORECARD
from applications.model import money_text, pct_text
from auction.masking import apr_text, book_for, own_offer
from auction.model import (
    RATE_SCALE,
    OfferTerms,
    OfferVersion,
    e4_to_rate,
    iso,
    minor_to_money,
    ms_to_dt,
)
from gateway.contract import responses as rs
from gateway.contract.fields import cursor_text
from persistence.records import (
    AuditRecord,
    BankRecord,
    DeskUserRecord,
    ExporterRecord,
    RoundRecord,
)
from usecases.accounts import (
    MAX_LOGIN_FAILURES,
    BankCredentials,
    NewDeskUser,
    Registered,
    Ticket,
    Token,
)
from usecases.applying import ApplicationState, CompanyState
from usecases.bidding import Accepted, BankResult, BookSeen, RoundDetail, RoundPage
from usecases.operator import AUDIT_PAGE, RoundView
from usecases.operators import ACTIVATION_URL as OPERATOR_ACTIVATION_URL
from usecases.operators import NewOperator
from usecases.results import ExporterResults


def ts(ms: int | None) -> str | None:
    return iso(ms_to_dt(int(ms))) if ms else None


def at(ms: int) -> str:
    return iso(ms_to_dt(int(ms)))


# ----------------------------------------------------------------------------- rounds
def round_out(row: RoundRecord, has_my_offer: bool | None) -> rs.Round:
    company = dict(row.company or {})
    out: rs.Round = {
        "round_id": row.id,
        "state": row.state,
        "opened_at": at(row.opened_at),
        "closes_at": at(row.closes_at),
        "currency": row.currency,
        "loan_type": row.loan_type,
        "loan_amount": minor_to_money(row.loan_amount),
        "guarantee_amount": minor_to_money(row.guarantee_amount),
        "guarantee_rate": e4_to_rate(row.guarantee_amount * 100 * RATE_SCALE // row.loan_amount),
        "tenor_months": row.tenor_months,
        "grace_months": row.grace_months,
        "export_commitment": row.export_commitment,
        "company": {
            "name": company.get("name"),
            "tax_id": company.get("tax_id"),
            "is_sme": company.get("is_sme"),
            "sector": company.get("sector"),
            "contact": cast(rs.Contact, company.get("contact") or {}),
        },
        "assessment": cast(rs.Assessment | None, row.assessment),
    }
    if has_my_offer is not None:
        out["has_my_offer"] = has_my_offer
    if row.closed_at:
        out["closed_at"] = at(row.closed_at)
    if row.binding_until:
        out["binding_until"] = at(row.binding_until)
    return out


def cursor(after: tuple[int, str] | None) -> str | None:
    return None if after is None else cursor_text(*after)


def pool(page: RoundPage) -> rs.RoundList:
    return {"rounds": [round_out(r, h) for r, h in page.rounds],
            "next_cursor": cursor(page.next_after)}


def round_detail(d: RoundDetail) -> rs.RoundDetail:
    return {**round_out(d.round, d.has_bid),
            "my_offers": [offer_of(v, rank) for v, rank in d.my_offers]}


def offer_of(v: OfferVersion, rank: int | None) -> rs.Offer:
    """OFFER, as the masking rule shows a bank its own offer."""
    return cast(rs.Offer, own_offer(v, rank))


def offer(a: Accepted) -> rs.Offer:
    return offer_of(a.offer, a.rank)


def book(seen: BookSeen, bank_id: str) -> rs.Book:
    return cast(rs.Book, book_for(seen.view, bank_id, iso(ms_to_dt(seen.server_time_ms))))


def bank_result(r: BankResult) -> rs.Result:
    mine: list[rs.ResultOffer] = [
        {**offer_of(v, final_rank), "final_rank": final_rank, "binding": True,
         "chosen": r.acceptance is not None and r.acceptance.offer_id == v.offer_id}
        for final_rank, v in r.mine]
    return {
        "round_id": r.round.id,
        "state": r.round.state,
        "reference_number": r.closing.reference_number,
        "closed_at": at(r.closing.closed_at),
        "binding_until": at(r.closing.binding_until),
        "my_offers": mine,
    }


def exporter_results(r: ExporterResults) -> rs.ExporterResults:
    offers: list[rs.ExporterOffer] = []
    for final_rank, v, bank in r.offers:
        o: dict[str, Any] = {
            "offer_id": v.offer_id,
            "bank_code": bank.code if bank else None,
            "bank_name": bank.name if bank else None,
            "rank": final_rank,
            "version": v.version,
            "apr": apr_text(v.apr_e4),
        }
        o.update(v.terms.to_wire())
        offers.append(cast(rs.ExporterOffer, o))
    return {
        "application_id": r.round.application_id,
        "round_id": r.round.id,
        "state": r.round.state,
        "reference_number": r.closing.reference_number,
        "closed_at": at(r.closing.closed_at),
        "binding_until": at(r.closing.binding_until),
        "accepted_offer_id": r.acceptance.offer_id if r.acceptance else None,
        "offers": offers,
    }


def round_state(row: RoundRecord) -> rs.ApplicationRound:
    """Where an application's round stands (no offer data)."""
    out: rs.ApplicationRound = {"round_id": row.id, "state": row.state,
                                "opened_at": at(row.opened_at), "closes_at": at(row.closes_at)}
    if row.closed_at:
        out["closed_at"] = at(row.closed_at)
    if row.binding_until:
        out["binding_until"] = at(row.binding_until)
    return out


# ----------------------------------------------------------------------------- exporters
def token(t: Token) -> rs.Token | rs.ExporterToken:
    out: dict[str, Any] = {"access_token": t.access_token, "token_type": "Bearer",
                           "expires_in": t.expires_in}
    if t.bank_code is not None:
        out["bank_code"] = t.bank_code
    return cast(rs.Token | rs.ExporterToken, out)


def registered(r: Registered) -> rs.Registered:
    return {"user_id": r.user_id, "totp_uri": r.totp_uri}


def company(s: CompanyState) -> rs.CompanyOut:
    c, latest = s.company, s.latest_consent
    out: rs.CompanyOut = {
        "company_id": c.id,
        "tax_id": c.tax_id,
        "name": c.name,
        "sector": c.sector,
        "is_sme": c.is_sme,
        "active": c.active,
        "signatory": True,
        "matched_at": at(c.created_at),
        "consent": None if latest is None else {
            "text_version": latest.text_version,
            "accepted_at": at(latest.accepted_at),
            "withdrawn_at": ts(latest.withdrawn_at),
            "active": s.consent_active,
        },
    }
    if s.open_rounds_hidden is not None:
        out["open_rounds_hidden"] = s.open_rounds_hidden
    return out


def request_out(rec: dict[str, Any]) -> rs.ApplicationRequestOut:
    loan, guarantee = int(rec["loan_amount"]), int(rec["guarantee_amount"])
    return {
        "loan_type": rec["loan_type"],
        "currency": rec["currency"],
        "loan_amount": money_text(loan),
        "guarantee_amount": money_text(guarantee),
        "guarantee_rate": pct_text(guarantee * 100 * 10_000 // loan) if loan else None,
        "tenor_months": rec["tenor_months"],
        "grace_months": rec["grace_months"],
        "related_companies": [{"tax_id": r["tax_id"], "relation": r["relation"],
                               "share_pct": pct_text(int(r["share_e4"]))}
                              for r in rec.get("related_companies", [])],
        "preferred_banks": list(rec.get("preferred_banks", [])),
        "export_commitment": rec.get("export_commitment", False),
        "purpose": rec.get("purpose", ""),
    }


def application(s: ApplicationState) -> rs.Application:
    """APPLICATION (API.md) plus what explains it: the request, the package version and the
    scorecard's factors. No offer data: the round part says only where the round stands."""
    a = s.application
    applicant = (a.inputs or {}).get("applicant") or {}
    company: rs.ApplicationCompany = {"tax_id": a.tax_id, "name": applicant.get("name")}
    if a.company_id is not None:  # an operator's intake matched no company here
        company = {"company_id": a.company_id, **company}
    decision = {"decided_by": DECIDED_BY_SCORECARD, **a.decision}
    return {
        "application_id": a.id,
        "status": cast(Literal["approved", "rejected"], a.status),
        "created_at": at(a.created_at),
        "company": company,
        "package_version": a.package_version,
        "request": request_out(a.request),
        "decision": cast(rs.Decision, decision),
        "round": None if s.round is None else round_state(s.round),
    }


def operator_application(s: ApplicationState) -> rs.AdminApplication:
    """The operator's view: every input the decision read and the package's numbers."""
    return {**application(s), "user_id": s.application.user_id,
            "inputs": s.application.inputs, "package": s.application.package}


# ----------------------------------------------------------------------------- operator
def bank_credentials(c: BankCredentials) -> rs.BankCredentials:
    return {"bank_id": c.bank_id, "bank_code": c.bank_code, "name": c.name,
            "client_id": c.client_id, "client_secret": c.client_secret}


def desk_user(u: DeskUserRecord) -> rs.DeskUser:
    return {"user_id": u.id, "bank_id": u.bank_id, "email": u.email, "full_name": u.full_name,
            "role": u.role, "active": u.active, "status": u.status,
            "created_at": at(u.created_at)}


def desk_user_created(n: NewDeskUser) -> rs.DeskUserCreated:
    return {**desk_user(n.user), "activation_code": n.activation_code,
            "activation_url": "/desk/activate",
            "activation_expires_at": at(n.user.activation_until or 0)}


def operator_created(n: NewOperator) -> rs.OperatorCreated:
    u = n.user
    return {"user_id": u.id, "email": u.email, "full_name": u.full_name, "active": u.active,
            "created_at": at(u.created_at), "activation_code": n.activation_code,
            "activation_url": OPERATOR_ACTIVATION_URL,
            "activation_expires_at": at(u.activation_until or 0)}


def desk_users(rows: list[DeskUserRecord]) -> rs.DeskUserList:
    return {"users": [desk_user(u) for u in rows]}


def banks(rows: list[BankRecord]) -> rs.BankList:
    return {"banks": [{"bank_id": b.id, "bank_code": b.code, "name": b.name,
                       "client_id": b.client_id, "active": b.active} for b in rows]}


def admin_round(row: RoundRecord) -> rs.AdminRound:
    return {**round_out(row, None), "application_id": row.application_id,  # type: ignore[typeddict-item]
            "exporter_user_id": row.exporter_user_id}


def admin_round_view(v: RoundView) -> rs.AdminRound:
    out = admin_round(v.round)
    out["persisted_seq"] = v.round.persisted_seq
    if v.closing is not None:
        out["reference_number"] = v.closing.reference_number
    return out


def exporter_account(u: ExporterRecord) -> rs.ExporterAccount:
    return {"user_id": u.id, "email": u.email, "full_name": u.full_name, "active": u.active,
            "failed_attempts": u.failed_attempts,
            "locked": u.failed_attempts >= MAX_LOGIN_FAILURES, "created_at": at(u.created_at)}


#: audit detail keys whose stored integers are wire values of another shape
AUDIT_TIMES = frozenset({"opened_at", "closes_at", "closed_at", "binding_until", "accepted_at"})
AUDIT_MONEY = frozenset({"loan_amount", "guarantee_amount", "amount", "upfront_fee",
                         "guarantee_tl"})
AUDIT_E4 = {"apr_e4": ("apr", 4), "fx_rate_e4": ("fx_rate", 4)}  # key -> (wire key, places)
#: the compact offer terms of auction.model.OfferTerms.to_record (offer_submitted, _revised)
OFFER_TERM_KEYS = frozenset({"r", "a", "n", "g", "e", "u", "x"})


def audit_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """An audit entry's detail in the contract's shapes: money as decimal strings, rates as
    percent strings, times as UTC timestamps, offer terms under their OFFER_TERMS names. The
    trail stores the exact integers (epoch ms, minor units, percent x 10^4, the book's compact
    term keys); this is how every entry, old or new, is shown."""
    out: dict[str, Any] = {}
    terms: dict[str, object] = {}
    if detail.keys() >= OFFER_TERM_KEYS:
        terms = OfferTerms.from_record(detail).to_wire()
        detail = {k: v for k, v in detail.items() if k not in OFFER_TERM_KEYS and k != "c"}
    for k, v in detail.items():
        if isinstance(v, bool) or not isinstance(v, int):
            out[k] = v
        elif k in AUDIT_TIMES:
            out[k] = at(v)
        elif k in AUDIT_MONEY:
            out[k] = minor_to_money(v)
        elif k in AUDIT_E4:
            name, places = AUDIT_E4[k]
            out[name] = e4_to_rate(v, places)
        else:
            out[k] = v
    out.update(terms)
    return out


def audit(rows: list[AuditRecord]) -> rs.AuditPage:
    return {"entries": [{"id": r.id, "at": iso(ms_to_dt(r.at)), "actor": r.actor,
                         "action": r.action, "round_id": r.round_id,
                         "detail": audit_detail(r.detail)}
                        for r in rows],
            "next_after_id": rows[-1].id if len(rows) == AUDIT_PAGE else None}


def ticket(t: Ticket) -> rs.Ticket:
    return {"ticket": t.ticket, "expires_in": t.expires_in}
