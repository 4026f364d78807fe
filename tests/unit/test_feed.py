"""Unit tests for auction.feed: the order in which one subscriber gets a round's events.

The tests play the hub: ``Shell`` carries out a subscription's actions the way gateway/stream.py
does (a live event goes out as the shared message of its variant, a fetch is answered later from
the round as it stands), and records what the client would have received.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.book import BookView, Event, History, with_ranks
from auction.feed import (
    MAX_CATCH_UP,
    Action,
    Deliver,
    Fetch,
    FetchHistory,
    FetchSnapshot,
    Phase,
    Send,
    SendError,
    Subscription,
    Unsubscribe,
    catch_up_limit,
    event_messages,
)
from auction.livebook import LiveBook
from auction.masking import book_for, quote_messages
from auction.model import OfferTerms, OfferVersion, RoundState
from auction.ranking import ranked


def ready(topic: str, viewer: str) -> Subscription:
    """A subscription to a round whose results are ready when it closes: its close goes out as
    it comes (the hold before the results are ready: tests/unit/test_hardening.py)."""
    sub = Subscription(topic, viewer)
    sub.finalized = True
    return sub


ROUND = "rnd_0001"
TOPIC = f"round:{ROUND}"
T0 = 1_776_781_800_000  # 2026-04-21T14:30:00Z
BANKS = ("bank_alpha", "bank_beta", "bank_gamma")
LABELS = {"bank_alpha": "Banka K", "bank_beta": "Banka C", "bank_gamma": "Banka R"}
ME = "bank_alpha"


# ----------------------------------------------------------------------------- a round
def make_round(n_quotes: int, closed: bool = False) -> list[Event]:
    """A round's events as the book records them (quotes with their rank and the book's size):
    the banks take turns, each revising its one offer, at rates that reshuffle the ranking."""
    events: list[Event] = []
    for seq in range(1, n_quotes + 1):
        bank = BANKS[(seq - 1) % len(BANKS)]
        terms = OfferTerms(annual_rate_e4=300_000 + (seq * 7_919) % 50_000, amount=150_000_000,
                           tenor_months=24, grace_months=6, repayment_every_months=3,
                           upfront_fee=10_000, assumes_export_commitment=True,
                           conditions=f"secret conditions of {bank}")
        offer = OfferVersion(ROUND, f"off_{bank}", f"ref{BANKS.index(bank)}x9q", bank,
                             LABELS[bank], (seq - 1) // len(BANKS) + 1, seq, T0 + seq,
                             310_000 + (seq * 104_729) % 60_000, terms)
        events.append(Event(ROUND, seq, "quote", offer))
    if closed:
        events.append(Event(ROUND, n_quotes + 1, "round_closed", at_ms=T0 + 60_000))
    return with_ranks(events)


def history(live: list[Event], after_seq: int = 0, limit: int = 10**9) -> History:
    """The round's history as Book.history answers it, with ``live`` its events so far."""
    return History(live[-1].seq if live else 0,
                   [e for e in live if e.seq > after_seq][:limit])


def view_at(live: list[Event], viewer: str = ME) -> BookView:
    """The book after ``live`` as ``viewer`` is shown it (Book.view)."""
    current = {e.offer.ref: e.offer for e in live if e.offer is not None}
    closed = bool(live) and live[-1].kind == "round_closed"
    has_bid = any(o.bank_id == viewer for o in current.values())
    return BookView(ROUND, RoundState.CLOSED if closed else RoundState.OPEN,
                    live[-1].seq if live else 0, T0, live[-1].at_ms if closed else 0,
                    LABELS[viewer] if has_bid else None, ranked(list(current.values())))


