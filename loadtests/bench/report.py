"""BENCHMARKS.md from one run's results: the machine, who ran where, every figure against its
target with the spread over runs, the servers' own /metrics view, and the notes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from loadtests.bench.tools import SLOW_MS, median, slow_fsyncs
from loadtests.local_server import ROOT

TARGETS = {
    "ratio": "≥ 0.6",
    "big_round": "within 10 %",
    "quote_size": "< 1 KB",
    "ack_p99": "≤ 10 ms in every one of 5 runs",
    "push_p99": "≤ 15 ms in every one of 5 runs",
    "mass_close": "≤ 3 s",
    "redis_per_offer": "≤ 1 KB",
}


def ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} ms"


def sec(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def spread(xs: list[float], fmt: str = "{:.2f}") -> str:
    return ", ".join(fmt.format(x) for x in xs)


def report(m: dict[str, Any], layout: list[tuple[str, str, str]], r: dict[str, Any],
           minutes: float, cmd: str) -> str:
    L: list[str] = []
    L.append("# Benchmarks\n")
    when = datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')
    runs = cmd.split("; then ")
    if len(runs) == 1:
        L.append(f"Produced by `{cmd}` (loadtests/bench/) on {when}, one run of every part, "
                 f"{minutes:.1f} minutes. Every number below comes from that run.\n")
    else:
        L.append(f"Produced by `{runs[0]}` (loadtests/bench/), then parts of it run again "
                 f"where that run was disturbed (another process busy on the machine): "
                 f"{'; '.join(runs[1:])}. Each part's numbers come from one run of it; the "
                 f"report written {when}.\n")
    L.append("## Machine\n")
    L.append("| | |\n| --- | --- |")
    L.append(f"| CPU | {m['cpus']} cores, {m['cpu_model']} |")
    L.append(f"| memory | {m['memory_gib']} GiB |")
    L.append(f"| kernel | Linux {m['kernel']} |")
    L.append(f"| Python | {m['python']} |")
    L.append(f"| Redis | {m['redis']} |")
    L.append(f"| SQL | SQLite {m['sqlite']} (WAL, synchronous=FULL), file on ext4 |")
    L.append(f"| load generators | {m['wrk']} (closed loop); loadtests/rate_gen.py (open loop, "
             f"uvloop, HdrHistogram); loadtests/ws_clients.py (websockets, uvloop) |")
    L.append("| libraries | " + ", ".join(f"{k} {v}" for k, v in m["libs"].items()) + " |\n")
    L.append("## Who ran where\n")
    L.append("| component | processes | CPUs (sched_setaffinity, like taskset) |\n"
             "| --- | --- | --- |")
    for a, b, c in layout:
        L.append(f"| {a} | {b} | {c} |")
    L.append("")
    _summary(L, r)
    _bid_path(L, r.get("bid"))
    _big_round(L, r.get("big"))
    _push(L, r.get("push"))
    _mass_close(L, r.get("close"))
    _scaling(L, r.get("scaling"))
    _cluster(L, r.get("cluster"))
    _memory(L, r.get("close"), r.get("push"))
    notes = ROOT / "loadtests" / "BENCH_NOTES.md"
    if notes.exists():
        L.append(notes.read_text())
    return "\n".join(L) + "\n"


def _summary(L: list[str], r: dict[str, Any]) -> None:
    L.append("## Results against the targets\n")
    L.append("| measure | measured (spread over the runs) | target | |\n| --- | --- | --- | --- |")
    bid, big, push, close = r.get("bid"), r.get("big"), r.get("push"), r.get("close")
    if bid:
        ratios = [p["ratio"] for p in bid["pairs"]]
        L.append(f"| real bid path (`api` role alone in its process) / bare one-EVALSHA "
                 f"baseline, offers/s under wrk | **{bid['ratio']:.2f}** (pairs: "
                 f"{spread(ratios)}) | {TARGETS['ratio']} | {verdict(bid['ratio'] >= 0.6)} |")
        p99s = [g["p99_ms"] for g in bid["rate_2000"]]
        ok = all(g["p99_ms"] <= 10 and g["achieved_rate"] >= 1950 for g in bid["rate_2000"])
        floor = [g["p99_ms"] for g in _runs(bid["baseline_2000"])]
        when = "each just before" if len(floor) == len(p99s) else "once"
        L.append(f"| ack p99 at 2,000 offers/s, open loop | {spread(p99s)} ms (the bare "
                 f"baseline at the same rate, {when}: {spread(floor)} ms) | "
                 f"{TARGETS['ack_p99']} | {verdict(ok)} |")
    if big:
        L.append(f"| revisions/s into a round holding 1,000 offers vs one holding 10 | "
                 f"{big['ratio'] * 100:.0f} % | {TARGETS['big_round']} | "
                 f"{verdict(big['ratio'] >= 0.9)} |")
        q = big["sizes"].get("big_json", {}).get("quote")
        L.append(f"| stream message size of a quote in a round of 1,000 offers | "
                 f"{q} bytes (JSON), {big['sizes'].get('big_msgpack', {}).get('quote')} bytes "
                 f"(MessagePack) | {TARGETS['quote_size']} | "
                 f"{verdict(None if q is None else q < 1024)} |")
    if push:
        p99s = [x["p99_ms"] for x in push["runs"]]
        ok = all(x["p99_ms"] <= 15 and x["gen"]["achieved_rate"] >= 950 for x in push["runs"])
        L.append(f"| push p99 at 1,000 offers/s to {push['connections']:,} WebSockets "
                 f"(`stream` role) | {spread(p99s)} ms | {TARGETS['push_p99']} | "
                 f"{verdict(ok)} |")
    if close:
        tot = close["total_s"]
        L.append(f"| mass close, {close['rounds']:,} rounds × 10 offers at one deadline | "
                 f"{sec(tot)} (SQL {sec(close['sql_s'])}, last `round_closed` "
                 f"{sec(close['ws_last_s'])}) | {TARGETS['mass_close']} | "
                 f"{verdict(None if tot is None else tot <= 3)} |")
        L.append(f"| Redis memory per live offer | {close['per_offer']:,.0f} bytes | "
                 f"{TARGETS['redis_per_offer']} | {verdict(close['per_offer'] <= 1024)} |")
    L.append("")


def _metrics(L: list[str], mv: dict[str, Any] | None, what: str) -> None:
    if not mv:
        L.append(f"*The {what}'s /metrics were not available in this run.*\n")
        return
    parts = []
    if "offers" in mv:
        parts.append("offers by outcome " + ", ".join(f"{k} {v:,.0f}"
                                                       for k, v in sorted(mv["offers"].items())))
    for key, label in (("ack", "acknowledgement"), ("push", "push"), ("close_lag", "close lag")):
        if key in mv:
            h = mv[key]
            parts.append(f"{label} histogram: {h['count']:,.0f} observations, p50 ≈ "
                         f"{ms(h['p50_ms'])}, p99 ≈ {ms(h['p99_ms'])}")
    for gauge, label in (("ige_websockets_open", "open WebSockets"),
                         ("ige_persister_lag_events", "persister lag (events)"),
                         ("ige_persister_lag_seconds", "persister lag (s)"),
                         ("ige_slow_clients_dropped_total", "slow clients dropped"),
                         ("ige_backend_errors_total", "backend errors")):
        if gauge in mv:
            parts.append(f"{label} {mv[gauge]:,.2f}".rstrip("0").rstrip("."))
    L.append(f"The {what}'s own `/metrics` over the same runs (histogram quantiles interpolated "
             "within their buckets, as Prometheus' `histogram_quantile` does): "
             + "; ".join(parts) + ".\n")


def _bid_path(L: list[str], bid: dict[str, Any] | None) -> None:
    if not bid:
        return
    L.append("## 1. The bid path against the baseline\n")
    L.append(f"{bid['rounds']} open rounds, 10 banks, one seeded offer per bank and round; every "
             "request is 80 % revisions (PUT, by the owner) and 20 % new offers (POST), random "
             f"rates. `wrk -t1 -c{bid['connections']} -d{bid['seconds']}s`, the same script "
             "against the baseline (a bare Starlette endpoint doing one EVALSHA of a one-line "
             "writing script on the same durable Redis, loadtests/baseline_app.py) and the "
             "`api` process, alternately, three pairs.\n")
    L.append("| pair | baseline req/s | real offers/s | ratio | real p50 | real p99 | "
             "real errors |\n| --- | --- | --- | --- | --- | --- | --- |")
    for i, p in enumerate(bid["pairs"], start=1):
        x = p["real"]
        L.append(f"| {i} | {p['baseline']['rate']:,.0f} | {x['rate']:,.0f} | "
                 f"{p['ratio']:.2f} | {x['p50_us'] / 1000:.2f} ms | {x['p99_us'] / 1000:.2f} ms "
                 f"| {x['errors']} |")
    if all("cpu" in p["baseline"] for p in bid["pairs"]):
        L.append("\nCPU during each run, as shares of one core: the server under test (the "
                 "baseline app, or the `api`), the `worker` (which persists the real path's "
                 "offers), Redis, and each CPU as a whole (everything pinned to it):\n")
        keys = list(bid["pairs"][0]["real"]["cpu"])
        L.append("| pair | run | " + " | ".join(keys) + " |\n| --- | --- | "
                 + " | ".join("---" for _ in keys) + " |")
        for i, p in enumerate(bid["pairs"], start=1):
            for which in ("baseline", "real"):
                cpu = p[which]["cpu"]
                L.append(f"| {i} | {which} | "
                         + " | ".join(f"{cpu.get(k, 0) * 100:.0f} %" for k in keys) + " |")
    L.append(f"\nMedian ratio **{bid['ratio']:.2f}**. wrk is a closed loop: its latencies at "
             "saturation are queueing behind the other connections; the acknowledgement "
             "latency that matters is measured at a fixed rate, open loop "
             "(loadtests/rate_gen.py, 64 connections, latency from each request's intended "
             "send time so stalls are not hidden):\n")
    L.append("Redis forks: AOF rewrites begun during the run (each forks a child that writes the "
             "whole data set, with CPU taken from whatever shares its core), how long a rewrite "
             "was running during the run (polled every 50 ms; recorded since 2026-12-01, "
             "evening), and Redis's memory as the run began.\n")
    L.append("Server CPU: the process under test (the `api`, or the baseline app) as a share of "
             "one core, and that per request (recorded for the baseline since 2026-12-01, "
             "afternoon): the CPU an offer costs beyond the bare baseline's request is what the "
             "bid path's own code adds at the same rate.\n")
    L.append(f"Slow fsyncs: the seconds of the run in which one of Redis's `appendfsync always` "
             f"fsyncs (every acknowledgement waits for one) took {SLOW_MS} ms or more, and the "
             f"worst, from Redis's latency monitor (read since 2026-12-01, afternoon).\n")
    L.append("| server | run | achieved | p50 | p90 | p99 | p99.9 | max | statuses | "
             "server CPU (per request) | Redis forks | slow fsyncs |\n| --- | --- | --- | --- "
             "| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = [("real", "1,000/s", bid["rate_1000"])]
    floor = _runs(bid["baseline_2000"])
    for i, g in enumerate(bid["rate_2000"], start=1):
        if i <= len(floor):
            rows.append(("baseline", f"2,000/s #{i}", floor[i - 1]))
        rows.append(("real", f"2,000/s #{i}", g))
    for name, run, g in rows:
        share = g.get("api_cpu", g.get("server_cpu"))  # baselines: not kept before 2026-12-01
        cpu = "—" if share is None else \
            f"{share * 100:.0f} % ({share / g['achieved_rate'] * 1e6:.0f} µs)"
        forks = "—"  # results written before 2026-12-01 did not count them
        if "redis_forks" in g:
            rewriting = f"{g['rewrite_s']:.2f} s, " if "rewrite_s" in g else ""
            forks = f"{g['redis_forks']} ({rewriting}{g['redis_mb']:.0f} MB)"
        L.append(f"| {name} | {run} | {g['achieved_rate']:,.0f}/s | {g['p50_ms']:.2f} ms | "
                 f"{g['p90_ms']:.2f} ms | {g['p99_ms']:.2f} ms | {g['p999_ms']:.2f} ms | "
                 f"{g['max_ms']:.2f} ms | {g['statuses']} | {cpu} | {forks} | "
                 f"{slow_fsyncs(g)} |")
    L.append("")
    _metrics(L, bid.get("metrics"), "api process")


def _runs(v: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of one measurement (results written before 2026-12-01 hold one run as a dict)."""
    return v if isinstance(v, list) else [v]


