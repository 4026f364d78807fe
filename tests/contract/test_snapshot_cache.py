"""The snapshot cache (gateway/snapshots.py) on every book implementation: a cached snapshot is
byte for byte a fresh build for the bank it is served to, never another bank's, and a change of
the book (a new offer, a revision, a rebuilt round) is never served from the cache.

Masking is a security property (auction/masking.py): each bank sees its own offers with their
``offer_id`` and ``conditions`` and the others' only by label, so the bytes differ by bank."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import msgpack
import pytest

from auction.book import RoundSnapshot
from auction.masking import book_for
from auction.model import Outcome, RoundState
from auction.redis.keys import round_keys
from auction.rules import new_ref
from gateway.connection import encode
from gateway.snapshots import Snapshots
from tests.contract.conftest import CheckedBook
from tests.contract.test_book_contract import SHORT_MS, bid, opened, sleep_past, terms

NOW = "2026-11-30T10:00:00Z"
BANKS = ("bank_a", "bank_b")


async def fresh(book: CheckedBook, round_id: str, viewer: str, binary: bool) -> str | bytes:
    """The snapshot frame as the stream built it before there was a cache."""
    view = await book.view(round_id, viewer)
    assert view is not None
    return encode({"type": "snapshot", "topic": f"round:{round_id}",
                   **book_for(view, viewer, NOW)}, binary)


def decoded(frame: str | bytes) -> dict[str, Any]:
    got: dict[str, Any] = (msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes)
                           else json.loads(frame))
    return got


async def seen(snaps: Snapshots, round_id: str, viewer: str, binary: bool
               ) -> tuple[str | bytes, int, bool]:
    got = await snaps.frame(round_id, viewer, f"round:{round_id}", binary, NOW)
    assert got is not None
    return got


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
async def test_a_cached_snapshot_is_a_fresh_build_for_its_bank_and_never_anothers(
        book: CheckedBook, binary: bool) -> None:
    rnd = await opened(book)
    rid = rnd.round_id
    for i, bank in enumerate(BANKS * 3):
        res = await book.submit(rid, bank, f"{bank}_{i}", new_ref(),
                                terms(300_000 + i, conditions=f"only {bank} may read this"),
                                330_000 - i * 1000)
        assert res.offer is not None
    snaps = Snapshots(book, 1 << 20)
    first = {}
    for bank in BANKS:  # the same round, the same seq: built once for each bank
        frame, seq, hit = await seen(snaps, rid, bank, binary)
        assert (frame, seq, hit) == (await fresh(book, rid, bank, binary), 6, False)
        first[bank] = frame
    assert first["bank_a"] != first["bank_b"]
    for _ in range(2):  # from the cache now, each bank's own bytes, whoever asked before
        for bank in (*BANKS, *reversed(BANKS)):
            frame, seq, hit = await seen(snaps, rid, bank, binary)
            assert (frame, seq, hit) == (first[bank], 6, True)
    for bank in BANKS:
        other = next(b for b in BANKS if b != bank)
        offers = decoded(first[bank])["offers"]
        assert {o["offer_id"] for o in offers if o["mine"]} == {
            f"{bank}_{i}" for i in range(6) if BANKS[i % 2] == bank}
        assert all("offer_id" not in o and "conditions" not in o for o in offers
                   if not o["mine"])
        text = first[bank] if isinstance(first[bank], str) else first[bank].decode("latin-1")
        assert f"only {other} may read this" not in text and f"{other}_" not in text
    # an operator (no offer of its own, no label) gets its own bytes too
    op, _, hit = await seen(snaps, rid, "op_1", binary)
    assert (op, hit) == (await fresh(book, rid, "op_1", binary), False)
    assert "my_label" not in decoded(op)

    # a new offer: a new seq, never the cached bytes
    await bid(book, rnd, "bank_c", "c1", 310_000)
    for bank in BANKS:
        frame, seq, hit = await seen(snaps, rid, bank, binary)
        assert (frame, seq, hit) == (await fresh(book, rid, bank, binary), 7, False)
        assert frame != first[bank]
        assert decoded(frame)["offers"][0]["label"] == decoded(
            await fresh(book, rid, "bank_c", binary))["my_label"]
    assert len(snaps.cache) == 2  # seq 6's entries went with the change
    # a revision too
    assert (await book.revise(rid, "bank_a", "bank_a_0", terms(1), 300_000)).offer is not None
    frame, seq, hit = await seen(snaps, rid, "bank_a", binary)
    assert (frame, seq, hit) == (await fresh(book, rid, "bank_a", binary), 8, False)


async def test_a_closed_round_is_never_served_its_open_snapshot(book: CheckedBook) -> None:
    rnd = await opened(book, closes_in_ms=SHORT_MS)
    await bid(book, rnd, "bank_a", "a1", 330_000)
    snaps = Snapshots(book, 1 << 20)
    open_frame, _, _ = await seen(snaps, rnd.round_id, "bank_a", False)
    assert decoded(open_frame)["state"] == "open"
    assert (await seen(snaps, rnd.round_id, "bank_a", False))[2] is True
    await sleep_past(rnd.closes_at_ms)
    assert (await book.close(rnd.round_id)).outcome is Outcome.OK
    frame, seq, hit = await seen(snaps, rnd.round_id, "bank_a", False)
    assert (frame, seq, hit) == (await fresh(book, rnd.round_id, "bank_a", False), 2, False)
    assert decoded(frame)["state"] == "closed"
    assert await snaps.frame("rnd_unknown", "bank_a", "round:rnd_unknown", False, NOW) is None


async def test_a_rebuilt_round_is_a_new_epoch_never_served_from_the_cache(
        redis_book: CheckedBook) -> None:
    """A round the book lost and rebuilt from SQL may reach a seq it had before with other
    offers (those SQL did not hold yet were lost): its epoch is new, so nothing cached before
    the loss is served after it."""
    book = redis_book
    assert book.redis is not None
    rnd = await opened(book, labels=["Banka K", "Banka L"])
    rid = rnd.round_id
    await bid(book, rnd, "bank_a", "a1", 330_000)
    await bid(book, rnd, "bank_b", "b1", 320_000)
    snaps = Snapshots(book, 1 << 20)
    before, seq, _ = await seen(snaps, rid, "bank_a", False)
    assert (await seen(snaps, rid, "bank_a", False))[2] is True
    head = await book.head(rid, "bank_a")
    assert head is not None and seq == head.seq == 2
    view = await book.view(rid)
    assert view is not None
    events = await book.events(rid)
    # the book loses the round; SQL held only the first offer: rebuilt with it, then another
    # offer brings the round back to seq 2 with another book
    await book.redis.delete(*round_keys(rid))
    kept = [o for o in view.offers if o.offer_id == "a1"]
    snap = RoundSnapshot(rid, RoundState.OPEN, rnd.opened_at_ms, rnd.closes_at_ms, 0,
                         {"bank_a": kept[0].label}, ["Banka L"], kept,
                         [e for e in events if e.seq == 1])
    assert await book.restore(snap) is True
    await bid(book, rnd, "bank_b", "b2", 340_000)
    again = await book.head(rid, "bank_a")
    assert again is not None and again.seq == 2 and again.epoch != head.epoch
    after, seq, hit = await seen(snaps, rid, "bank_a", False)
    assert (after, seq, hit) == (await fresh(book, rid, "bank_a", False), 2, False)
    assert after != before


async def test_head_is_the_view_without_its_offers(book: CheckedBook) -> None:
    rnd = await opened(book)
    await bid(book, rnd, "bank_a", "a1", 330_000)
    for viewer in ("bank_a", "bank_b", ""):
        view = await book.view(rnd.round_id, viewer)
        assert view is not None
        assert await book.head(rnd.round_id, viewer) == view.head
    assert await book.head("rnd_unknown", "bank_a") is None
    assert replace(view.head, epoch="") != view.head  # an epoch is always written now
