"""The ranking rule of a round's book, in one place.

Offers rank by all-in annual cost (``apr``), then ``annual_rate``, then the earlier ``seq`` of
their current version (a revision takes a new seq: revising loses time priority). Rank 1 is
best. The key is a tuple of exact integers; the Redis book stores it as a sorted-set member
that orders byte-wise exactly like the tuple (all members carry score 0):

    <apr_e4><annual_rate_e4><seq>:<ref>      each number zero-padded to ``KEY_WIDTH`` digits

The Lua scripts build and read members with the functions of ``auction/redis/lua/_prelude.lua``,
which mirror ``rank_member`` and ``member_ref`` below; ``KEY_WIDTH`` is handed to them from here
when the scripts are loaded, and the book contract suite proves the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from auction.model import OfferVersion

#: digits of each number in a rank member
KEY_WIDTH = 12
#: the largest apr (and rate, and seq) a member can hold
KEY_LIMIT: int = 10**KEY_WIDTH
_REF_AT = 3 * KEY_WIDTH  # the ':' between the numbers and the ref


def rank_key(apr_e4: int, annual_rate_e4: int, seq: int) -> tuple[int, int, int]:
    return (apr_e4, annual_rate_e4, seq)


def key_of(v: OfferVersion) -> tuple[int, int, int]:
    return rank_key(v.apr_e4, v.terms.annual_rate_e4, v.seq)


def fits(apr_e4: int) -> bool:
    """An apr the member can hold: a wider one would rank wrongly and vanish from the book."""
    return 0 <= apr_e4 < KEY_LIMIT


def rank_member(apr_e4: int, annual_rate_e4: int, seq: int, ref: str) -> str:
    """Sorted-set member that orders lexicographically exactly by (apr, annual_rate, seq)."""
    return f"{apr_e4:0{KEY_WIDTH}d}{annual_rate_e4:0{KEY_WIDTH}d}{seq:0{KEY_WIDTH}d}:{ref}"


def member_ref(member: str) -> str:
    """The ref at the end of a rank member."""
    return member[_REF_AT + 1:]


def ranked(offers: Iterable[OfferVersion]) -> list[OfferVersion]:
    """Offers best first."""
    return sorted(offers, key=key_of)