# ----------------------------------------------------------------------------- the hub's part
@dataclass
class Shell:
    """Carries out a subscription's actions like the hub and records what the client gets."""

    sub: Subscription
    got: list[dict[str, Any]] = field(default_factory=list)
    fetch: Fetch | None = None
    unsubscribed: bool = False

    def run(self, actions: list[Action], live: Event | None = None) -> None:
        for i, a in enumerate(actions):
            if isinstance(a, Deliver):
                assert a.event is live, "only the event just given to on_live is delivered"
                owner, other = event_messages(a.event, TOPIC)  # the hub's shared messages
                self.got.append(owner if a.owner else other)
            elif isinstance(a, Send):
                self.got.append(a.msg)
            elif isinstance(a, SendError):
                self.got.append({"type": "error", "topic": TOPIC, "code": a.code})
            elif isinstance(a, Unsubscribe):
                self.unsubscribed = True
            else:
                assert i == len(actions) - 1, "a fetch is the last action"
                assert self.fetch is None, "one fetch at a time"
                self.fetch = a

    def live(self, ev: Event) -> None:
        self.run(self.sub.on_live(ev), ev)

    def answer(self, live: list[Event], room: int | None = None) -> None:
        """Answer the outstanding fetch from the round as it stands (``live`` so far)."""
        fetch, self.fetch = self.fetch, None
        assert fetch is not None, "nothing to answer"
        if isinstance(fetch, FetchSnapshot):
            self.run(self.sub.on_snapshot(view_at(live, self.sub.viewer), T0))
        else:
            self.run(self.sub.on_history(
                history(live, fetch.after_seq, catch_up_limit(room) + 1), room))

    def seqs(self) -> list[tuple[str, int]]:
        return [(m["type"], m["seq"]) for m in self.got if "seq" in m]


def subscribed(since_seq: int | None, book: list[Event], viewer: str = ME,
               room: int | None = None, finalized: bool = True) -> Shell:
    """``finalized``: the round's results are ready (its close goes out as it comes; the
    hold before that is tests/unit/test_hardening.py's)."""
    shell = Shell(ready(TOPIC, viewer))
    shell.sub.finalized = finalized
    shell.run(shell.sub.start(since_seq))
    shell.answer(book, room)
    return shell


ROUND_12 = make_round(12)
OWN_REF = {"bank_alpha": "ref0x9q", "bank_beta": "ref1x9q", "bank_gamma": "ref2x9q"}


def live_at(n: int) -> Shell:
    """A subscriber that took a snapshot after event ``n`` of a 12-event round and is live."""
    shell = subscribed(None, ROUND_12[:n])
    assert shell.sub.phase is Phase.LIVE and shell.fetch is None
    shell.got.clear()
    return shell


# ----------------------------------------------------------------------------- snapshot, live
def test_a_subscription_without_since_seq_gets_the_book_as_a_snapshot_then_goes_live() -> None:
    sub = ready(TOPIC, ME)
    assert sub.start(None) == [FetchSnapshot()]
    actions = sub.on_snapshot(view_at(ROUND_12[:4]), T0)
    assert len(actions) == 1 and isinstance(actions[0], Send)
    snap = actions[0].msg
    assert (snap["type"], snap["topic"], snap["seq"], snap["state"]) == ("snapshot", TOPIC, 4,
                                                                        "open")
    assert list(snap)[:2] == ["type", "topic"]
    assert snap["server_time"] == "2026-04-21T14:30:00Z" and snap["my_label"] == "Banka K"
    assert sub.phase is Phase.LIVE and sub.next_seq == 5


def test_live_events_in_order_are_delivered_as_the_shared_message() -> None:
    shell = live_at(4)
    for ev in ROUND_12[4:8]:
        actions = shell.sub.on_live(ev)
        assert actions == [Deliver(ev, owner=ev.offer is not None and ev.offer.bank_id == ME)]
        shell.run(actions, ev)
    assert shell.seqs() == [("quote", s) for s in (5, 6, 7, 8)]


def test_a_duplicate_live_event_is_dropped() -> None:
    shell = live_at(4)
    shell.live(ROUND_12[4])
    assert shell.sub.on_live(ROUND_12[4]) == []
    assert shell.sub.on_live(ROUND_12[2]) == []  # one the snapshot already held
    assert shell.seqs() == [("quote", 5)]


def test_an_unknown_round_at_snapshot_time_is_not_found() -> None:
    sub = ready(TOPIC, ME)
    sub.start(None)
    assert sub.on_snapshot(None, T0) == [SendError("not_found", "round not found")]


