"""The snapshot cache's bounds and the frames it builds (gateway/snapshots.py): pure
bookkeeping and encoding."""

from __future__ import annotations

import json

import msgpack
import pytest

from auction.book import BookView
from auction.masking import book_for
from gateway.connection import encode
from gateway.snapshots import SnapshotCache, encode_offers, frame
from tests.unit.test_feed import ME, make_round, view_at


def test_the_cache_keeps_at_most_its_bytes_the_least_recently_used_out_first() -> None:
    c = SnapshotCache(10)
    c.put(("r1", "e", 1, "bank_a", False), "aaaa")
    c.put(("r2", "e", 1, "bank_a", False), "bbbb")
    assert c.get(("r1", "e", 1, "bank_a", False)) == "aaaa"  # r1 is now the most recent
    c.put(("r3", "e", 1, "bank_a", False), "cccc")
    assert c.size <= 10 and len(c) == 2
    assert c.get(("r2", "e", 1, "bank_a", False)) is None
    assert c.get(("r1", "e", 1, "bank_a", False)) == "aaaa"
    c.put(("r4", "e", 1, "bank_a", False), "x" * 11)  # larger than the whole cache: not kept
    assert c.get(("r4", "e", 1, "bank_a", False)) is None and c.size == 8
    assert (c.hits, c.misses) == (2, 2)


def test_a_rounds_newer_content_replaces_its_older_and_an_older_one_is_not_kept() -> None:
    c = SnapshotCache(1000)
    c.put(("r1", "e", 1, "bank_a", False), "v1a")
    c.put(("r1", "e", 1, "bank_b", True), b"v1b")
    c.put(("r1", "e", 2, "bank_a", False), "v2a")
    assert len(c) == 1 and c.get(("r1", "e", 1, "bank_b", True)) is None
    c.put(("r1", "e", 1, "bank_b", False), "stale")  # a read that raced the change
    assert c.get(("r1", "e", 1, "bank_b", False)) is None and len(c) == 1
    c.put(("r1", "f", 1, "bank_a", False), "rebuilt")  # another epoch: a rebuilt round
    assert len(c) == 1 and c.get(("r1", "f", 1, "bank_a", False)) == "rebuilt"
    assert c.size == len("rebuilt")


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("n", [0, 1, 7, 250])
async def test_offers_built_in_slices_make_the_frame_a_whole_build_makes(binary: bool,
                                                                          n: int) -> None:
    view: BookView = view_at(make_round(n)) if n else view_at([])
    offers = await encode_offers(view, ME, binary, slice_size=3)
    got = frame(view, offers, "round:r", "2026-11-30T10:00:00Z", binary)
    want = encode({"type": "snapshot", "topic": "round:r",
                   **book_for(view, ME, "2026-11-30T10:00:00Z")}, binary)
    assert got == want
    doc = msgpack.unpackb(got, raw=False) if binary else json.loads(got)
    assert len(doc["offers"]) == len(view.offers)
