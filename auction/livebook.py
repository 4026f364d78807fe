"""A round's masked book as a stream client keeps it: a snapshot, then one quote at a time.

A ``quote`` carries only the offer that changed (with its new rank) and the book's size, never
the other offers' ranks, so its size and cost do not grow with the book. The client keeps the
order itself by the ranking key every entry carries: ``apr``, then ``annual_rate``, then
``seq`` (lower first), all exact decimals and integers. ``LiveBook`` is that client side in a
few lines: every client of the stream in this project (the end-to-end tests, the locust
listener, the benchmark) keeps its books with it, checks each quote's rank and ``book_size``
against its own order, and can compare itself with a fresh snapshot. Bank integrators may read
it as the reference for their own.

Pure: no I/O, no clock. Messages are the decoded stream objects (JSON or MessagePack).
"""

from __future__ import annotations

import bisect
from decimal import Decimal
from typing import Any

Message = dict[str, Any]
Key = tuple[Decimal, Decimal, int]


class OutOfStep(Exception):
    """The stream and the book disagree: a gap in ``seq``, or a quote whose rank or
    ``book_size`` is not what the book built from the stream says. Resubscribe."""


def ranking_key(entry: Message) -> Key:
    """An entry's place in the total order: apr, then annual_rate, then seq."""
    return Decimal(entry["apr"]), Decimal(entry["annual_rate"]), int(entry["seq"])


class LiveBook:
    def __init__(self) -> None:
        self.seq: int | None = None  # the last seq applied; None before the first snapshot
        self.state: str | None = None
        self.closed = False
        self._by_ref: dict[str, Message] = {}
        self._order: list[tuple[Key, str]] = []  # (ranking key, ref), best first

    def __len__(self) -> int:
        return len(self._order)

    # -- the stream ---------------------------------------------------------------------
    def apply(self, msg: Message) -> None:
        """Apply one message of the round's topic (others are ignored)."""
        kind = msg.get("type")
        if kind == "snapshot":
            self.load(msg)
        elif kind == "quote":
            self.quote(msg)
        elif kind == "round_closed" and "seq" in msg:
            self._step(int(msg["seq"]))
            self.closed = True
            self.state = "closed"

    def load(self, snapshot: Message) -> None:
        """Start over from a snapshot (on subscribe, and after any resync)."""
        self._by_ref = {}
        self._order = []
        for e in snapshot["offers"]:
            self._by_ref[e["ref"]] = e
            self._order.append((ranking_key(e), e["ref"]))
        self._order.sort()
        ranks = [self._by_ref[ref]["rank"] for _, ref in self._order]
        if ranks != list(range(1, len(ranks) + 1)):
            raise OutOfStep(f"snapshot ranks {ranks} do not follow the ranking key")
        self.seq = int(snapshot["seq"])
        self.state = snapshot.get("state")
        self.closed = self.state not in (None, "open")

    def quote(self, msg: Message) -> None:
        """One offer added or revised: it takes its place by its ranking key."""
        self._step(int(msg["seq"]))
        entry = msg["offer"]
        old = self._by_ref.get(entry["ref"])
        if old is not None:
            del self._order[bisect.bisect_left(self._order, (ranking_key(old), old["ref"]))]
        item = (ranking_key(entry), entry["ref"])
        at = bisect.bisect_left(self._order, item)
        self._order.insert(at, item)
        self._by_ref[entry["ref"]] = entry
        if entry["rank"] != at + 1 or msg["book_size"] != len(self._order):
            raise OutOfStep(
                f"quote seq {msg['seq']}: the server says rank {entry['rank']} of "
                f"{msg['book_size']}, the book built from the stream says {at + 1} of "
                f"{len(self._order)}")

    def _step(self, seq: int) -> None:
        if self.seq is None:
            raise OutOfStep(f"seq {seq} before any snapshot")
        if seq != self.seq + 1:
            raise OutOfStep(f"expected seq {self.seq + 1}, got {seq}")
        self.seq = seq

    # -- reading ------------------------------------------------------------------------
    def offers(self) -> list[Message]:
        """Every live offer, best first, each with its current rank (as a snapshot has it)."""
        return [{**self._by_ref[ref], "rank": i} for i, (_, ref) in
                enumerate(self._order, start=1)]

    def rank_of(self, ref: str) -> int | None:
        e = self._by_ref.get(ref)
        if e is None:
            return None
        return bisect.bisect_left(self._order, (ranking_key(e), ref)) + 1

    def differences(self, snapshot: Message) -> list[str]:
        """How this book differs from a fresh snapshot of the same seq (empty: identical)."""
        out: list[str] = []
        if snapshot["seq"] != self.seq:
            out.append(f"seq: snapshot {snapshot['seq']}, built {self.seq}")
        mine, theirs = self.offers(), list(snapshot["offers"])
        if len(mine) != len(theirs):
            out.append(f"size: snapshot {len(theirs)}, built {len(mine)}")
        for i, (a, b) in enumerate(zip(mine, theirs, strict=False), start=1):
            if a != b:
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                out.append(f"rank {i}: differs in {', '.join(keys)}")
        return out