# ----------------------------------------------------------------------------- gaps, catch-up
def test_a_gap_is_filled_from_history_with_the_ranks_as_of_each_event() -> None:
    shell = live_at(4)
    shell.run(shell.sub.on_live(ROUND_12[6]), ROUND_12[6])  # 5 and 6 were lost
    assert shell.fetch == FetchHistory(4) and shell.got == []
    shell.answer(ROUND_12[:7])
    assert shell.seqs() == [("quote", 5), ("quote", 6), ("quote", 7)]
    # exactly what a subscriber who missed nothing got live, ranks included
    beta5, gamma6, alpha7 = (quote_messages(e, TOPIC) for e in ROUND_12[4:7])
    assert shell.got == [beta5[1], gamma6[1], alpha7[0]]  # (for owner, for others); 7 is ME's
    assert shell.sub.phase is Phase.LIVE


def test_events_arriving_during_a_snapshot_follow_it_in_order_without_duplicates() -> None:
    shell = Shell(ready(TOPIC, ME))
    shell.run(shell.sub.start(None))
    # while the book is read: 6 (already in the snapshot), 8, then 7 and 8 again
    for ev in (ROUND_12[5], ROUND_12[7], ROUND_12[6], ROUND_12[7]):
        assert shell.sub.on_live(ev) == []
    shell.answer(ROUND_12[:6])
    assert shell.seqs() == [("snapshot", 6), ("quote", 7), ("quote", 8)]
    shell.live(ROUND_12[8])
    assert shell.seqs()[-1] == ("quote", 9)


def test_events_arriving_during_a_catch_up_follow_it_in_order_without_duplicates() -> None:
    shell = Shell(ready(TOPIC, ME))
    shell.run(shell.sub.start(2))
    for ev in (ROUND_12[6], ROUND_12[4], ROUND_12[5]):
        shell.live(ev)
    shell.answer(ROUND_12[:5])  # the history was read when the round had 5 events
    assert shell.seqs() == [("quote", s) for s in (3, 4, 5, 6, 7)]
    assert shell.fetch is None and shell.sub.phase is Phase.LIVE


def test_a_second_gap_during_a_catch_up_fetches_the_history_again() -> None:
    shell = live_at(4)
    shell.live(ROUND_12[5])  # 5 lost: catch up
    shell.live(ROUND_12[8])  # arrives during the catch-up; 7 and 8 are lost too
    shell.answer(ROUND_12[:6])
    assert shell.seqs() == [("quote", 5), ("quote", 6)]
    assert shell.fetch == FetchHistory(6)
    shell.answer(ROUND_12[:9])
    assert shell.seqs() == [("quote", s) for s in range(5, 10)]
    assert shell.sub.phase is Phase.LIVE


def test_a_live_quote_without_its_rank_is_sent_from_history() -> None:
    shell = live_at(4)
    actions = shell.sub.on_live(replace(ROUND_12[4], rank=0, size=0))
    assert actions == [FetchHistory(4)]
    shell.run(actions)
    shell.answer(ROUND_12[:5])
    assert shell.seqs() == [("quote", 5)] and shell.got[0]["offer"]["rank"] > 0


def test_a_quote_without_its_rank_in_the_history_gets_a_snapshot_instead() -> None:
    """A stream entry written by an older book (no rank recorded): the catch-up cannot say
    the offer's rank as of that event, so the subscriber starts afresh."""
    sub = ready(TOPIC, ME)
    assert sub.start(8) == [FetchHistory(8)]
    old = [replace(e, rank=0, size=0) if e.seq == 10 else e for e in ROUND_12]
    assert sub.on_history(history(old, 8), None) == [FetchSnapshot()]


def test_a_catch_up_reads_only_what_it_sends() -> None:
    """The work of a catch-up grows with how far behind the subscriber is, never with the
    round's history: the hub asks for the events after since_seq, at most the limit."""
    sub = ready(TOPIC, ME)
    assert sub.start(10) == [FetchHistory(10)]
    assert catch_up_limit(None) == MAX_CATCH_UP
    assert catch_up_limit(5) == 4 and catch_up_limit(0) == 0
    # the answer holds only events 11 and 12; the round's last seq says nothing is missing
    actions = sub.on_history(History(12, ROUND_12[10:]), None)
    assert [a.msg["seq"] for a in actions if isinstance(a, Send)] == [11, 12]


