"""The benchmark's tools: the machine's description, set-up through the public API, the load
generators (wrk, rate_gen, ws_clients) as pinned processes, CPU and memory readings, and the
servers' own ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import psutil
import redis as redis_sync
from hdrh.histogram import HdrHistogram

from loadtests.local_server import ROOT, LocalStack, pinned_popen
from loadtests.rawhttp import Conn, build, host_port

COMPANY: dict[str, Any] = {
    "name": "Bench A.Ş.", "tax_id": "1234567890", "is_sme": True, "sector": "bench",
    "contact": {"name": "Bench", "email": "bench@example.com", "phone": "+905321234567"},
}
ROUND = {
    "company": COMPANY,
    "loan_type": "working_capital", "currency": "TRY", "loan_amount": "5000000.00",
    "guarantee_amount": "4000000.00", "tenor_months": 24, "grace_months": 6,
    "export_commitment": True,
}
OFFER = {"amount": "5000000.00", "tenor_months": 24, "grace_months": 6,
         "repayment_every_months": 3, "upfront_fee": "0.00", "assumes_export_commitment": True}
PY = sys.executable
T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


# ----------------------------------------------------------------------------- machine
def machine(stack: LocalStack) -> dict[str, Any]:
    assert stack.redis is not None
    info = redis_sync.Redis.from_url(stack.redis.url).info()
    model = ""
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as cpuinfo:
        model = next(ln.split(":", 1)[1].strip() for ln in cpuinfo
                     if ln.startswith("model name"))
    libs = {}
    for name in ("starlette", "uvicorn", "uvloop", "httptools", "websockets", "redis", "hiredis",
                 "SQLAlchemy", "aiosqlite", "msgpack", "pydantic", "pyxirr", "prometheus-client",
                 "structlog", "hdrhistogram"):
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libs[name] = "-"
    wrk_v = (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
             .split("[")[0].strip() if shutil.which("wrk") else "not installed")
    return {
        "cpus": os.cpu_count(), "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "redis": f"{info.get('redis_version')} (appendonly {info.get('aof_enabled')}, "
                 f"appendfsync always, jemalloc)",
        "sqlite": sqlite3.sqlite_version, "libs": libs, "wrk": wrk_v,
    }


# ----------------------------------------------------------------------------- set-up
@dataclass(frozen=True)
class Bank:
    """A bank made by ``Setup.banks``: its API client and a token taken with it."""

    bank_id: str
    client_id: str
    secret: str
    token: str  # "Bearer ..."


class Setup:
    """Banks, rounds and seeded offers through the public API (admin + bank endpoints)."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.admin = {"Authorization": f"Bearer {stack.admin_token}"}
        self.made: list[Bank] = []

    @property
    def tokens(self) -> list[str]:
        return [b.token for b in self.made]

    @property
    def bank_ids(self) -> list[str]:
        return [b.bank_id for b in self.made]

    async def banks(self, n: int) -> None:
        async with httpx.AsyncClient(base_url=self.stack.base_url, timeout=60) as http:
            for i in range(n):
                code = f"BN{i:02d}{random.randrange(10**4):04d}"
                r = await http.post("/v1/admin/banks",
                                    json={"bank_code": code, "name": f"Bench {code}"},
                                    headers=self.admin)
                r.raise_for_status()
                c = r.json()
                t = await http.post("/v1/oauth/token", data={
                    "grant_type": "client_credentials", "client_id": c["client_id"],
                    "client_secret": c["client_secret"]})
                t.raise_for_status()
                self.made.append(Bank(c["bank_id"], c["client_id"], c["client_secret"],
                                      f"Bearer {t.json()['access_token']}"))

    async def rounds(self, n: int) -> list[str]:
        host, port = host_port(self.stack.base_url)
        out: list[str] = []
        conn = await Conn(host, port).open()
        for _ in range(n):
            status, body = await conn.request(build("POST", "/v1/admin/rounds", f"{host}:{port}",
                                                    self.admin, ROUND))
            if status != 201:
                raise RuntimeError(f"open round: {status} {body[:300]!r}")
            out.append(json.loads(body)["round_id"])
        conn.close()
        return out

    async def offers(self, pairs: list[tuple[int, str]], parallel: int = 24) -> list[list[Any]]:
        """One POST per (bank index, round); returns [[bank index, round, offer id]]."""
        host, port = host_port(self.stack.base_url)
        out: list[list[Any]] = []
        it = iter(pairs)
        rng = random.Random(7)

        async def worker() -> None:
            c = await Conn(host, port).open()
            for b, rid in it:
                body = {"annual_rate": f"{rng.uniform(30, 45):.2f}", **OFFER}
                status, raw = await c.request(build("POST", f"/v1/bank/rounds/{rid}/offers",
                                                    f"{host}:{port}",
                                                    {"Authorization": self.made[b].token},
                                                    body))
                if status != 201:
                    raise RuntimeError(f"seed offer: {status} {raw[:300]!r}")
                out.append([b, rid, json.loads(raw)["offer_id"]])
            c.close()

        await asyncio.gather(*(worker() for _ in range(parallel)))
        return out

    def write(self, offers: list[list[Any]], path: Path) -> tuple[Path, Path]:
        """JSON for rate_gen, line format for wrk."""
        js = path.with_suffix(".json")
        js.write_text(json.dumps({"tokens": self.tokens, "offers": offers}))
        txt = path.with_suffix(".txt")
        txt.write_text("".join(f"T {t}\n" for t in self.tokens)
                       + "".join(f"O {b} {r} {o}\n" for b, r, o in offers))
        return js, txt


