"""Unit tests for auction.masking: what a bank may see of a round. Every field added to a
masked entry is visible to competitors, so these tests list the allowed keys exactly."""

from __future__ import annotations

import json

import pytest

from auction.book import BookView, Event
from auction.masking import book_for, masked_entry, own_offer, quote_messages
from auction.model import OfferTerms, OfferVersion, RoundState

ROUND = "rnd_0001"
CLOSES_AT_MS = 1_776_781_800_000  # 2026-04-21T14:30:00Z

SHARED_KEYS = {"ref", "label", "rank", "mine", "annual_rate", "apr", "amount", "tenor_months",
               "grace_months", "repayment_every_months", "upfront_fee",
               "assumes_export_commitment", "version", "seq", "updated_at"}
OWNER_ONLY_KEYS = {"offer_id", "conditions"}


def version(bank: str, offer: str, ref: str, label: str, seq: int, apr_e4: int,
            rate_e4: int = 300_000, v: int = 1) -> OfferVersion:
    terms = OfferTerms(annual_rate_e4=rate_e4, amount=150_000_000, tenor_months=24,
                       grace_months=6, repayment_every_months=3, upfront_fee=10_000,
                       assumes_export_commitment=True,
                       conditions=f"secret conditions of {bank}")
    return OfferVersion(ROUND, offer, ref, bank, label, v, seq, CLOSES_AT_MS - 60_000 + seq,
                        apr_e4, terms)


ALPHA_1 = version("bank_alpha", "off_alpha_1", "a1a1a1a1a1a1", "Banka K", 1, 330_000)
BETA_1 = version("bank_beta", "off_beta_1", "b1b1b1b1b1b1", "Banka C", 2, 320_000)
ALPHA_2 = version("bank_alpha", "off_alpha_2", "a2a2a2a2a2a2", "Banka K", 3, 340_000, v=2)
GAMMA_1 = version("bank_gamma", "off_gamma_1", "c1c1c1c1c1c1", "Banka R", 4, 310_000)
BOOK_ORDER = [GAMMA_1, BETA_1, ALPHA_1, ALPHA_2]  # best first


def view(viewer_label: str | None) -> BookView:
    return BookView(ROUND, RoundState.OPEN, 4, CLOSES_AT_MS, 0, viewer_label, list(BOOK_ORDER))


def secrets_of(v: OfferVersion) -> list[str]:
    return [v.bank_id, v.offer_id, v.terms.conditions]


# ----------------------------------------------------------------------------- masked_entry
def test_another_banks_entry_carries_only_the_masked_fields() -> None:
    entry = masked_entry(BETA_1, 2, mine=False)
    assert set(entry) == SHARED_KEYS
    assert entry["mine"] is False
    text = json.dumps(entry)
    for secret in secrets_of(BETA_1):
        assert secret not in text


def test_own_entry_adds_offer_id_and_conditions() -> None:
    entry = masked_entry(BETA_1, 2, mine=True)
    assert set(entry) == SHARED_KEYS | OWNER_ONLY_KEYS
    assert entry["offer_id"] == "off_beta_1"
    assert entry["conditions"] == "secret conditions of bank_beta"
    assert "bank_beta" not in json.dumps({k: v for k, v in entry.items() if k != "conditions"})


def test_masked_entry_shows_terms_as_decimal_strings() -> None:
    entry = masked_entry(BETA_1, 2, mine=False)
    assert entry | {"updated_at": None} == {
        "ref": "b1b1b1b1b1b1", "label": "Banka C", "rank": 2, "mine": False,
        "annual_rate": "30.00", "apr": "32.0000", "amount": "1500000.00", "tenor_months": 24,
        "grace_months": 6, "repayment_every_months": 3, "upfront_fee": "100.00",
        "assumes_export_commitment": True, "version": 1, "seq": 2, "updated_at": None}
    assert entry["updated_at"] == "2026-04-21T14:29:00.002Z"


# ----------------------------------------------------------------------------- book_for
@pytest.mark.parametrize(
    ("viewer", "label", "mine_refs"),
    [
        ("bank_alpha", "Banka K", {"a1a1a1a1a1a1", "a2a2a2a2a2a2"}),
        ("bank_beta", "Banka C", {"b1b1b1b1b1b1"}),
        ("bank_gamma", "Banka R", {"c1c1c1c1c1c1"}),
    ],
)
def test_book_ranks_every_offer_and_marks_only_the_viewers_own(
        viewer: str, label: str, mine_refs: set[str]) -> None:
    book = book_for(view(label), viewer, "2026-04-21T14:00:00Z")
    assert [e["rank"] for e in book["offers"]] == [1, 2, 3, 4]
    assert [e["ref"] for e in book["offers"]] == [o.ref for o in BOOK_ORDER]
    assert {e["ref"] for e in book["offers"] if e["mine"]} == mine_refs
    assert book["my_label"] == label
    for e in book["offers"]:
        assert ("offer_id" in e) is e["mine"]
        assert ("conditions" in e) is e["mine"]


