"""``make bench``: one command, every part, results in BENCHMARKS.md.

    python -m loadtests.bench [--parts bid,big,push,close,scaling,cluster] [--runs 5]
        [--out FILE]

Against a private stack (durable Redis with appendfsync always, SQLite on disk) with the roles
apart: ``ige serve --role api``, ``--role stream`` and ``--role worker`` (at a lower CPU weight)
on CPU 0, Redis, the load generators and this script on CPU 1 (a 2-core machine; parts.py says
why the worker is not beside Redis). Parts:

1. ``bid``: the api process against the bare baseline under wrk, three pairs side by side,
   then the acknowledgement latency at a fixed 2,000 offers/s, five runs.
2. ``big``: revisions into a round holding 1,000 offers against one holding 10, and the size of
   a quote there.
3. ``push``: 1,000 offers/s to 2,000 WebSockets on the stream process, five runs.
4. ``close``: 1,000 rounds x 10 offers at one deadline, until every closing record is in SQL
   and every subscriber has its ``round_closed``; Redis bytes per live offer.
5. ``scaling``: one or two processes of each role.
6. ``cluster``: one Redis against a Redis Cluster of 3 masters and 3 replicas on loopback, with
   one and two processes of each role: offers/s and push p99 (SCALING.md).

Each part also reads the servers' own ``/metrics`` over its runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.bench import parts
from loadtests.bench.report import report
from loadtests.bench.tools import Setup, log, machine
from loadtests.local_server import ROOT, LocalStack, cpu_text, pin

PARTS = ("bid", "big", "push", "close", "scaling", "cluster")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--seconds", type=int, default=8, help="length of one wrk run")
    ap.add_argument("--runs", type=int, default=5, help="runs of the latency measurements")
    ap.add_argument("--worker-at", choices=("api", "redis"), default="api",
                    help="the worker beside the api (at a lower CPU weight; the default) or "
                         "beside Redis (the layout before 2026-12-01)")
    ap.add_argument("--json", default=str(ROOT / "var" / "bench-results.json"),
                    help="the results (outside var/bench, which every run empties)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other parts' results of --json (a part rerun, say where a "
                         "run of the whole was disturbed); the report says which parts ran when")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite --out from the results --json of the last run, run nothing")
    a = ap.parse_args()
    chosen = [p.strip() for p in a.parts.split(",") if p.strip()]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    cmd = "make bench" if chosen == list(PARTS) else f"python -m loadtests.bench --parts {a.parts}"
    if a.worker_at != "api":
        cmd += f" --worker-at {a.worker_at}"
    if a.report_only:
        saved = json.loads(Path(a.json).read_text())
        Path(a.out).write_text(report(saved["machine"], [tuple(x) for x in saved["layout"]],
                                      saved["results"], saved["minutes"], saved.get("cmd", cmd)))
        return 0
    started = time.time()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by every child
    pin(0, parts.REST_CPU)
    work = ROOT / "var" / "bench"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # the production defaults but these: tokens outlive the run; one bank may hold any number
    # of offers in a round (the 1,000-offer round of part 2); and the per-client connection
    # caps are off, since every load generator here is one address (127.0.0.1) and ten banks
    # hold the 2,000 WebSockets of part 3 (the caps are issue #10's, per address and per
    # principal: a real desk population comes from many addresses and users), as is the cap
    # on topics per connection and the budget of commands per connection (a mass close's bank
    # follows its 1,000 rounds: a thousand subscribes at once); request lines at INFO
    parts.LAYOUT["worker"] = a.worker_at
    stack = LocalStack(servers=parts.apart(), redis_cpus=parts.REST_CPU, data_dir=work / "stack",
                       redis_args=parts.redis_args(),
                       env={"IGE_TOKEN_TTL": "7200", "IGE_MAX_OFFERS_PER_BANK": "0",
                            "IGE_MAX_CONNS_PER_ADDRESS": "0", "IGE_WS_PER_PRINCIPAL": "0",
                            "IGE_TOPICS_PER_CONNECTION": "0", "IGE_WS_COMMAND_RATE": "0",
                            "IGE_LOG_LEVEL": "INFO"})
    results: dict[str, Any] = {}
    if a.merge and Path(a.json).exists():
        saved = json.loads(Path(a.json).read_text())
        results = {k: v for k, v in saved["results"].items() if k not in chosen}
        cmd = saved.get("cmd", cmd) + f"; then `python -m loadtests.bench --parts {a.parts} " \
            f"--merge` at {time.strftime('%H:%M', time.gmtime())} UTC"
    with stack:
        m = machine(stack)
        layout = [(f"`ige serve --role {s.roles}` (uvicorn + uvloop + httptools)",
                   "1 (part 5: 1 and 2)",
                   cpu_text(s.cpus) + (f" (nice {s.nice}, a lower CPU weight)" if s.nice else ""))
                  for s in stack.servers]
        layout += [("baseline app (part 1)", "1, run alone", cpu_text(parts.SERVER_CPU)),
                   ("Redis (AOF, appendfsync always)", "1", cpu_text(parts.REST_CPU)),
                   ("wrk / rate_gen / ws_clients / this script",
                    "1 each (ws_clients: 2 in part 3)", cpu_text(parts.REST_CPU)
                    + f" (part 3's ws_clients: {cpu_text(parts.CLIENT_CPUS)})")]
        su = Setup(stack)
        asyncio.run(su.banks(10))
        b = parts.Bench(stack, su, work, seconds=a.seconds, runs=a.runs)
        steps = {"bid": parts.bid_path, "big": parts.big_round, "push": parts.push,
                 "close": parts.mass_close, "scaling": parts.scaling,
                 "cluster": parts.cluster}
        for name in chosen:
            log(f"=== {name}")
            results[name] = asyncio.run(steps[name](b))
            save(a.json, m, layout, results, started, cmd)  # a later part's failure keeps it
    minutes = save(a.json, m, layout, results, started, cmd)
    Path(a.out).write_text(report(m, layout, results, minutes, cmd))
    log(f"wrote {a.out} in {minutes:.1f} min")
    return 0


def save(path: str, m: Any, layout: Any, results: dict[str, Any], started: float,
         cmd: str) -> float:
    minutes = (time.time() - started) / 60
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"machine": m, "layout": layout, "results": results,
                                      "minutes": minutes, "cmd": cmd}, indent=1, default=str))
    return minutes


if __name__ == "__main__":
    sys.exit(main())
