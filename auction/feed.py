"""One subscriber's view of a round's live stream, sans I/O: every sequencing rule, no socket.

The hub (gateway/stream.py) owns the I/O: the Redis pub/sub link, the WebSocket frames, the
Redis reads. For each round subscription it keeps a ``Subscription`` from this module, feeds it
what happened, and carries out the actions it returns, in order. Nothing here awaits, reads a
clock or touches a connection, so every rule is a plain function of the inputs and is tested in
tests/unit/test_feed.py.

What the stream promises each subscriber: the round's events in ``seq`` order, each exactly once,
no gaps. When that cannot be kept cheaply, a fresh ``snapshot`` (the whole book) restarts it.

Inputs (methods of ``Subscription``, each returning a list of actions):

- ``start(since_seq)``: the subscription is admitted. ``None`` asks for a snapshot; a number
  asks for the events after it.
- ``require_offer(state)``: the viewer is a bank that has not bid in the round. An open round
  answers ``offer_required`` and waits for the bank's own first offer; any other round does not
  exist for that bank.
- ``on_offer_seen()``: the hub found (by reading) that the pending bank has bid after all.
- ``on_live(event)``: a book event arrived on the pub/sub link.
- ``on_snapshot(view, now_ms)``: the answer to ``FetchSnapshot`` (``None``: round unknown);
  or ``snapshot_sent(seq)`` when the hub sent the same snapshot itself (from its cache).
- ``on_history(history, room)``: the answer to ``FetchHistory``: the round's last seq and the
  events after the asked seq (at most ``catch_up_limit(room)`` of them: the work of a catch-up
  grows with how far behind the subscriber is, never with the round's history), and the free
  room of the connection's queue (``None``: unbounded).
- ``on_reconnect()``: the pub/sub link was re-established; live events may have been missed.
- ``on_finalized()``: the round's closing record is in SQL: its results are ready.

Actions (the hub executes them in order):

- ``Deliver(event, owner)``: send a live event with the message shared by all subscribers
  (``event_messages``, built and encoded once per event by the hub); ``owner`` picks the
  variant for the offer's own bank. Only ever the event just passed to ``on_live``.
- ``Send(msg)``: send a message built for this subscriber alone (snapshot, catch-up).
- ``SendError(code, detail)``: send an ``error`` message for this topic.
- ``Unsubscribe()``: forget this subscription.
- ``FetchSnapshot()`` / ``FetchHistory(after_seq)``: read the book or the round's history and answer
  with ``on_snapshot`` / ``on_history``. At most one fetch is outstanding per subscription and
  it is always the last action of a list; until it is answered live events are buffered.

Phases: ``PENDING`` (a bank before its first offer: sees nothing), ``SYNCING`` (a fetch is in
flight: live events are buffered), ``LIVE`` (live events go out as they come).

Sequencing rules:

1. A live event with ``seq`` below the next expected one is a duplicate and is dropped.
2. A live event above it reveals a gap: the subscription fetches the history after the last
   seq it sent and sends the missing events from it, each with its rank as of that event
   (recorded by the book with the event).
3. ``since_seq`` more than ``MAX_CATCH_UP`` behind, a backlog that does not fit in the free room
   of the connection's queue (a catch-up is queued at once; a backlog the queue cannot take
   would drop the client on every resync), or a ``since_seq`` in the future: a snapshot instead.
4. Events that arrived during a snapshot or catch-up follow it in ``seq`` order, without
   duplicates; a gap among them (or a quote without its rank) fetches the history again; a
   quote without its rank in the history itself (written by an older book) gets a snapshot.
5. A pending bank gets nothing (not even ``round_closed``) until its own first offer arrives;
   then it gets the snapshot, which already holds that offer.
6. After a pub/sub reconnect every live subscription catches up from the history.
7. ``round_closed`` means the results are ready (API.md): the book's close event (appended by
   ``close.lua`` at the flip, before the closing record is in SQL) is held, never sent, until
   ``on_finalized()`` says the closing record is written (the worker's ``RoundFinalized``, or
   the hub's read of SQL when a catch-up meets a held or historical close); then it goes out,
   once, in its ``seq`` place (it is the round's last event).
8. Masking: the owner's variant of a quote (``mine``, ``offer_id``, ``conditions``) goes only to
   the bank whose offer it is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from auction.book import BookView, Event, History
from auction.masking import book_for, quote_messages
from auction.model import RoundState, iso, ms_to_dt
from auction.rules import book_access

#: a since_seq further behind than this gets a snapshot instead. It is also what Redis keeps of
#: a round's history once SQL holds it (usecases/durability.py KEEP_EVENTS): 1,000 until
#: 2026-12-01, when the bench's rounds kept ~375 KB each in Redis and every AOF rewrite (a fork
#: writing the whole data set, on a core the api shares on a 2-core host) took ~0.3 s of CPU.
#: A round's book holds at most IGE_MAX_OFFERS_PER_BANK (5) offers per bank, so for a round of
#: up to ~50 banks a snapshot is no bigger than 256 events of its history
MAX_CATCH_UP = 256

Message = dict[str, Any]


class Phase(enum.Enum):
    PENDING = "pending"  # a bank that has not bid: waits for its own first offer
    SYNCING = "syncing"  # a snapshot or history read is in flight: live events are buffered
    LIVE = "live"  # live events go out as they arrive


@dataclass(frozen=True, slots=True)
class Deliver:
    """Send the live ``event`` as the message shared by every subscriber of the round:
    the variant for the offer's owner when ``owner`` is true, else the one for everyone else."""

    event: Event
    owner: bool


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``msg``, built for this subscriber alone."""

    msg: Message


@dataclass(frozen=True, slots=True)
class SendError:
    """Send an ``error`` message with ``code`` and ``detail`` on this topic."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Forget this subscription."""


