"""Where the api process spends its time on the bid path: py-spy on it while wrk loads it.

    python -m loadtests.profile [--seconds 10] [--rate 250] [--top 60]

Starts the benchmark's stack (the roles apart as the bench lays them out: api, stream and
worker, the worker at a lower CPU weight, on CPU 0; Redis and wrk on CPU 1), seeds 200 rounds
x 10 banks, runs the bench's request mix under wrk and samples the api process with
``py-spy record`` (in ``--nonblocking`` mode, so the process is never paused).
Prints the functions by cumulative and by own share of the samples, and leaves the raw stacks
(``var/profile/api.txt``, collapsed format) and a speedscope profile beside them.
py-spy is not a project dependency: ``pip install py-spy`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from loadtests.bench.parts import REST_CPU, apart
from loadtests.bench.tools import Setup, wrk
from loadtests.local_server import ROOT, LocalStack, pin


def summarize(raw: Path, top: int) -> str:
    cum: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        total += int(n)
        frames = [f.split(":")[0] + ")" if " (" in f else f for f in stack.split(";")]
        own[frames[-1]] += int(n)
        for f in set(frames):
            cum[f] += int(n)
    out = [f"{total} samples", "", "cumulative:"]
    out += [f"{n * 100 / total:5.1f}%  {f}" for f, n in cum.most_common(top)]
    out += ["", "own:"]
    out += [f"{n * 100 / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


async def seed(stack: LocalStack, work: Path) -> Path:
    su = Setup(stack)
    await su.banks(10)
    rounds = await su.rounds(200)
    offers = await su.offers([(b, r) for r in rounds for b in range(10)])
    return su.write(offers, work / "profile")[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=60)
    a = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    work = ROOT / "var" / "profile"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pin(0, REST_CPU)
    stack = LocalStack(servers=apart(), redis_cpus=REST_CPU, data_dir=work / "stack",
                       env={"IGE_TOKEN_TTL": "7200", "IGE_MAX_OFFERS_PER_BANK": "0"})
    with stack:
        txt = asyncio.run(seed(stack, work))
        wrk(stack.base_url, txt, 3, 16, REST_CPU)  # warm-up
        pid = stack.pids("api")[0]
        runs = []
        for fmt, out in (("raw", work / "api.txt"), ("speedscope", work / "api.speedscope")):
            p = subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(a.seconds), "-r",
                                  str(a.rate), "--nonblocking", "--format", fmt, "-o", str(out)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            runs.append(wrk(stack.base_url, txt, a.seconds, 16, REST_CPU))
            p.wait()
    rates = ", ".join(f"{r['rate']:.0f}" for r in runs)
    print(f"wrk under the profiler: {rates} offers/s (sampling slows the process a little)\n")
    print(summarize(work / "api.txt", a.top))
    print(f"\nraw stacks: {work / 'api.txt'}; speedscope: {work / 'api.speedscope'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
