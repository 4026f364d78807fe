"""Unit tests for auction.livebook: the book a stream client keeps from a snapshot and quotes
equals the book the server would show, and any disagreement is noticed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.book import BookView, Event, with_ranks
from auction.feed import event_messages
from auction.livebook import LiveBook, OutOfStep, ranking_key
from auction.masking import book_for
from auction.model import OfferTerms, OfferVersion, RoundState
from auction.ranking import ranked

ROUND = "rnd_live"
TOPIC = f"round:{ROUND}"
T0 = 1_776_781_800_000


def version(seq: int, ref: str, bank: str, apr_e4: int, rate_e4: int, v: int = 1
            ) -> OfferVersion:
    terms = OfferTerms(annual_rate_e4=rate_e4, amount=100_000_000, tenor_months=12,
                       grace_months=0, repayment_every_months=1, upfront_fee=0,
                       assumes_export_commitment=False, conditions="c")
    return OfferVersion(ROUND, f"off_{ref}", ref, bank, f"Banka {bank[-1]}", v, seq, T0 + seq,
                        apr_e4, terms)


def events_of(steps: list[tuple[int, int, int]]) -> list[Event]:
    """(offer number, apr_e4, rate_e4) per step: a new offer or a revision of that offer."""
    versions: dict[int, int] = {}
    out = []
    for seq, (n, apr, rate) in enumerate(steps, start=1):
        versions[n] = versions.get(n, 0) + 1
        out.append(Event(ROUND, seq, "quote",
                         version(seq, f"ref{n:03d}", f"bank_{n % 3}", apr, rate, versions[n])))
    return with_ranks(out)


def snapshot(events: list[Event], viewer: str = "bank_0") -> dict[str, Any]:
    current = {e.offer.ref: e.offer for e in events if e.offer is not None}
    view = BookView(ROUND, RoundState.OPEN, events[-1].seq if events else 0, T0, 0, None,
                    ranked(current.values()))
    return {"type": "snapshot", "topic": TOPIC, **book_for(view, viewer, "")}


def quote(ev: Event, viewer: str = "bank_0") -> dict[str, Any]:
    owner, other = event_messages(ev, TOPIC)
    return owner if ev.offer is not None and ev.offer.bank_id == viewer else other


STEPS = [(1, 350_000, 300_000), (2, 340_000, 300_000), (3, 340_000, 290_000),
         (1, 330_000, 300_000), (4, 340_000, 290_000), (2, 360_000, 300_000)]


def test_quotes_applied_to_a_snapshot_build_the_book_a_fresh_snapshot_shows() -> None:
    events = events_of(STEPS)
    book = LiveBook()
    book.apply(snapshot(events[:2]))
    for ev in events[2:]:
        book.apply(quote(ev))
    assert book.seq == 6 and len(book) == 4
    assert book.differences(snapshot(events)) == []
    # ties on apr break on the rate, then on the earlier seq; a revision lost its time priority
    assert [e["ref"] for e in book.offers()] == ["ref001", "ref003", "ref004", "ref002"]


def test_a_revision_replaces_its_entry() -> None:
    events = events_of(STEPS[:4])
    book = LiveBook()
    book.apply(snapshot([]))
    for ev in events:
        book.apply(quote(ev))
    refs = [e["ref"] for e in book.offers()]
    assert len(refs) == len(set(refs)) == 3
    assert book.rank_of("ref001") == 1 and book.offers()[0]["version"] == 2


def test_a_gap_in_seq_is_out_of_step() -> None:
    events = events_of(STEPS)
    book = LiveBook()
    book.apply(snapshot(events[:2]))
    with pytest.raises(OutOfStep, match="expected seq 3, got 4"):
        book.apply(quote(events[3]))


def test_a_quote_before_any_snapshot_is_out_of_step() -> None:
    with pytest.raises(OutOfStep):
        LiveBook().apply(quote(events_of(STEPS)[0]))


@pytest.mark.parametrize("field", ["rank", "book_size"])
def test_a_quote_whose_rank_or_size_disagrees_with_the_book_is_out_of_step(field: str) -> None:
    events = events_of(STEPS)
    book = LiveBook()
    book.apply(snapshot(events[:3]))
    msg = quote(events[3])
    if field == "rank":
        msg = {**msg, "offer": {**msg["offer"], "rank": msg["offer"]["rank"] + 1}}
    else:
        msg = {**msg, "book_size": msg["book_size"] + 1}
    with pytest.raises(OutOfStep, match="the server says"):
        book.apply(msg)


def test_a_snapshot_whose_ranks_do_not_follow_the_key_is_out_of_step() -> None:
    snap = snapshot(events_of(STEPS))
    snap["offers"][0]["rank"], snap["offers"][1]["rank"] = 2, 1
    with pytest.raises(OutOfStep):
        LiveBook().load(snap)


def test_round_closed_advances_the_seq_and_marks_the_book_closed() -> None:
    events = events_of(STEPS[:2])
    book = LiveBook()
    book.apply(snapshot(events))
    book.apply({"type": "round_closed", "topic": TOPIC, "seq": 3,
                "closed_at": "2026-04-21T14:31:00Z"})
    assert book.closed and book.seq == 3


def test_differences_name_what_differs() -> None:
    events = events_of(STEPS)
    book = LiveBook()
    book.apply(snapshot(events))
    other = snapshot(events)
    other["offers"][1] = {**other["offers"][1], "annual_rate": "1.00"}
    assert book.differences(other) == ["rank 2: differs in annual_rate"]
    assert book.differences(snapshot(events[:3]))[:2] == [
        "seq: snapshot 3, built 6", "size: snapshot 3, built 4"]


def test_the_ranking_key_is_exact_decimal() -> None:
    a = {"apr": "40.0001", "annual_rate": "30.00", "seq": 9}
    b = {"apr": "40.00010", "annual_rate": "30.0", "seq": 2}
    assert ranking_key(b) < ranking_key(a)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 12), st.integers(300_000, 300_004),
                          st.integers(290_000, 290_002)), min_size=1, max_size=60),
       st.integers(0, 60), st.sampled_from(["bank_0", "bank_1", "operator"]))
def test_any_sequence_of_offers_and_revisions_builds_the_snapshot_book(
        steps: list[tuple[int, int, int]], start: int, viewer: str) -> None:
    events = events_of(steps)
    start = min(start, len(events))
    book = LiveBook()
    book.apply(snapshot(events[:start], viewer))
    for ev in events[start:]:
        book.apply(quote(ev, viewer))
    assert book.differences(snapshot(events, viewer)) == []