@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    """Read the round's book for this viewer; answer with ``Subscription.on_snapshot``."""


@dataclass(frozen=True, slots=True)
class FetchHistory:
    """Read the round's last seq and the events after ``after_seq`` (at most
    ``catch_up_limit(room)``); answer with ``Subscription.on_history``."""

    after_seq: int


Fetch = FetchSnapshot | FetchHistory
Action = Deliver | Send | SendError | Unsubscribe | FetchSnapshot | FetchHistory


def catch_up_limit(room: int | None) -> int:
    """How many events a catch-up may send: ``MAX_CATCH_UP``, and fewer than the free room
    of the connection's queue (``None``: unbounded); further behind gets a snapshot."""
    return MAX_CATCH_UP if room is None else max(0, min(MAX_CATCH_UP, room - 1))


def event_messages(ev: Event, topic: str) -> tuple[Message, Message]:
    """The stream message of one event: (for the offer's owner, for everyone else). A
    ``round_closed`` has a single variant."""
    if ev.kind == "quote" and ev.offer is not None:
        if not ev.rank:
            raise ValueError(f"quote {ev.round_id}#{ev.seq} carries no rank")
        return quote_messages(ev, topic)
    closed = {"type": "round_closed", "topic": topic, "seq": ev.seq,
              "closed_at": iso(ms_to_dt(ev.at_ms))}
    return closed, closed


def _sendable(ev: Event) -> bool:
    """An event can go out as it is unless it is a quote without its rank."""
    return ev.kind != "quote" or ev.rank > 0