def _big_round(L: list[str], big: dict[str, Any] | None) -> None:
    if not big:
        return
    L.append("## 2. A round holding 1,000 offers\n")
    L.append("One round with one offer from each of 10 banks, one with 1,000 offers (100 per "
             "bank; the benchmark's server runs with `IGE_MAX_OFFERS_PER_BANK=0`). Revisions "
             f"only (PUT by the owners, so both books keep their size), `wrk -c16 "
             f"-d{big['seconds']}s`, in the order small, big, big, small (each gets an "
             "early and a late run):\n")
    L.append("| round | runs (offers/s) | median |\n| --- | --- | --- |")
    for name in ("small", "big"):
        rates = [w["rate"] for w in big[name]]
        L.append(f"| {'10 offers' if name == 'small' else '1,000 offers'} | "
                 f"{spread(rates, '{:,.0f}')} | {median(rates):,.0f} |")
    L.append(f"\nRatio {big['ratio'] * 100:.0f} %. New offers for 4 s (both books grow by "
             f"thousands meanwhile): into an empty round {big['new_empty']['rate']:,.0f}/s, into "
             f"the 1,000-offer round {big['new_big']['rate']:,.0f}/s.\n")
    L.append("Frames a bank's client received (bytes), the quote of one revision and the "
             "snapshot on subscribing:\n")
    L.append("| round | format | quote | snapshot |\n| --- | --- | --- | --- |")
    for key, v in big["sizes"].items():
        name, fmt = key.split("_", 1)
        L.append(f"| {v['book_size']:,} offers | {fmt} | {v['quote']:,} | {v['snapshot']:,} |")
    L.append("")


