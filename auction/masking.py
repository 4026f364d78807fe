"""What a viewer may see of a round: the masking rule as pure functions.

A bank sees other banks' offers only through ``masked_entry``: a random per-round label, the
terms, the rank. Never a bank id, code or name, never another bank's offer_id. Anything added
to these functions is visible to competitors: treat every new field as a possible leak.
"""

from __future__ import annotations

from typing import Any

from auction.book import BookHead, BookView, Event
from auction.model import OfferVersion, e4_to_rate, iso, iso_ms, ms_to_dt


def apr_text(apr_e4: int) -> str:
    return e4_to_rate(apr_e4, 4)


def masked_entry(v: OfferVersion, rank: int, mine: bool) -> dict[str, Any]:
    t = v.terms.to_wire()
    entry: dict[str, Any] = {
        "ref": v.ref,
        "label": v.label,
        "rank": rank,
        "mine": mine,
        "annual_rate": t["annual_rate"],
        "apr": apr_text(v.apr_e4),
        "amount": t["amount"],
        "tenor_months": t["tenor_months"],
        "grace_months": t["grace_months"],
        "repayment_every_months": t["repayment_every_months"],
        "upfront_fee": t["upfront_fee"],
        "assumes_export_commitment": t["assumes_export_commitment"],
        "version": v.version,
        "seq": v.seq,
        "updated_at": iso_ms(v.accepted_at_ms),
    }
    if mine:
        entry["offer_id"] = v.offer_id
        entry["conditions"] = t["conditions"]
    return entry


def own_offer(v: OfferVersion, rank: int | None) -> dict[str, Any]:
    """OFFER as the submitting bank sees it."""
    out: dict[str, Any] = {
        "offer_id": v.offer_id,
        "round_id": v.round_id,
        "version": v.version,
        "seq": v.seq,
        "accepted_at": iso_ms(v.accepted_at_ms),
        "rank": rank,
        "apr": apr_text(v.apr_e4),
        "label": v.label,
    }
    out.update(v.terms.to_wire())
    return out


def book_header(head: BookHead | BookView, server_time: str) -> dict[str, Any]:
    """BOOK without its offers, in the order ``book_for`` puts them (``offers`` comes last)."""
    book: dict[str, Any] = {
        "round_id": head.round_id,
        "seq": head.seq,
        "server_time": server_time,
        "closes_at": iso(ms_to_dt(head.closes_at_ms)),
        "state": head.state.value,
    }
    if head.viewer_label is not None:  # a viewer with no label in the round (an operator)
        book["my_label"] = head.viewer_label  # has none: the field is left out, never null
    return book


def book_entries(view: BookView, viewer_bank_id: str, start: int = 0,
                 stop: int | None = None) -> list[dict[str, Any]]:
    """The masked offers of BOOK for one bank (``start``..``stop``: a slice of them)."""
    return [masked_entry(o, i + 1, o.bank_id == viewer_bank_id)
            for i, o in enumerate(view.offers[start:stop], start=start)]


def book_for(view: BookView, viewer_bank_id: str, server_time: str) -> dict[str, Any]:
    """BOOK for one bank (the caller must already have checked that the bank has bid)."""
    return {**book_header(view, server_time), "offers": book_entries(view, viewer_bank_id)}


def quote_messages(ev: Event, topic: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``quote`` stream message, built once per book change: (for the owner, for others).
    It carries the offer (with its rank and its ranking key: apr, annual_rate, seq) and the
    book's size, never the other offers' ranks: its size does not grow with the book."""
    assert ev.offer is not None and ev.rank > 0
    base = {"type": "quote", "topic": topic, "seq": ev.seq, "book_size": ev.size}
    return ({**base, "offer": masked_entry(ev.offer, ev.rank, True)},
            {**base, "offer": masked_entry(ev.offer, ev.rank, False)})
