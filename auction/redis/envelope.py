"""The wire format of what the Redis book stores and announces, in one place.

Offer record (the offers hash, the event stream, the pub/sub message), compact and exact::

    {"o": offer_id, "f": ref, "b": bank_id, "l": label, "v": version, "s": seq,
     "t": accepted_at_ms, <terms: "r" "a" "n" "g" "e" "u" "x" "c", see OfferTerms.to_record>,
     "p": apr_e4}

The Lua scripts write the first seven members themselves and append the terms that Python
sends as ``record_tail``.

Every pub/sub message of the deployment's channel is one JSON object with a kind ``k``:

    ``q`` quote           {"r": round_id, "s": seq, "k": "q", "o": <record>, "n": rank, "z": size}
    ``c`` round closed    {"r": round_id, "s": seq, "k": "c", "t": closed_at_ms}
    ``o`` round opened    {"k": "o", "r": round_id}
    ``f`` close finalized {"k": "f", "r": round_id}

``q`` and ``c`` are written by the Lua scripts, the same object on the channel and in the
round's event stream: ``n`` is the offer's rank just after the change (1 = best), ``z`` the
book's size. A quote never restates the other offers' ranks, so its size and cost do not grow
with the book. (Entries written before ``n`` and ``z`` existed read back with rank 0: not
sendable as a quote, a subscriber needing one gets a snapshot.) ``decode`` turns any of them
into its typed value (``auction.bus``) with one JSON parse.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from auction.book import Event
from auction.bus import Announcement, BookChanged, RoundFinalized, RoundOpened
from auction.model import OfferTerms, OfferVersion


class EnvelopeError(ValueError):
    """Bytes on the channel or in a stream that are not a message of this format."""


# ----------------------------------------------------------------------------- records
def record_tail(terms: OfferTerms, apr_e4: int) -> str:
    """The offer's terms as JSON members (no braces) for the Lua scripts to wrap."""
    body = dict(terms.to_record())
    body["p"] = apr_e4
    return orjson.dumps(body).decode()[1:-1]


def record_json(v: OfferVersion) -> str:
    rec: dict[str, object] = {
        "o": v.offer_id, "f": v.ref, "b": v.bank_id, "l": v.label, "v": v.version,
        "s": v.seq, "t": v.accepted_at_ms,
    }
    rec.update(v.terms.to_record())
    rec["p"] = v.apr_e4
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False)


def parse_record(round_id: str, raw: str | bytes | dict[str, Any]) -> OfferVersion:
    rec: dict[str, Any] = raw if isinstance(raw, dict) else orjson.loads(raw)
    return OfferVersion(
        round_id=round_id,
        offer_id=str(rec["o"]),
        ref=str(rec["f"]),
        bank_id=str(rec["b"]),
        label=str(rec["l"]),
        version=int(rec["v"]),
        seq=int(rec["s"]),
        accepted_at_ms=int(rec["t"]),
        apr_e4=int(rec["p"]),
        terms=OfferTerms.from_record(rec),
    )


# ----------------------------------------------------------------------------- events
def event_json(ev: Event) -> str:
    """A round's event as its stream entry (what ``parse_event`` reads back)."""
    if ev.kind == "quote" and ev.offer is not None:
        ranks = f',"n":{ev.rank},"z":{ev.size}' if ev.rank else ""
        return f'{{"r":"{ev.round_id}","s":{ev.seq},"k":"q","o":{record_json(ev.offer)}{ranks}}}'
    return f'{{"r":"{ev.round_id}","s":{ev.seq},"k":"c","t":{ev.at_ms}}}'


def _event(ev: dict[str, Any]) -> Event:
    rid = str(ev["r"])
    if ev["k"] == "q":
        return Event(rid, int(ev["s"]), "quote", parse_record(rid, ev["o"]),
                     rank=int(ev.get("n", 0)), size=int(ev.get("z", 0)))
    return Event(rid, int(ev["s"]), "round_closed", at_ms=int(ev["t"]))


def parse_event(raw: str | bytes) -> Event:
    return _event(orjson.loads(raw))


# ----------------------------------------------------------------------------- the channel
def encode(news: RoundOpened | RoundFinalized) -> str:
    kind = "o" if isinstance(news, RoundOpened) else "f"
    return json.dumps({"k": kind, "r": news.round_id}, separators=(",", ":"))


def decode(raw: str | bytes) -> Announcement:
    try:
        msg = orjson.loads(raw)
        kind = msg["k"]
        if kind in ("q", "c"):
            return BookChanged(_event(msg))
        if kind == "o":
            return RoundOpened(str(msg["r"]))
        if kind == "f":
            return RoundFinalized(str(msg["r"]))
    except (ValueError, KeyError, TypeError) as e:
        raise EnvelopeError(f"not a message of the channel: {raw[:80]!r}") from e
    raise EnvelopeError(f"unknown message kind {kind!r}")