def _push(L: list[str], push: dict[str, Any] | None) -> None:
    if not push:
        return
    L.append("## 3. Push latency (`stream` role)\n")
    g0 = push["runs"][0]["gen"]
    L.append(f"200 fresh rounds, each with one offer from each of 10 banks; "
             f"{push['connections']:,} WebSockets (one per bank and round, subscribed to that "
             f"round) opened in {push['open_s']:.1f} s by two client processes. Then "
             f"{len(push['runs'])} runs of {g0['target_rate']:,.0f} offers/s for "
             f"{g0['seconds']:.0f} s (open loop, 80/20 revisions/new offers). Push latency = "
             "arrival of the masked `quote` at another bank's client − the offer's "
             "`updated_at` (its `accepted_at`, Redis `TIME` inside the Lua script; same machine "
             "clock; the server stamps whole milliseconds, so a sample reads up to 1 ms high). "
             "Every client keeps its books from the quotes (auction/livebook.py: each quote's "
             "rank and `book_size` checked).\n")
    L.append("| run | quotes | p50 | p90 | p99 | p99.9 | max | gaps | dropped | out of step | "
             "ack p99 | stream CPU |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | "
             "--- | --- | --- |")
    for i, x in enumerate(push["runs"], start=1):
        L.append(f"| {i} | {x['quotes']:,} | {x['p50_ms']:.2f} ms | {x['p90_ms']:.2f} ms | "
                 f"{x['p99_ms']:.2f} ms | {x['p999_ms']:.2f} ms | {x['max_ms']:.2f} ms | "
                 f"{x['gaps']} | {x['dropped']} | {x['out_of_step']} | "
                 f"{x['gen']['p99_ms']:.2f} ms | {x['stream_cpu'] * 100:.0f} % |")
    L.append(f"\nAt the end every client compared each book it kept with a fresh snapshot: "
             f"{push['books_verified']:,} identical, {push['books_differing']:,} different. "
             f"The clients' own event-loop lateness (p99, worst run): "
             f"{max(x['client_lag_p99_ms'] for x in push['runs']):.1f} ms.\n")
    _metrics(L, push.get("metrics"), "stream process")


