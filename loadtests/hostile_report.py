"""What ``make hostile`` reads and prints (loadtests/hostile.py runs the scenarios): the server's
view of a scenario from its ``/metrics`` and its log, the machine's CPUs over the measurement,
and the table and verdict that compare each attack with the quiet run before it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtests.bench.tools import Samples, by_label, quantile, total


def machine_busy(t0: Any, t1: Any) -> dict[str, float]:
    """The machine's CPUs over the measurement: the busy share of all of them, and the share
    spent in the kernel (system time and interrupts, softirq: the loopback's TCP work)."""
    # guest time is counted in user time already
    d = {k: getattr(t1, k) - getattr(t0, k) for k in t0._fields if not k.startswith("guest")}
    whole = sum(d.values()) or 1.0
    kernel = d.get("system", 0) + d.get("irq", 0) + d.get("softirq", 0)
    return {"busy": round(1 - (d.get("idle", 0) + d.get("iowait", 0)) / whole, 3),
            "kernel": round(kernel / whole, 3), "softirq": round(d.get("softirq", 0) / whole, 3)}


def server_view(d: Samples, now: Samples) -> dict[str, Any]:
    statuses = by_label(d, "ige_http_requests_total", "status")
    return {
        "refused": {k: int(v) for k, v in by_label(d, "ige_refused_connections_total",
                                                   "reason").items() if v},
        "slow_dropped": int(total(d, "ige_slow_clients_dropped_total")),
        "rate_limited": {k: int(v) for k, v in by_label(d, "ige_rate_limited_total",
                                                        "rule").items() if v},
        "statuses": {k: int(v) for k, v in sorted(statuses.items()) if v},
        "backend_errors": int(total(d, "ige_backend_errors_total")),
        "snapshots": {k: int(v) for k, v in by_label(d, "ige_stream_snapshots_total",
                                                     "cache").items() if v},
        "websockets_open": int(total(now, "ige_websockets_open")),
        # the server's own event loop: how late its timers fired (the clients' machine left out)
        "loop_lag_p99_ms": _ms(quantile(d, "ige_event_loop_lag_seconds", 0.99)),
        "loop_lag_p50_ms": _ms(quantile(d, "ige_event_loop_lag_seconds", 0.5)),
    }


def _ms(s: float | None) -> float | None:
    return None if s is None else round(s * 1000, 2)


def log_counts(path: Path, start: int) -> dict[str, int]:
    """Lines the server logged since ``start`` by event (and any error lines)."""
    out: dict[str, int] = {}
    with open(path, "rb") as fh:
        fh.seek(start)
        for raw in fh:
            try:
                line = json.loads(raw)
            except ValueError:
                out["(not json)"] = out.get("(not json)", 0) + 1
                continue
            ev = str(line.get("event", "?")) if isinstance(line, dict) else "?"
            if ev == "request":
                continue
            level = str(line.get("level", "")) if isinstance(line, dict) else ""
            key = ev if level in ("info", "") else f"{ev} ({level})"
            out[key] = out.get(key, 0) + 1
    return out


# ----------------------------------------------------------------------------- report
def ratio(x: float | None, base: float | None) -> float | None:
    return None if not x or not base else x / base


def good_errors(r: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in r["desk"]["statuses"].items():
        if not k.startswith("2"):
            out[f"desk {k}"] = v
    if r["desk"].get("connect_errors"):
        out["desk connect"] = r["desk"]["connect_errors"]
    for key in ("gaps", "dropped", "out_of_step"):
        if r["push"].get(key):
            out[f"ws {key}"] = r["push"][key]
    for k, v in r["probes"]["fresh_fail"].items():
        out[f"fresh {k}"] = v
    for k, v in r["probes"]["owner_token"].items():
        if k != "200":
            out[f"owner token {k}"] = v
    return out


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _rel(x: float, key: str, r: dict[str, Any], b: dict[str, Any] | None,
         f: dict[str, Any] | None) -> str:
    """``x`` over the quiet run before ``r`` (and over the first quiet run)."""
    if b is None or b is r:
        return "—"
    first = f[key]["p99_ms"] if f else None
    return f"{_x(ratio(x, b[key]['p99_ms']))} ({_x(ratio(x, first))})"


def table(results: dict[str, Any]) -> str:
    head = ("| scenario | ack p50 | ack p99 | × quiet before (× first) | push p99 | × quiet before "
            "(× first) | new conn p99 | good clients' errors | server: refused/closed | "
            "slow dropped | 429 by rule | server loop lag p50 / p99 | peak fds | server CPU | "
            "machine busy (kernel) | load avg |")
    rows = [head, "|" + " --- |" * 16]
    for label, r in results.items():
        b = results.get(r.get("baseline") or "")
        f = results.get(r.get("first") or "")
        m = r["metrics"]
        errs = good_errors(r)
        ack, push = r["desk"]["p99_ms"], r["push"]["p99_ms"]

        rows.append(
            f"| {label} | {r['desk']['p50_ms']:.2f} ms | {ack:.2f} ms | "
            f"{_rel(ack, 'desk', r, b, f)} | {push:.2f} ms | {_rel(push, 'push', r, b, f)} | "
            f"{r['probes']['fresh_p99_ms']:.1f} ms | "
            f"{', '.join(f'{k}: {v}' for k, v in errs.items()) or 'none'} | "
            f"{', '.join(f'{k} {v:,}' for k, v in m['refused'].items()) or '0'} | "
            f"{m['slow_dropped']} | "
            f"{', '.join(f'{k} {v:,}' for k, v in m['rate_limited'].items()) or '0'} | "
            f"{_x(m.get('loop_lag_p50_ms'))} / {_x(m.get('loop_lag_p99_ms'))} ms | "
            f"{r['server']['peak_fds']:,} | {r['server']['cpu'] * 100:.0f} % | "
            f"{_busy(r.get('machine'))} | {r['loadavg'][3]:.2f} |")
    return "\n".join(rows)


def _busy(m: dict[str, float] | None) -> str:
    return "—" if not m else f"{m['busy'] * 100:.0f} % ({m['kernel'] * 100:.0f} %)"


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """Per attack: p99 (ack and push) within 2× of the quiet run before it, no errors for the
    good clients."""
    out: dict[str, Any] = {}
    for label, r in results.items():
        b = results.get(r.get("baseline") or "")
        if b is None or b is r or not r["attacks"]:
            continue
        ra = ratio(r["desk"]["p99_ms"], b["desk"]["p99_ms"]) or 0.0
        rp = ratio(r["push"]["p99_ms"], b["push"]["p99_ms"]) or 0.0
        errs = good_errors(r)
        out[label] = {"baseline": r["baseline"], "ack_ratio": ra, "push_ratio": rp,
                      "errors": errs, "held": ra <= 2 and rp <= 2 and not errs}
    return out