@pytest.mark.parametrize("kept_from", [10, 12, None])
def test_a_catch_up_from_before_what_the_book_keeps_gets_a_snapshot(kept_from: int | None
                                                                   ) -> None:
    """The book forgets events SQL holds (Book.forget): a since_seq from before the first
    event it keeps gets a snapshot, never a stream with a hole in it nor a wait that never
    ends."""
    sub = ready(TOPIC, ME)
    assert sub.start(8) == [FetchHistory(8)]
    kept = [] if kept_from is None else ROUND_12[kept_from - 1:]
    assert sub.on_history(History(12, kept), None) == [FetchSnapshot()]
    assert sub.phase is not Phase.LIVE


def test_an_unknown_round_at_catch_up_time_gets_a_snapshot() -> None:
    sub = ready(TOPIC, ME)
    sub.start(3)
    assert sub.on_history(History(None, []), None) == [FetchSnapshot()]


def test_the_catch_up_message_of_an_event_equals_its_live_message() -> None:
    events = make_round(7, closed=True)
    for viewer in (*BANKS, "operator"):
        shell = subscribed(0, events, viewer)
        for ev, msg in zip(events, shell.got, strict=True):
            owner, other = event_messages(ev, TOPIC)
            live = owner if ev.offer is not None and ev.offer.bank_id == viewer else other
            assert json.dumps(msg) == json.dumps(live)


# ----------------------------------------------------------------------------- since_seq
def test_since_seq_gets_exactly_the_missed_events() -> None:
    shell = subscribed(8, ROUND_12)
    assert shell.seqs() == [("quote", s) for s in (9, 10, 11, 12)]
    assert shell.sub.phase is Phase.LIVE and shell.sub.next_seq == 13


def test_since_seq_up_to_date_sends_nothing_and_goes_live() -> None:
    shell = subscribed(12, ROUND_12)
    assert shell.got == [] and shell.sub.phase is Phase.LIVE
    shell.live(make_round(13)[12])
    assert shell.seqs() == [("quote", 13)]


@pytest.mark.parametrize("since", [0, -1, -50])
def test_since_seq_zero_or_negative_catches_up_from_the_first_event(since: int) -> None:
    assert subscribed(since, ROUND_12[:3]).seqs() == [("quote", 1), ("quote", 2), ("quote", 3)]


def test_since_seq_in_the_future_gets_a_snapshot() -> None:
    sub = ready(TOPIC, ME)
    assert sub.start(13) == [FetchHistory(13)]
    assert sub.on_history(history(ROUND_12, 13), None) == [FetchSnapshot()]


@pytest.mark.parametrize(("behind", "first"), [(MAX_CATCH_UP, "quote"),
                                               (MAX_CATCH_UP + 1, "snapshot")])
def test_since_seq_more_than_max_catch_up_behind_gets_a_snapshot(behind: int,
                                                                 first: str) -> None:
    events = make_round(MAX_CATCH_UP + 2)
    shell = Shell(ready(TOPIC, ME))
    shell.run(shell.sub.start(len(events) - behind))
    shell.answer(events)
    if first == "snapshot":
        assert shell.fetch == FetchSnapshot() and shell.got == []
        shell.answer(events)
        assert shell.seqs() == [("snapshot", len(events))]
    else:
        assert shell.seqs()[0] == ("quote", len(events) - behind + 1)
        assert len(shell.got) == behind


@pytest.mark.parametrize(("room", "snapshot"), [(5, False), (4, True), (0, True)])
def test_a_backlog_larger_than_the_queue_room_becomes_a_snapshot(room: int,
                                                                 snapshot: bool) -> None:
    sub = ready(TOPIC, ME)
    sub.start(8)  # four events behind
    actions = sub.on_history(history(ROUND_12, 8, catch_up_limit(room) + 1), room)
    assert (actions == [FetchSnapshot()]) is snapshot
    if not snapshot:
        assert [a.msg["seq"] for a in actions if isinstance(a, Send)] == [9, 10, 11, 12]