def _mass_close(L: list[str], c: dict[str, Any] | None) -> None:
    if not c:
        return
    L.append("## 4. Mass close\n")
    L.append(f"{c['rounds']:,} rounds opened through the same use case as the admin API with one "
             f"common deadline {c['lead_s']:.0f} s ahead, {c['offers']:,} offers over HTTP "
             f"(10 banks × every round), {c['subscribers']} bank connections each subscribed to "
             f"all {c['rounds']:,} rounds ({c['subscriptions']:,} subscriptions). Clock starts "
             "at the deadline.\n")
    L.append("| every closing record in SQL | first `round_closed` | last `round_closed` | "
             "`round_closed` received | total |\n| --- | --- | --- | --- | --- |")
    L.append(f"| {sec(c['sql_s'])} | {sec(c['ws_first_s'])} | {sec(c['ws_last_s'])} | "
             f"{c['closed_msgs']:,} / {c['subscriptions']:,} | {sec(c['total_s'])} |")
    if c["setup_late"]:
        L.append("\n**Set-up overran the deadline in this run: the times above include "
                 "set-up.**")
    L.append("")
    _metrics(L, c.get("metrics"), "worker process")


def _scaling(L: list[str], s: dict[str, Any] | None) -> None:
    if not s:
        return
    L.append("## 5. One or two processes per role, on two cores\n")
    L.append("| role | processes | CPUs | measured |\n| --- | --- | --- | --- |")
    for x in s["api"]:
        L.append(f"| api | {x['processes']} | {','.join(map(str, x['cpus']))} | "
                 f"{spread(x['rates'], '{:,.0f}')} offers/s (wrk) |")
    for x in s["stream"]:
        cpu = spread([c * 100 for c in x["cpu"]], "{:.0f}")
        L.append(f"| stream | {x['processes']} | 0 | push p99 {spread(x['p99_ms'])} ms at "
                 f"1,000/s to 2,000 WebSockets; CPU {cpu} % of a core |")
    for x in s["worker"]:
        L.append(f"| worker | {x['processes']} | {','.join(map(str, x['cpus']))} | 500 rounds "
                 f"× 10 offers closed in {sec(x['total_s'])} (SQL {sec(x['sql_s'])}) |")
    L.append("")


