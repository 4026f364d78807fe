"""Quick bid-path measurement: offers/s and acknowledgement latency percentiles.

Runs against a server you started (``make run`` or ``ige serve``); it is its own process, so
the load generator does not share the server's event loop. It creates its banks and rounds
through the admin API, then keeps ``--concurrency`` requests in flight for ``--seconds``.

    python -m loadtests.quick_bench --base-url http://127.0.0.1:8000 --admin-token T

The full benchmark with the baseline and push latency is issue #4 (``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import time

import httpx

ROUND = {
    "company": {"name": "Bench A.Ş.", "tax_id": "1234567890", "is_sme": True, "sector": "bench",
                "contact": {"name": "Bench", "email": "bench@example.com",
                            "phone": "+905321234567"}},
    "loan_type": "working_capital", "currency": "TRY", "loan_amount": "5000000.00",
    "guarantee_amount": "4000000.00", "tenor_months": 24, "grace_months": 6,
    "export_commitment": True,
}


def pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms)) - 1))
    return sorted_ms[k]


def write_setup(path: str, tokens: list[str], rounds: list[str]) -> None:
    """The ``--setup-only`` file: {tokens, rounds} for loadtests/wrk_offers.lua."""
    with open(path, "w") as fh:
        json.dump({"tokens": tokens, "rounds": rounds}, fh)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default=os.environ.get("BASE_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--admin-token", default=os.environ.get("IGE_ADMIN_TOKEN", ""))
    ap.add_argument("--banks", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--setup-only", metavar="FILE",
                    help="create banks and rounds, write {tokens, rounds} as JSON for "
                         "loadtests/wrk_offers.lua, and exit")
    a = ap.parse_args()
    admin = {"Authorization": f"Bearer {a.admin_token}"}
    limits = httpx.Limits(max_connections=a.concurrency + 4,
                          max_keepalive_connections=a.concurrency + 4)
    async with httpx.AsyncClient(base_url=a.base_url, timeout=30, limits=limits) as http:
        tokens: list[dict[str, str]] = []
        for _ in range(a.banks):
            code = "Q" + secrets.token_hex(4).upper()
            r = await http.post("/v1/admin/banks", json={"bank_code": code, "name": code},
                                headers=admin)
            r.raise_for_status()
            c = r.json()
            t = await http.post("/v1/oauth/token", data={"grant_type": "client_credentials",
                                                         "client_id": c["client_id"],
                                                         "client_secret": c["client_secret"]})
            t.raise_for_status()
            tokens.append({"Authorization": f"Bearer {t.json()['access_token']}"})
        rounds: list[str] = []
        for _ in range(a.rounds):
            r = await http.post("/v1/admin/rounds", json=ROUND, headers=admin)
            r.raise_for_status()
            rounds.append(r.json()["round_id"])
        if a.setup_only:
            write_setup(a.setup_only, [t["Authorization"] for t in tokens], rounds)
            return
        lat: list[float] = []
        errors = 0
        stop = time.perf_counter() + a.seconds

        async def worker() -> None:
            nonlocal errors
            rng = random.Random()
            while time.perf_counter() < stop:
                body = {"annual_rate": f"{rng.uniform(30, 45):.2f}", "amount": "5000000.00",
                        "tenor_months": 24, "grace_months": 6, "repayment_every_months": 3,
                        "upfront_fee": "0.00", "assumes_export_commitment": True}
                t0 = time.perf_counter()
                r = await http.post(f"/v1/bank/rounds/{rng.choice(rounds)}/offers", json=body,
                                    headers=rng.choice(tokens))
                dt = (time.perf_counter() - t0) * 1000
                if r.status_code == 201:
                    lat.append(dt)
                else:
                    errors += 1

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        elapsed = time.perf_counter() - t_start
    lat.sort()
    print(f"offers acknowledged: {len(lat)} in {elapsed:.1f}s -> "
          f"{len(lat) / elapsed:.0f} offers/s (concurrency {a.concurrency}, errors {errors})")
    print(f"ack latency ms: p50 {pct(lat, 50):.2f}  p90 {pct(lat, 90):.2f}  "
          f"p99 {pct(lat, 99):.2f}  max {lat[-1] if lat else float('nan'):.2f}  "
          f"mean {statistics.fmean(lat) if lat else 0:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