# ----------------------------------------------------------------------------- load
def quiesce(pids: list[int], timeout: float = 30) -> None:
    """Wait until the servers are idle again (the persister caught up) before the next run."""
    procs = [psutil.Process(p) for p in pids]
    t0 = time.monotonic()
    while time.monotonic() < t0 + timeout:
        for p in procs:
            p.cpu_percent(None)
        time.sleep(0.5)
        if sum(p.cpu_percent(None) for p in procs) < 10 * len(procs):
            if time.monotonic() - t0 > 2:
                log(f"  (servers busy for {time.monotonic() - t0:.1f} s after the last run)")
            return
    log(f"  (servers still busy after {timeout:.0f} s: the next run starts anyway)")


def wrk(url: str, setup_txt: Path, seconds: int, connections: int, cpus: set[int] | None,
        put: float = 0.8) -> dict[str, Any]:
    env = {**os.environ, "WRK_SETUP": str(setup_txt), "WRK_PUT": str(put)}
    p = pinned_popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
                      str(ROOT / "loadtests" / "wrk_bench.lua"), url],
                     cpus, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=seconds + 60)
    line = next((ln for ln in out.decode().splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.decode()[-2000:]} {err.decode()[-2000:]}")
    r: dict[str, Any] = json.loads(line[9:])
    r["rate"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def rate_gen(url: str, setup_json: Path, rate: float, seconds: float, cpus: set[int] | None,
             connections: int = 64, put: float = 0.8) -> dict[str, Any]:
    p = pinned_popen([PY, "-m", "loadtests.rate_gen", "--base-url", url, "--setup", str(setup_json),
                      "--rate", str(rate), "--seconds", str(seconds),
                      "--connections", str(connections), "--put", str(put)],
                     cpus, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=seconds + 120)
    if p.returncode != 0:
        raise RuntimeError(f"rate_gen failed: {err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


class WsClients:
    """ws_clients.py processes: start, wait for READY, report per run, stop, collect."""

    def __init__(self, api_url: str, stream_urls: list[str], groups: list[list[dict[str, Any]]],
                 cpus: set[int] | None, work: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        for i, conns in enumerate(groups):
            spec = work / f"ws-spec-{i}.json"
            spec.write_text(json.dumps({"base_url": api_url, "stream_urls": stream_urls,
                                        "conns": conns}))
            # the child keeps its own copy of the log's descriptor
            with open(work / f"ws-{i}.log", "wb") as err:
                self.procs.append(pinned_popen(
                    [PY, "-m", "loadtests.ws_clients", str(spec)], cpus, cwd=ROOT,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err))

    def ready(self, timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        for p in self.procs:
            assert p.stdout is not None
            while True:
                if time.monotonic() > end:
                    raise RuntimeError("WebSocket clients did not get ready in time")
                line = p.stdout.readline().decode()
                if not line:
                    raise RuntimeError("a WebSocket client process exited during set-up")
                if line.startswith("READY"):
                    break

    def _say(self, what: bytes) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(what)
            p.stdin.flush()

    def report(self) -> list[dict[str, Any]]:
        """What each process recorded since the last report (and it starts afresh)."""
        self._say(b"report\n")
        out = []
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline().decode()
            out.append(json.loads(line))
        return out

    def stop(self) -> list[dict[str, Any]]:
        self._say(b"stop\n")
        out: list[dict[str, Any]] = []
        for p in self.procs:
            data, _ = p.communicate(timeout=180)
            out.append(json.loads(data.decode().strip().splitlines()[-1]))
        return out


def merged(results: list[dict[str, Any]]) -> HdrHistogram:
    h = HdrHistogram(1, 60_000_000, 3)
    for r in results:
        if r.get("hist"):
            h.decode_and_add(r["hist"])
    return h


def push_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    h = merged(results)
    return {
        "quotes": sum(r["quotes"] for r in results), "own": sum(r["own"] for r in results),
        "gaps": sum(r["gaps"] for r in results), "dropped": sum(r["dropped"] for r in results),
        "out_of_step": sum(r.get("out_of_step", 0) for r in results),
        "errors": [r["errors"] for r in results],
        "client_lag_p99_ms": max(r["lag_p99_ms"] for r in results),
        "client_lag_max_ms": max(r.get("lag_max_ms", 0.0) for r in results),
        "client_gc_full": sum(r.get("gc_full", 0) for r in results),
        "client_gc_full_max_ms": max(r.get("gc_full_max_ms", 0.0) for r in results),
        "p50_ms": h.get_value_at_percentile(50) / 1000,
        "p90_ms": h.get_value_at_percentile(90) / 1000,
        "p99_ms": h.get_value_at_percentile(99) / 1000,
        "p999_ms": h.get_value_at_percentile(99.9) / 1000, "max_ms": h.get_max_value() / 1000,
    }


# ----------------------------------------------------------------------------- readings
def cpu_seconds(pids: list[int]) -> float:
    return sum(sum(psutil.Process(p).cpu_times()[:2]) for p in pids)


#: Redis's latency monitor threshold (ms): half the acknowledgement p99's target, an fsync that
#: slow (``appendfsync always``: every acknowledgement waits for one) is counted per run
SLOW_MS = 5


def slow_fsyncs(run: dict[str, Any]) -> str:
    """A run's seconds with an ``appendfsync always`` fsync of ``SLOW_MS`` or more, and the
    worst (Redis's latency monitor keeps each second's worst); "—" for results from before
    the monitor was read."""
    if "slow" not in run:
        return "—"
    ev = run["slow"].get("aof-fsync-always")
    return f"{ev['seconds']} s, worst {ev['worst_ms']} ms" if ev else "0 s"


@contextlib.contextmanager
def redis_during(url: str, every_s: float = 0.05) -> Iterator[dict[str, Any]]:
    """What Redis did during the block, in the dict yielded (filled as the block ends): its
    forks (an AOF rewrite is one: the child writes the whole data set, with CPU taken from
    whatever shares its core), for how long a rewrite was running (polled every ``every_s``
    from a thread), its memory as the block began, and its latency monitor's events
    (``slow``: for each event, e.g. ``aof-fsync-always``, how many seconds of the block had
    one at or over ``latency-monitor-threshold`` ms and the worst; empty when the monitor is
    off). The monitor is reset as the block begins."""
    r = redis_sync.Redis.from_url(url)  # a connection pool: the thread takes its own
    seen: dict[str, Any] = {}
    stop, rewriting = threading.Event(), [0.0]

    def watch() -> None:
        last = time.monotonic()
        while not stop.wait(every_s):
            now = time.monotonic()
            if r.info("persistence")["aof_rewrite_in_progress"]:
                rewriting[0] += now - last
            last = now

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        forks, mem = r.info("stats")["total_forks"], r.info("memory")["used_memory"]
        r.latency_reset()
        watcher.start()
        yield seen
        stop.set()
        watcher.join()
        seen.update(redis_forks=r.info("stats")["total_forks"] - forks, redis_mb=mem / 1e6,
                    rewrite_s=rewriting[0], slow=latency_events(r))
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join()
        r.close()


def latency_events(r: redis_sync.Redis) -> dict[str, dict[str, float]]:
    """Redis's latency monitor since its last reset: for each event, the seconds that had one
    at or over the threshold (it keeps each second's worst) and the worst of them, ms."""
    out: dict[str, dict[str, float]] = {}
    for latest in cast(list[list[Any]], r.latency_latest()):
        name = latest[0].decode() if isinstance(latest[0], bytes) else str(latest[0])
        worst = [int(ms) for _, ms in cast(list[list[Any]], r.latency_history(name))]
        out[name] = {"seconds": len(worst), "worst_ms": max(worst, default=0)}
    return out


def busy(pids: list[int], run: Callable[[], T]) -> tuple[T, float]:
    """run() and the given processes' CPU use meanwhile, as a share of one core."""
    c0, t0 = cpu_seconds(pids), time.monotonic()
    out = run()
    return out, (cpu_seconds(pids) - c0) / (time.monotonic() - t0)


def busy_groups(groups: dict[str, list[int]], run: Callable[[], T]
                ) -> tuple[T, dict[str, float]]:
    """run() and, meanwhile, each group's CPU use and each CPU's (``cpu0``, ``cpu1``, ...:
    everything on it), as shares of one core."""
    c0 = {k: cpu_seconds(v) for k, v in groups.items()}
    per0, t0 = psutil.cpu_times(percpu=True), time.monotonic()
    out = run()
    dt = time.monotonic() - t0
    shares = {k: (cpu_seconds(v) - c0[k]) / dt for k, v in groups.items()}
    for i, (a, z) in enumerate(zip(per0, psutil.cpu_times(percpu=True), strict=True)):
        shares[f"cpu{i}"] = 1 - (z.idle - a.idle) / dt
    return out, shares


def cpu_line(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {v * 100:.0f} %" for k, v in shares.items())


def rss(pids: list[int]) -> int:
    return sum(psutil.Process(p).memory_info().rss for p in pids)


def start_baseline(port: int, workers: int, redis_url: str, cpus: set[int] | None,
                   log_path: Path) -> subprocess.Popen[bytes]:
    """uvicorn serving loadtests/baseline_app.py, logging to ``log_path``."""
    # the child keeps its own copy of the log's descriptor
    with open(log_path, "wb") as blog:
        return pinned_popen([PY, "-m", "uvicorn", "loadtests.baseline_app:app", "--host",
                             "127.0.0.1", "--port", str(port), "--workers", str(workers),
                             "--log-level", "warning", "--no-access-log"], cpus, cwd=ROOT,
                            env={**os.environ, "REDIS_URL": redis_url}, stdout=blog, stderr=blog)


def wait_up(url: str) -> None:
    """Until ``url`` answers at all (at most ~10 s: the run goes on regardless)."""
    for _ in range(100):
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)


# ----------------------------------------------------------------------------- /metrics
Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(url: str) -> Samples:
    """The server's ``/metrics``: sample name -> [(labels, value)] (empty if unavailable)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(url + "/metrics", timeout=10).text
    except (ImportError, httpx.HTTPError):
        return {}
    out: Samples = {}
    with contextlib.suppress(ValueError):
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def total(m: Samples, name: str, **labels: str) -> float:
    return sum(v for lb, v in m.get(name, []) if all(lb.get(k) == x for k, x in labels.items()))


def by_label(m: Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for lb, v in m.get(name, []):
        out[lb.get(label, "")] = out.get(lb.get(label, ""), 0) + v
    return out


def quantile(m: Samples, name: str, q: float, **labels: str) -> float | None:
    """The q-quantile of a histogram from its cumulative buckets (the upper bound of the
    bucket it falls in, as Prometheus' histogram_quantile would interpolate it)."""
    buckets: dict[float, float] = {}
    for lb, v in m.get(f"{name}_bucket", []):
        if all(lb.get(k) == x for k, x in labels.items()):
            le = float(lb["le"])
            buckets[le] = buckets.get(le, 0) + v
    if not buckets:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0:
        return None
    want, prev_b, prev_c = q * count, 0.0, 0.0
    for b in bounds:
        c = buckets[b]
        if c >= want:
            if b == float("inf"):
                return prev_b
            frac = (want - prev_c) / (c - prev_c) if c > prev_c else 1.0
            return prev_b + (b - prev_b) * frac
        prev_b, prev_c = b, c
    return bounds[-1]


def diff(after: Samples, before: Samples) -> Samples:
    """Counter/histogram samples of ``after`` minus ``before`` (gauges come out as deltas
    too: read those from ``after``)."""
    out: Samples = {}
    for name, rows in after.items():
        prev = {tuple(sorted(lb.items())): v for lb, v in before.get(name, [])}
        out[name] = [(lb, v - prev.get(tuple(sorted(lb.items())), 0.0)) for lb, v in rows]
    return out