@pytest.mark.parametrize("viewer", ["bank_alpha", "bank_beta", "bank_gamma"])
def test_book_never_leaks_another_banks_id_offer_id_or_conditions(viewer: str) -> None:
    text = json.dumps(book_for(view(None), viewer, "2026-04-21T14:00:00Z"))
    for other in BOOK_ORDER:
        if other.bank_id != viewer:
            for secret in secrets_of(other):
                assert secret not in text
    assert "bank_" not in text.replace(f"secret conditions of {viewer}", "")


def test_book_header_carries_round_seq_state_and_times() -> None:
    book = book_for(view("Banka K"), "bank_alpha", "2026-04-21T14:00:00Z")
    assert {k: v for k, v in book.items() if k != "offers"} == {
        "round_id": ROUND, "seq": 4, "server_time": "2026-04-21T14:00:00Z",
        "closes_at": "2026-04-21T14:30:00Z", "state": "open", "my_label": "Banka K"}


def test_a_viewer_without_a_label_gets_no_my_label_rather_than_null() -> None:
    book = book_for(view(None), "operator", "2026-04-21T14:00:00Z")
    assert "my_label" not in book and list(book)[-1] == "offers"
    assert not any(e["mine"] for e in book["offers"])


# ----------------------------------------------------------------------------- own_offer
def test_own_offer_is_the_full_offer_for_its_bank() -> None:
    out = own_offer(ALPHA_2, 4)
    assert out["offer_id"] == "off_alpha_2" and out["round_id"] == ROUND
    assert (out["version"], out["seq"], out["rank"], out["apr"]) == (2, 3, 4, "34.0000")
    assert out["conditions"] == "secret conditions of bank_alpha"
    assert "bank_id" not in out


# ----------------------------------------------------------------------------- quote_messages
def quote(v: OfferVersion, seq: int, rank: int = 2, size: int = 4) -> Event:
    return Event(ROUND, seq, "quote", v, rank=rank, size=size)


def test_quote_for_owner_and_for_others_differ_only_in_mine_offer_id_and_conditions() -> None:
    owner, other = quote_messages(quote(BETA_1, 2), "round:" + ROUND)
    assert {k: v for k, v in owner.items() if k != "offer"} == \
        {k: v for k, v in other.items() if k != "offer"}
    o, x = owner["offer"], other["offer"]
    assert {k for k in o.keys() | x.keys() if o.get(k) != x.get(k)} == {"mine", "offer_id",
                                                                        "conditions"}
    assert (o["mine"], x["mine"]) == (True, False)
    assert set(x) == SHARED_KEYS


def test_quote_carries_seq_topic_the_offers_rank_and_the_books_size_only() -> None:
    """Constant size: the quote names the changed offer alone, never the others' ranks."""
    owner, other = quote_messages(quote(BETA_1, 7, rank=2, size=4), "round:" + ROUND)
    for msg in (owner, other):
        assert set(msg) == {"type", "topic", "seq", "offer", "book_size"}
        assert (msg["type"], msg["topic"], msg["seq"]) == ("quote", "round:" + ROUND, 7)
        assert (msg["offer"]["rank"], msg["book_size"]) == (2, 4)
        assert msg["offer"]["seq"] == BETA_1.seq  # the ranking key: apr, annual_rate, seq


def test_quote_for_others_never_names_the_bank() -> None:
    _, other = quote_messages(quote(BETA_1, 2), "round:" + ROUND)
    text = json.dumps(other)
    for secret in secrets_of(BETA_1):
        assert secret not in text


def test_a_quote_without_its_rank_is_refused_rather_than_sent_with_rank_zero() -> None:
    with pytest.raises(AssertionError):
        quote_messages(quote(BETA_1, 2, rank=0, size=0), "round:" + ROUND)


# ----------------------------------------------------------------------------- the contract
def test_the_masked_shapes_are_exactly_the_documented_ones() -> None:
    """masking.py builds the dicts the document declares (gateway.contract.responses): the
    views hand them out as they are, so a key added here would reach the wire undocumented."""
    from gateway.contract.responses import Book, BookEntry, Offer

    assert BookEntry.__required_keys__ == SHARED_KEYS
    assert BookEntry.__optional_keys__ == OWNER_ONLY_KEYS
    assert set(masked_entry(BETA_1, 1, False)) == BookEntry.__required_keys__
    assert set(masked_entry(BETA_1, 1, True)) == BookEntry.__required_keys__ | OWNER_ONLY_KEYS
    assert set(own_offer(BETA_1, 1)) == Offer.__required_keys__ | Offer.__optional_keys__
    book = book_for(view("Banka C"), "bank_beta", "2026-04-21T14:00:00Z")
    assert set(book) == Book.__required_keys__ | Book.__optional_keys__
