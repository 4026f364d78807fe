"""A round's ``snapshot`` frame for one viewer, its offers built once per content of the book.

A snapshot is the book's header (``masking.book_header``: seq, state, deadline, the viewer's
label, the server's time) and the masked offers (``masking.book_entries``). Re-subscribing to
an unchanged round used to read, parse, mask and encode every offer again, blocking the event
loop for tens of milliseconds with a thousand offers; now:

* the book's head is read first (``Book.head``: a few fields, whatever the book's size). Within
  one ``epoch`` of a round (its live state from its open or rebuild on) the offers change only
  with ``seq``, so ``(round, epoch, seq)`` names them;
* the offers' encoded bytes are kept per ``(round, epoch, seq, viewer, encoding)`` in a cache
  bounded in bytes (least recently used first out). The viewer is part of the key: the masking
  differs by bank (``mine``, ``offer_id`` and ``conditions`` of its own offers), so bytes built
  for one bank are never served to another. A round's newer content replaces its older entries;
* on a miss the book is read and its offers masked and encoded in slices of ``SLICE`` offers,
  yielding to the event loop between them;
* the frame is the header encoded fresh (its ``server_time`` is now) around the offers' bytes:
  byte for byte what ``encode({"type": "snapshot", "topic": ..., **book_for(view, viewer,
  server_time)})`` gives (tests/contract/test_snapshot_cache.py).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any

import msgpack

from auction.book import Book, BookHead, BookView
from auction.masking import book_entries, book_header

SLICE = 100  # offers masked and encoded between two yields to the event loop

Key = tuple[str, str, int, str, bool]  # round_id, epoch, seq, viewer, binary
Blob = str | bytes


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class SnapshotCache:
    """Encoded offers of snapshots, at most ``max_bytes`` of them (a JSON entry counts its
    characters), least recently used out first; per round only its latest content."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[Key, Blob] = OrderedDict()
        self._latest: dict[str, tuple[str, int]] = {}  # round_id -> (epoch, seq) kept

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Blob | None:
        blob = self._entries.get(key)
        if blob is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return blob

    def put(self, key: Key, blob: Blob) -> None:
        if len(blob) > self.max_bytes:
            return
        rid, epoch, seq = key[0], key[1], key[2]
        latest = self._latest.get(rid)
        if latest is not None and latest != (epoch, seq):
            if latest[0] == epoch and latest[1] > seq:
                return  # an older content than the one kept (a read that raced a change)
            self._drop_round(rid)
        self._latest[rid] = (epoch, seq)
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._entries[key] = blob
        self.size += len(blob)
        while self.size > self.max_bytes:
            k, b = self._entries.popitem(last=False)
            self.size -= len(b)
            if not any(x[0] == k[0] for x in self._entries):
                self._latest.pop(k[0], None)

    def _drop_round(self, rid: str) -> None:
        for k in [k for k in self._entries if k[0] == rid]:
            self.size -= len(self._entries.pop(k))
        self._latest.pop(rid, None)


async def encode_offers(view: BookView, viewer: str, binary: bool, slice_size: int = SLICE
                        ) -> Blob:
    """The masked offers of ``view`` for ``viewer``, encoded as the ``offers`` value of BOOK
    would be: a JSON array or a MessagePack array, built ``slice_size`` offers at a time."""
    n = len(view.offers)
    parts: list[Any] = []
    for start in range(0, n, slice_size):
        if start:
            await asyncio.sleep(0)  # let the loop serve others between slices
        entries = book_entries(view, viewer, start, start + slice_size)
        if binary:
            parts.append(b"".join(msgpack.packb(e, use_bin_type=True) for e in entries))
        else:
            parts.append(_json(entries)[1:-1])
    if binary:
        packer = msgpack.Packer(use_bin_type=True)
        return bytes(packer.pack_array_header(n)) + b"".join(parts)
    return "[" + ",".join(parts) + "]"


def frame(head: BookHead | BookView, offers: Blob, topic: str, server_time: str,
          binary: bool) -> Blob:
    """The ``snapshot`` frame: the header encoded now around the offers' encoded bytes."""
    header = {"type": "snapshot", "topic": topic, **book_header(head, server_time)}
    if binary:
        assert isinstance(offers, bytes)
        packer = msgpack.Packer(use_bin_type=True)
        out = [bytes(packer.pack_map_header(len(header) + 1))]
        out += [msgpack.packb(k, use_bin_type=True) + msgpack.packb(v, use_bin_type=True)
                for k, v in header.items()]
        out += [msgpack.packb("offers", use_bin_type=True), offers]
        return b"".join(out)
    assert isinstance(offers, str)
    return _json(header)[:-1] + ',"offers":' + offers + "}"


class Snapshots:
    """Snapshot frames of a book's rounds, their offers kept in a ``SnapshotCache``."""

    def __init__(self, book: Book, max_bytes: int) -> None:
        self.book = book
        self.cache = SnapshotCache(max_bytes)

    async def frame(self, round_id: str, viewer: str, topic: str, binary: bool,
                    server_time: str) -> tuple[Blob, int, bool] | None:
        """The snapshot frame of the round for ``viewer`` (a bank id: its offers are "mine";
        an operator's id: none is), its seq and whether its offers came from the cache; None:
        the book does not know the round."""
        head: BookHead | BookView | None = None
        offers = None
        if self.cache.max_bytes:
            head = await self.book.head(round_id, viewer)
            if head is None:
                return None
            offers = self.cache.get((round_id, head.epoch, head.seq, viewer, binary))
        hit = offers is not None
        if offers is None:
            view = await self.book.view(round_id, viewer)
            if view is None:
                return None
            offers = await encode_offers(view, viewer, binary)
            if self.cache.max_bytes:
                self.cache.put((round_id, view.epoch, view.seq, viewer, binary), offers)
            head = view
        assert head is not None
        return frame(head, offers, topic, server_time, binary), head.seq, hit
