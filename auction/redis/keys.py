"""Every Redis key and channel name of the deployment. No other module builds one.

A round's keys carry its id as the hash tag ``{round_id}``, so a round lives in one slot and
every script touches one slot only (Redis Cluster). The global structures are few: the deadline
index, the data-set marker, the persister lease, stream tickets, used one-time codes,
idempotency records of non-offer requests and the application group locks.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

PREFIX = "ige"
#: the pub/sub channel (pub/sub ignores database numbers: deployments sharing one Redis set
#: IGE_REDIS_CHANNEL apart)
CHANNEL = f"{PREFIX}:events"
#: sorted set: round_id scored by its closes_at_ms
DEADLINES = f"{PREFIX}:deadlines"
#: present while Redis keeps its data set; absent => rebuild the live rounds from SQL
ALIVE = f"{PREFIX}:alive"
#: the persister's lease (one holder at a time)
PERSISTER_LEASE = f"{PREFIX}:lock:persister"


class RoundKeys(NamedTuple):
    meta: str  # hash: state, seq, opened_at, closes_at, closed_at
    book: str  # sorted set: rank members (auction.ranking), score 0
    offers: str  # hash: offer_id -> current version record
    labels: str  # hash: bank_id -> masked label
    pool: str  # list: shuffled unused labels
    events: str  # stream: entry id "<seq>-0", field d = event JSON


def round_keys(round_id: str) -> RoundKeys:
    t = f"{PREFIX}:{{{round_id}}}:"
    return RoundKeys(t + "m", t + "b", t + "o", t + "l", t + "p", t + "e")


def offer_idempotency(round_id: str, scoped_key: str) -> str:
    """An offer's Idempotency-Key record, kept beside the round (one slot with its book)."""
    return f"{PREFIX}:{{{round_id}}}:i:{scoped_key}"


def close_claim(round_id: str) -> str:
    """Held by the process closing the round, so processes do not all close it at once."""
    return f"{PREFIX}:{{{round_id}}}:closing"


def ticket(t: str) -> str:
    return f"{PREFIX}:ticket:{t}"


def used_code(user_id: str, counter: int) -> str:
    """A one-time (TOTP) code's time step, once used by this user."""
    return f"{PREFIX}:totp:{user_id}:{counter}"


def idempotency(actor: str, key: str) -> str:
    """The record of a non-offer creating request's Idempotency-Key."""
    return f"{PREFIX}:idem:" + hashlib.sha256(f"{actor}\0{key}".encode()).hexdigest()


def group_lock(tax_id: str) -> str:
    """Held while an application of the risk group of ``tax_id`` is assessed."""
    return f"{PREFIX}:apply-lock:{tax_id}"
