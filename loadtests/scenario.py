"""What the load tests send, as plain data and pure functions: round and offer bodies that the
server's rules accept, how hot each round is, the load shapes, and the push-latency arithmetic.
The locustfile and the benchmark only carry these over HTTP and WebSocket."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Valid Turkish tax ids (VKN) for the companies of load-test rounds.
TAX_IDS = ("1234567890", "9876543217", "1111111114")

# (loan_type, currency, loan amount, guarantee share, tenor, grace, typical annual rate %)
ROUND_KINDS: tuple[tuple[str, str, int, float, int, int, float], ...] = (
    ("working_capital", "TRY", 5_000_000, 0.80, 24, 6, 38.0),
    ("working_capital", "TRY", 1_500_000, 0.85, 12, 3, 41.0),
    ("working_capital", "EUR", 800_000, 0.85, 18, 6, 9.5),
    ("investment", "USD", 2_500_000, 0.80, 60, 12, 10.5),
    ("investment", "TRY", 12_000_000, 0.75, 84, 24, 35.0),
)


def round_body(i: int, exporter_user_id: str | None = None) -> dict[str, Any]:
    """POST /v1/admin/rounds body number ``i``: a mix of loan types, currencies and sizes."""
    kind, cur, amount, share, tenor, grace, _ = ROUND_KINDS[i % len(ROUND_KINDS)]
    body: dict[str, Any] = {
        "company": {"name": f"Yük Testi İhracat {i} A.Ş.", "tax_id": TAX_IDS[i % len(TAX_IDS)],
                    "is_sme": i % 3 != 0, "sector": ("textiles", "machinery", "food")[i % 3],
                    "contact": {"name": "Yük Testi", "email": f"load{i}@example.com",
                                "phone": "+905321234567"}},
        "loan_type": kind, "currency": cur, "loan_amount": f"{amount:.2f}",
        "guarantee_amount": f"{amount * share:.2f}", "tenor_months": tenor,
        "grace_months": grace, "export_commitment": i % 2 == 0,
    }
    if exporter_user_id:
        body["exporter_user_id"] = exporter_user_id
    return body


def offer_body(rnd: dict[str, Any], rng: random.Random,
               rate: float | None = None) -> dict[str, Any]:
    """OFFER_TERMS a bank desk would send for ``rnd`` (a ROUND as the pool returns it)."""
    loan = float(rnd["loan_amount"])
    tenor = int(rnd["tenor_months"])
    grace = int(rnd["grace_months"])
    typical = next((k[6] for k in ROUND_KINDS
                    if k[0] == rnd["loan_type"] and k[1] == rnd["currency"]),
                   35.0 if rnd["currency"] == "TRY" else 10.0)
    if rate is None:
        rate = typical * rng.uniform(0.92, 1.08)
    amount = loan if rng.random() < 0.7 else loan * rng.choice((0.5, 0.75, 0.9))
    fee = 0.0 if rng.random() < 0.6 else amount * rng.choice((0.0025, 0.005, 0.01))
    return {
        "annual_rate": f"{max(rate, 0.5):.2f}", "amount": f"{amount:.2f}",
        "tenor_months": tenor, "grace_months": grace,
        "repayment_every_months": rng.choice((1, 3, 3, 3, 6)),
        "upfront_fee": f"{fee:.2f}",
        "assumes_export_commitment": bool(rnd.get("export_commitment")),
        "conditions": rng.choice(("", "teminat: KGF kefaleti", "standart koşullar",
                                  "ek teminat: çek/senet")),
    }


def improved(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A revision: the desk undercuts its own last rate a little (or tweaks the fee)."""
    rate = float(body["annual_rate"])
    out = dict(body)
    out["annual_rate"] = f"{max(rate - rng.choice((0.05, 0.10, 0.25, 0.50)), 0.5):.2f}"
    return out


def hot_weights(n: int, skew: float = 1.0) -> list[float]:
    """Zipf-like popularity: a few rounds draw most of the bidding, as in a real pool."""
    return [1.0 / math.pow(i + 1, skew) for i in range(n)]


# ----------------------------------------------------------------------------- shapes
SHAPES = ("steady", "ramp", "spike")


@dataclass(frozen=True)
class Stage:
    users: int
    spawn_rate: float


def shape_at(kind: str, t: float, duration: float, peak: int, spawn_rate: float) -> Stage | None:
    """Target user count at ``t`` seconds into a run of ``duration`` seconds (None: stop).

    steady: up to ``peak`` at ``spawn_rate`` and hold; ramp: a staircase of five equal steps
    up to ``peak`` over 80 % of the run, then hold; spike: a quarter of ``peak``, the whole
    ``peak`` at once for the middle fifth of the run, then a quarter again."""
    if t >= duration:
        return None
    peak = max(1, peak)
    if kind == "steady":
        return Stage(peak, spawn_rate)
    if kind == "ramp":
        step = min(5, int(t / (duration * 0.8) * 5) + 1)
        return Stage(max(1, math.ceil(peak * step / 5)), spawn_rate)
    if kind == "spike":
        base = max(1, peak // 4)
        if 0.4 * duration <= t < 0.6 * duration:
            return Stage(peak, max(spawn_rate, float(peak)))  # everyone arrives at once
        return Stage(base, max(spawn_rate, float(peak)))
    raise ValueError(f"unknown load shape {kind!r}; one of {', '.join(SHAPES)}")


# ----------------------------------------------------------------------------- latency
def iso_ms(ts: str) -> int:
    """Milliseconds since the epoch of a server timestamp (``2026-03-18T14:30:00.123Z``)."""
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def push_latency_ms(msg: dict[str, Any], received_ms: float) -> float | None:
    """Push latency of a ``quote`` another bank received: from the version's ``updated_at``
    (the server's acknowledgement time, its ``accepted_at``) to local arrival. Both clocks are
    the same machine's, so the difference is the latency, to the server's millisecond."""
    offer = msg.get("offer") or {}
    if msg.get("type") != "quote" or offer.get("mine") or "updated_at" not in offer:
        return None
    return max(0.0, received_ms - iso_ms(offer["updated_at"]))
