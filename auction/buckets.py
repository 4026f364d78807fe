"""Buckets: how the rounds are shared out, in one place.

Every round belongs to one of ``BUCKETS`` buckets, by a hash of its id. A bucket is the unit
of two things:

- **Redis slots.** A round's keys, its bucket's deadline index, its bucket's dirty-round set
  and its channel all carry the bucket's hash tag (``auction/redis/keys.py``), so one Lua
  script can change a round and its bucket's indexes atomically, and on a Redis Cluster a
  bucket lives in one slot (``BUCKETS`` slots in all, spread over the shards).
- **Background work.** Worker processes share the buckets with leases
  (``usecases/sharing.py``): the holder of a bucket closes, lapses and persists that bucket's
  rounds; a worker that dies loses its leases and the others take its buckets over.
"""

from __future__ import annotations

import zlib

#: how many buckets there are; changing it moves every round's keys (a rebuild from SQL)
BUCKETS = 64


def bucket_of(round_id: str) -> int:
    """The bucket of a round: stable across processes and machines (CRC-32, not ``hash``)."""
    return zlib.crc32(round_id.encode()) % BUCKETS


def all_buckets() -> range:
    return range(BUCKETS)
