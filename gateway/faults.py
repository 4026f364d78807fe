"""Fault injection for the crash tests (``tests/e2e/test_faults.py``): test-only, off unless
``IGE_FAULT_POINT`` is set in a process's environment.

``IGE_FAULT_POINT=<point>`` makes the process kill itself with SIGKILL (what a crash, an OOM
kill or a power cut looks like: no cleanup, no reply, leases left to expire) the first time it
reaches that point:

- ``offer_after_redis``: an offer or a revision the book has accepted (Redis holds it, the
  Idempotency-Key's answer included), before the reply is written;
- ``offer_after_reply``: after the reply of an accepted offer was handed to the server (the
  client has its 2xx), before anything else this process would do for it (its stream hub's
  fan-out, its persister's copy into SQL). Checked in the offer fast path
  (``gateway/fastpath.py``), which serves the offer routes of every ``api`` process;
- ``request_begun``: a creating request that is not an offer, with an Idempotency-Key, once it
  has taken the key (pending) and before it runs (``gateway/http.py``, ``idempotent``).

Never set it in production. Unset, the cost on the bid path is one test of a module-level
constant (``POINT is not None``).
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({"offer_after_redis", "offer_after_reply", "request_begun"})
#: the point this process dies at (None: none, the normal case)
POINT: str | None = os.environ.get("IGE_FAULT_POINT") or None
if POINT is not None and POINT not in POINTS:
    raise RuntimeError(f"IGE_FAULT_POINT={POINT!r}: the points are {', '.join(sorted(POINTS))}")


def reached(point: str) -> None:
    """Die here if this is the process's fault point. Callers test ``POINT is not None``
    first, so that the bid path pays nothing when no fault is set."""
    if point == POINT:
        os.kill(os.getpid(), signal.SIGKILL)