class Subscription:
    """The sequencing state of one viewer's subscription to one round topic.

    ``viewer`` is the subscriber's principal id: the bank id for banks (it decides which offers
    are "mine"), an id no offer carries for the operator."""

    def __init__(self, topic: str, viewer: str) -> None:
        self.topic = topic
        self.viewer = viewer
        self.phase = Phase.SYNCING  # live events are buffered until the first sync
        self.next_seq = 1  # the seq the subscriber needs next
        self._buffer: list[Event] = []  # live events that arrived while SYNCING, else empty
        self.finalized = False  # the round's results are ready (its closing record is in SQL)
        self.held: Event | None = None  # the round's close, held until the results are ready

    # -- admission ----------------------------------------------------------------------
    def start(self, since_seq: int | None) -> list[Action]:
        """Begin with a snapshot, or with the events after ``since_seq`` (negative means 0)."""
        if since_seq is None:
            return [FetchSnapshot()]
        self.next_seq = max(0, since_seq) + 1
        return [FetchHistory(self.next_seq - 1)]

    def require_offer(self, state: RoundState | None) -> list[Action]:
        """The viewer is a bank with no offer in the round, whose state is ``state``
        (``None``: not in the book). A finished round it took no part in does not exist for it."""
        if book_access(state, has_bid=False) == "not_found":
            return [Unsubscribe(), SendError("not_found", "no such round")]
        self.phase = Phase.PENDING
        self._buffer = []  # what arrived meanwhile: the snapshot after the first offer has it
        return [SendError("offer_required", "send an offer in this round first; "
                                            "the snapshot follows your first offer")]

    def on_offer_seen(self) -> list[Action]:
        """The pending bank turned out to have bid (its offer may have landed before the
        ``require_offer`` answer went out, so never arrives live)."""
        if self.phase is not Phase.PENDING:
            return []
        return self._resync(FetchSnapshot())

    # -- live events --------------------------------------------------------------------
    def on_live(self, ev: Event) -> list[Action]:
        if self.phase is Phase.PENDING:
            if ev.kind == "quote" and ev.offer is not None and ev.offer.bank_id == self.viewer:
                return self._resync(FetchSnapshot())  # the snapshot will hold this offer
            return []
        if self.phase is Phase.SYNCING:
            self._buffer.append(ev)
            return []
        if ev.seq < self.next_seq:
            return []  # a duplicate
        if ev.seq > self.next_seq or not _sendable(ev):
            actions = self._resync(FetchHistory(self.next_seq - 1))
            self._buffer.append(ev)
            return actions
        self.next_seq = ev.seq + 1
        if self._hold(ev):
            return []
        return [Deliver(ev, self._owns(ev))]

    def on_finalized(self) -> list[Action]:
        """The round's closing record is written: a held close goes out now."""
        self.finalized = True
        if self.held is None:
            return []
        ev, self.held = self.held, None
        return [Send(event_messages(ev, self.topic)[1])]

    def on_reconnect(self) -> list[Action]:
        """The pub/sub link came back: a live subscription may have missed events."""
        if self.phase is not Phase.LIVE:
            return []  # pending: nothing to miss; syncing: the gap shows on the next event
        return self._resync(FetchHistory(self.next_seq - 1))

    # -- answers to fetches -------------------------------------------------------------
    def on_snapshot(self, view: BookView | None, now_ms: int) -> list[Action]:
        """The round's book as this viewer may see it, read at ``now_ms``."""
        if view is None:
            return [SendError("not_found", "round not found")]  # stays SYNCING
        book = book_for(view, self.viewer, iso(ms_to_dt(now_ms)))
        return [Send({"type": "snapshot", "topic": self.topic, **book}),
                *self.snapshot_sent(view.seq)]

    def snapshot_sent(self, seq: int) -> list[Action]:
        """The hub sent this viewer, itself, the snapshot of ``seq`` that ``on_snapshot`` would
        have built (the same bytes: gateway/snapshots.py): what follows it."""
        self.next_seq = seq + 1
        return self._drain()

    def on_history(self, history: History, room: int | None) -> list[Action]:
        """The round's last seq and the events after the asked seq, and the free room of the
        connection's queue (``None``: unbounded)."""
        if history.seq is None:
            return [FetchSnapshot()]  # the round is gone from the book: the snapshot says so
        have = max(history.seq, history.events[-1].seq if history.events else 0)
        behind = have - (self.next_seq - 1)
        if behind < 0 or behind > catch_up_limit(room):
            return [FetchSnapshot()]  # in the future, too old, or more than the queue takes
        if behind and (not history.events or history.events[0].seq > self.next_seq):
            return [FetchSnapshot()]  # the book no longer keeps the next event (Book.forget)
        actions: list[Action] = []
        for ev in history.events:
            if ev.seq != self.next_seq:
                continue
            if not _sendable(ev):
                return [FetchSnapshot()]  # an old entry without its rank: start afresh
            actions += self._send(ev)
        return actions + self._drain()

    # -- helpers ------------------------------------------------------------------------
    def _resync(self, fetch: Fetch) -> list[Action]:
        self.phase = Phase.SYNCING  # the buffer is empty: it only fills while SYNCING
        return [fetch]

    def _drain(self) -> list[Action]:
        """Deliver what arrived while syncing, in seq order, then go live."""
        buffered = sorted(self._buffer, key=lambda e: e.seq)
        self._buffer = []
        self.phase = Phase.LIVE
        actions: list[Action] = []
        for ev in buffered:
            if ev.seq < self.next_seq:
                continue
            if ev.seq > self.next_seq or not _sendable(ev):
                # the history has the rest
                return [*actions, *self._resync(FetchHistory(self.next_seq - 1))]
            actions += self._send(ev)
        return actions

    def _send(self, ev: Event) -> list[Send]:
        owner, other = event_messages(ev, self.topic)
        self.next_seq = ev.seq + 1
        if self._hold(ev):
            return []
        return [Send(owner if self._owns(ev) else other)]

    def _hold(self, ev: Event) -> bool:
        """Hold the round's close until its results are ready (rule 7)."""
        if ev.kind != "round_closed" or self.finalized:
            return False
        self.held = ev
        return True

    def _owns(self, ev: Event) -> bool:
        return ev.offer is not None and ev.offer.bank_id == self.viewer
