"""Every Redis key and channel name of the deployment. No other module builds one.

Layout (version 2). A round's keys, its bucket's indexes and its channel carry the bucket's
hash tag ``{bNN}`` (``auction/buckets.py``), so a bucket lives in one Redis Cluster slot and a
script can change a round and its bucket's deadline index and dirty set atomically::

    ige:{b07}:<round_id>:m|b|o|l|p|e    the round (see RoundKeys)
    ige:{b07}:<round_id>:i:<key>        an offer's Idempotency-Key record
    ige:{b07}:<round_id>:closing        the close claim
    ige:{b07}:deadlines                 the bucket's open rounds, scored by closes_at_ms
    ige:{b07}:dirty                     the bucket's rounds with events not yet in SQL
    ige:{b07}:fence                     the persister's fence write (replica acks: WAIT after)
    <prefix>:{b07}:ch:<round_id>        the round's channel (book events, close finalized;
                                        a shard channel on a Redis Cluster, in the round's slot)
    <prefix>:pool                       the pool channel (rounds opened)

    ige:{b07}:alive:v2                  the data-set marker of the bucket (see ALIVE)

Global keys: the worker registry and bucket leases, stream tickets, used one-time codes,
idempotency records of non-offer requests and the application group locks. Each of them is a
key of its own (a lease per bucket, a record per ticket, code or request), so on a Redis
Cluster they spread over the slots by their names; only the worker registry is one key (a
heartbeat per worker every few seconds: no hot slot).
The channel ``prefix`` (``IGE_REDIS_CHANNEL``, default ``ige``) keeps deployments that share
one Redis apart: pub/sub ignores database numbers.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import NamedTuple

from auction.buckets import all_buckets, bucket_of

PREFIX = "ige"
#: sorted set: the live worker processes (token scored by their last heartbeat)
WORKERS = f"{PREFIX}:workers"


def tag(bucket: int) -> str:
    return f"{{b{bucket:02d}}}"


def alive(bucket: int) -> str:
    """Present while Redis keeps the bucket's data; absent => rebuild the live rounds from SQL.
    One per bucket, in the bucket's slot: each master of a Redis Cluster may lose its data set
    on its own (restarted empty, no replica to take over), and that loss is seen by the
    markers of the buckets it held. Its name carries the key layout's version: a Redis
    holding an older layout is rebuilt too."""
    return f"{PREFIX}:{tag(bucket)}:alive:v2"


#: every bucket's data-set marker: the book is intact while all of them are present
ALIVE: tuple[str, ...] = tuple(alive(b) for b in all_buckets())


class RoundKeys(NamedTuple):
    meta: str  # hash: state, seq, opened_at, closes_at, closed_at, n:<bank_id> (live offers)
    book: str  # sorted set: rank members (auction.ranking), score 0
    offers: str  # hash: offer_id -> current version record
    labels: str  # hash: bank_id -> masked label
    pool: str  # list: shuffled unused labels
    events: str  # stream: entry id "<seq>-0", field d = event JSON


@lru_cache(maxsize=16_384)  # every offer names them; a process follows a few thousand rounds
def round_keys(round_id: str) -> RoundKeys:
    t = f"{PREFIX}:{tag(bucket_of(round_id))}:{round_id}:"
    return RoundKeys(t + "m", t + "b", t + "o", t + "l", t + "p", t + "e")


def deadlines(bucket: int) -> str:
    """Sorted set: the bucket's open rounds (until their close is complete), by deadline."""
    return f"{PREFIX}:{tag(bucket)}:deadlines"


def dirty(bucket: int) -> str:
    """Set: the bucket's rounds with events the persister has not copied to SQL yet."""
    return f"{PREFIX}:{tag(bucket)}:dirty"


def fence(bucket: int) -> str:
    """String: written by the persister before a WAIT, in the bucket's slot (``auction.redis.
    acks``): once a replica has it, it has every earlier write of the bucket's rounds."""
    return f"{PREFIX}:{tag(bucket)}:fence"


def round_deadlines(round_id: str) -> str:
    return deadlines(bucket_of(round_id))


@lru_cache(maxsize=16_384)
def round_dirty(round_id: str) -> str:
    return dirty(bucket_of(round_id))


def offer_idempotency(round_id: str, scoped_key: str) -> str:
    """An offer's Idempotency-Key record, kept beside the round (one slot with its book)."""
    return f"{PREFIX}:{tag(bucket_of(round_id))}:{round_id}:i:{scoped_key}"


def close_claim(round_id: str) -> str:
    """Held by the process closing the round, so processes do not all close it at once."""
    return f"{PREFIX}:{tag(bucket_of(round_id))}:{round_id}:closing"


def bucket_lease(bucket: int) -> str:
    """Held by the worker that does the bucket's background work."""
    return f"{PREFIX}:lease:b{bucket:02d}"


class Channels(NamedTuple):
    """The deployment's pub/sub channel names, under one prefix."""

    prefix: str = PREFIX

    def round(self, round_id: str) -> str:
        return _round_channel(self.prefix, round_id)

    @property
    def pool(self) -> str:
        return f"{self.prefix}:pool"


@lru_cache(maxsize=16_384)
def _round_channel(prefix: str, round_id: str) -> str:
    return f"{prefix}:{tag(bucket_of(round_id))}:ch:{round_id}"


def ticket(t: str) -> str:
    return f"{PREFIX}:ticket:{t}"


def session(key: str) -> str:
    """A browser session's record (``key`` is a hash of the cookie's value, never the value)."""
    return f"{PREFIX}:session:{key}"


def sessions_of(owner: str) -> str:
    """The keys of one person's browser sessions (``owner``: ``kind:user id``)."""
    return f"{PREFIX}:sessions:{{{owner}}}:of"  # one hash tag with the marker


def sessions_revoked(owner: str) -> str:
    """Set for a while when a person's sessions were all ended (a deactivation): a session
    started meanwhile is dropped at once."""
    return f"{PREFIX}:sessions:{{{owner}}}:revoked"


def used_code(user_id: str, counter: int) -> str:
    """A one-time (TOTP) code's time step, once used by this user."""
    return f"{PREFIX}:totp:{user_id}:{counter}"


def idempotency(actor: str, key: str) -> str:
    """The record of a non-offer creating request's Idempotency-Key."""
    return f"{PREFIX}:idem:" + hashlib.sha256(f"{actor}\0{key}".encode()).hexdigest()


def group_lock(tax_id: str) -> str:
    """Held while an application of the risk group of ``tax_id`` is assessed."""
    return f"{PREFIX}:apply-lock:{tax_id}"