def test_events_buffered_before_a_catch_up_turned_snapshot_still_follow_it() -> None:
    shell = Shell(ready(TOPIC, ME))
    shell.run(shell.sub.start(1))
    shell.live(ROUND_12[10])
    shell.answer(ROUND_12[:10], room=3)  # nine behind, room for three: a snapshot instead
    assert shell.fetch == FetchSnapshot()
    shell.live(ROUND_12[11])
    shell.answer(ROUND_12[:10])
    assert shell.seqs() == [("snapshot", 10), ("quote", 11), ("quote", 12)]


# ----------------------------------------------------------------------------- round_closed
def test_round_closed_is_delivered_in_order_live_and_from_history() -> None:
    events = make_round(5, closed=True)
    shell = live_at(3)
    shell.live(events[3])
    shell.live(events[5])  # the close overtakes quote 5, which was lost
    shell.answer(events)
    assert shell.seqs() == [("quote", 4), ("quote", 5), ("round_closed", 6)]
    assert shell.got[-1] == {"type": "round_closed", "topic": TOPIC, "seq": 6,
                             "closed_at": "2026-04-21T14:31:00Z"}
    caught_up = subscribed(4, events)
    assert caught_up.got == shell.got[1:]


# ----------------------------------------------------------------------------- pending bank
def pending_bank(bank: str = "bank_gamma") -> Shell:
    shell = Shell(ready(TOPIC, bank))
    shell.run(shell.sub.require_offer(RoundState.OPEN))
    assert shell.got == [{"type": "error", "topic": TOPIC, "code": "offer_required"}]
    assert shell.sub.phase is Phase.PENDING
    shell.got.clear()
    return shell


def test_a_pending_bank_gets_nothing_before_its_own_first_offer() -> None:
    shell = pending_bank("bank_delta")
    events = make_round(6, closed=True)
    for ev in events:
        assert shell.sub.on_live(ev) == []  # other banks' quotes, the close: nothing
    assert shell.sub.on_reconnect() == []
    assert shell.got == [] and shell.sub.phase is Phase.PENDING


def test_a_pending_bank_gets_the_snapshot_on_its_own_first_offer_then_what_followed() -> None:
    shell = pending_bank("bank_gamma")
    shell.live(ROUND_12[0])
    shell.live(ROUND_12[1])
    assert shell.got == [] and shell.fetch is None
    shell.live(ROUND_12[2])  # gamma's first offer
    assert shell.fetch == FetchSnapshot() and shell.got == []
    shell.live(ROUND_12[3])  # arrives while the book is read
    shell.answer(ROUND_12[:3])
    assert shell.seqs() == [("snapshot", 3), ("quote", 4)]
    snap = shell.got[0]
    assert snap["my_label"] == "Banka R"
    assert [e["mine"] for e in snap["offers"] if e["ref"] == "ref2x9q"] == [True]


def test_a_pending_bank_found_to_have_bid_gets_the_snapshot_once() -> None:
    shell = pending_bank("bank_alpha")
    assert shell.sub.on_offer_seen() == [FetchSnapshot()]
    assert shell.sub.on_offer_seen() == []
    assert shell.sub.on_live(ROUND_12[0]) == []  # its own offer, live: buffered, not re-fetched
    shell = pending_bank("bank_alpha")
    shell.live(ROUND_12[0])
    assert shell.sub.on_offer_seen() == []  # the live offer came first


@pytest.mark.parametrize("state", [RoundState.CLOSED, RoundState.ACCEPTED, RoundState.LAPSED,
                                   None])
def test_a_bank_without_an_offer_in_a_finished_or_unknown_round_is_told_it_does_not_exist(
        state: RoundState | None) -> None:
    sub = ready(TOPIC, "bank_delta")
    assert sub.require_offer(state) == [Unsubscribe(), SendError("not_found", "no such round")]


# ----------------------------------------------------------------------------- reconnect
def test_resync_after_reconnect_catches_up_a_live_subscription() -> None:
    shell = live_at(4)
    shell.run(shell.sub.on_reconnect())
    assert shell.fetch == FetchHistory(4)
    shell.live(ROUND_12[6])  # the first event after the link came back
    shell.answer(ROUND_12[:6])  # 5 and 6 were published while the link was down
    assert shell.seqs() == [("quote", 5), ("quote", 6), ("quote", 7)]