def _cluster(L: list[str], c: dict[str, Any] | None) -> None:
    if not c:
        return
    L.append("## 5b. One Redis against a Redis Cluster (3 masters + 3 replicas on loopback)\n")
    L.append("The roles apart (api, stream and worker on CPU 0, the worker at a lower CPU "
             "weight), 1 or 2 processes of each; the cluster's six servers share CPU 1 with the "
             "load generators, as the single Redis does. Offers/s: `wrk -c16`, revisions and new "
             f"offers into 100 fresh rounds, two runs. Push: {c['push_rate']:,} offers/s to "
             "2,000 WebSockets, two runs of 10 s.\n")
    L.append("| Redis | processes per role | offers/s (wrk) | Redis CPU (all its servers) | "
             "push p99 | ack p99 during push | stream CPU | books differing |\n"
             "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for x in c["layouts"]:
        L.append(f"| {x['redis']} | {x['processes']} | {spread(x['rates'], '{:,.0f}')} | "
                 f"{spread([v * 100 for v in x['redis_cpu']], '{:.0f}')} % | "
                 f"{spread(x['push_p99_ms'])} ms | {spread(x['ack_p99_ms'])} ms | "
                 f"{spread([v * 100 for v in x['stream_cpu']], '{:.0f}')} % | "
                 f"{x['books_differing']} |")
    L.append("")


def _memory(L: list[str], c: dict[str, Any] | None, p: dict[str, Any] | None) -> None:
    if not (c or p):
        return
    L.append("## 6. Memory\n")
    if c:
        L.append(f"Redis `used_memory` before and after the {c['offers']:,} offers of the mass "
                 f"close (one version each): **{c['per_offer']:,.0f} bytes per live offer**; "
                 f"the {c['rounds']:,} empty rounds took {c['per_round']:,.0f} bytes each. "
                 "`MEMORY USAGE` of one round's keys with 10 offers: "
                 + ", ".join(f"{k} {v:,} B" for k, v in c["key_bytes"].items())
                 + " (m meta, b book zset, o offers hash, l labels, p unused labels, e event "
                   "stream).\n")
    if p:
        L.append(f"Stream process RSS {p['rss_before'] / 2**20:.1f} MiB before and "
                 f"{p['rss_after'] / 2**20:.1f} MiB after opening {p['connections']:,} "
                 f"WebSockets (each subscribed to one round, snapshot sent, idle): "
                 f"**{p['rss_per_conn'] / 1024:,.1f} KiB per connection**.\n")
