"""Wire shapes (API.md) built from SQL rows and core data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auction.masking import apr_text, own_offer
from auction.model import RATE_SCALE, e4_to_rate, iso, minor_to_money, ms_to_dt

if TYPE_CHECKING:
    from gateway.services import Core


def ts(ms: int | None) -> str | None:
    return iso(ms_to_dt(int(ms))) if ms else None


def round_out(row: Any, has_my_offer: bool | None) -> dict[str, Any]:
    company = dict(row.company or {})
    out: dict[str, Any] = {
        "round_id": row.id,
        "state": row.state,
        "opened_at": ts(row.opened_at),
        "closes_at": ts(row.closes_at),
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
            "contact": company.get("contact") or {},
        },
        "assessment": row.assessment,
    }
    if has_my_offer is not None:
        out["has_my_offer"] = has_my_offer
    if row.closed_at:
        out["closed_at"] = ts(row.closed_at)
    if row.binding_until:
        out["binding_until"] = ts(row.binding_until)
    return out


async def bank_result(core: Core, row: Any, bank_id: str) -> dict[str, Any]:
    closing = await core.store.closing(row.id)
    acc = await core.store.acceptance(row.id)
    mine = []
    for final_rank, v in await core.store.binding(row.id, bank_id):
        o = own_offer(v, final_rank)
        o.update(final_rank=final_rank, binding=True,
                 chosen=acc is not None and acc.offer_id == v.offer_id)
        mine.append(o)
    return {
        "round_id": row.id,
        "state": row.state,
        "reference_number": closing.reference_number,
        "closed_at": ts(closing.closed_at),
        "binding_until": ts(closing.binding_until),
        "my_offers": mine,
    }


async def exporter_results(core: Core, row: Any) -> dict[str, Any]:
    closing = await core.store.closing(row.id)
    acc = await core.store.acceptance(row.id)
    offers = []
    for final_rank, v in await core.store.binding(row.id):
        bank = await core.bank(v.bank_id)
        o: dict[str, Any] = {
            "offer_id": v.offer_id,
            "bank_code": bank.code if bank else None,
            "bank_name": bank.name if bank else None,
            "rank": final_rank,
            "version": v.version,
            "apr": apr_text(v.apr_e4),
        }
        o.update(v.terms.to_wire())
        offers.append(o)
    return {
        "application_id": row.application_id,
        "round_id": row.id,
        "state": row.state,
        "reference_number": closing.reference_number,
        "closed_at": ts(closing.closed_at),
        "binding_until": ts(closing.binding_until),
        "accepted_offer_id": acc.offer_id if acc else None,
        "offers": offers,
    }