def test_reconnect_leaves_a_subscription_that_is_syncing_alone() -> None:
    sub = ready(TOPIC, ME)
    sub.start(None)
    assert sub.on_reconnect() == []


# ----------------------------------------------------------------------------- masking
def test_the_viewer_sees_mine_only_for_its_own_offers() -> None:
    for viewer in (*BANKS, "operator"):
        shell = subscribed(None, ROUND_12[:3], viewer)
        for ev in ROUND_12[3:6]:
            shell.live(ev)
        shell.live(ROUND_12[8])
        shell.answer(ROUND_12[:9])
        snap, *events = shell.got
        own = OWN_REF.get(viewer)
        assert {e["ref"] for e in snap["offers"] if e["mine"]} == ({own} if own else set())
        assert [m["seq"] for m in events] == list(range(4, 10))
        for m in events:
            assert m["offer"]["mine"] is (m["offer"]["ref"] == own)
            assert ("offer_id" in m["offer"]) is m["offer"]["mine"]


def leaks(msg: dict[str, Any], viewer: str) -> list[str]:
    """Another bank's id, offer id or conditions anywhere in a message."""
    text = json.dumps(msg, ensure_ascii=False)
    return [s for bank in BANKS if bank != viewer
            for s in (bank, f"off_{bank}", f"secret conditions of {bank}") if s in text]


# ----------------------------------------------------------------------------- any interleaving
ROUND_30 = make_round(29, closed=True)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[int | None, list[tuple[str, int]]]:
    since = draw(st.none() | st.integers(-2, len(ROUND_30) + 3))
    steps = draw(st.lists(st.tuples(
        st.sampled_from(["deliver", "deliver", "deliver", "drop", "dup", "hold", "release",
                         "answer", "answer", "reconnect"]),
        st.integers(0, 1_000)), max_size=80))
    return since, steps


@settings(max_examples=400, deadline=None)
@given(schedules(), st.sampled_from([None, 3, 8, 64]), st.sampled_from((*BANKS, "operator")))
def test_any_interleaving_delivers_every_event_once_in_seq_order_and_masked(
        schedule: tuple[int | None, list[tuple[str, int]]], room: int | None,
        viewer: str) -> None:
    since, steps = schedule
    shell = Shell(ready(TOPIC, viewer))
    shell.run(shell.sub.start(since))
    published, held = 0, []
    for step, n in steps:
        if step in ("deliver", "drop", "dup", "hold") and published < len(ROUND_30):
            ev = ROUND_30[published]
            published += 1
            for _ in range({"deliver": 1, "drop": 0, "dup": 2, "hold": 0}[step]):
                shell.live(ev)
            if step == "hold":
                held.append(ev)
        elif step == "release" and held:
            shell.live(held.pop(n % len(held)))
        elif step == "answer" and shell.fetch is not None:
            shell.answer(ROUND_30[:published], room)
        elif step == "reconnect":
            shell.run(shell.sub.on_reconnect())
    for ev in ROUND_30[published:] + held:  # the rest arrives; the link comes back once more
        shell.live(ev)
    shell.run(shell.sub.on_reconnect())
    while shell.fetch is not None:
        shell.answer(ROUND_30, room)

    # seq rises by exactly one from each snapshot (or from since_seq) to the round's last event
    expected = None if since is None else max(0, since) + 1
    for kind, seq in shell.seqs():
        if kind != "snapshot":
            assert expected is not None and seq == expected
        expected = seq + 1
    assert expected == len(ROUND_30) + 1
    # the book the client built (auction.livebook: from what it had at since_seq, then each
    # message, every quote's rank and book_size checked) is the book a fresh snapshot shows
    book = LiveBook()
    if since is not None:
        had = ROUND_30[:max(0, since)]
        book.load({**book_for(view_at(had, viewer), viewer, ""), "seq": max(0, since)})
    for m in shell.got:
        book.apply(m)
        assert leaks(m, viewer) == []
    assert book.differences(book_for(view_at(ROUND_30, viewer), viewer, "")) == []
    assert book.closed
