"""``make hostile``: does the server hold its load while it is attacked? (RELIABILITY.md §4)

    python -m loadtests.hostile [--scenarios quiet,flood,swarm,brute,all,after] [--seconds 20]
        [--rate 150] [--flood 21000] [--flood-addresses 240] [--swarm 100] [--brute 16] ...

Every option also reads an environment variable (``HOSTILE_<OPTION>``, e.g. ``HOSTILE_FLOOD=5000``).
Against a private stack started the way ``make bench`` starts it (loadtests/local_server.py: a
durable Redis, a fresh SQLite file, one ``ige serve`` process with every role and the production
bounds of gateway/settings.py). Nothing is pinned unless ``--server-cpus`` / ``--rest-cpus`` say
so; the attackers run at ``nice`` 10, so they do not starve the good clients' own measurement.

Well-behaved clients measure in every scenario:

* a bank desk posting and revising offers open loop at ``--rate`` per second
  (loadtests/rate_gen.py): acknowledgement p50/p99 from each request's intended send time;
* well-behaved WebSocket subscribers (loadtests/ws_clients.py, one per bank of five, each on
  every round the desk bids in): push latency, accepted → frame received, seq gaps, drops;
* a fresh connection every 0.25 s (``GET /healthz``): can a new client still get in?
* the owner of the attacked bank asking for its own token with the right secret every 5 s.

The scenarios, one at a time and then all at once (loadtests/attackers.py, separate processes):

* ``flood``: ``--flood`` silent and slow-header TCP connections from ``--flood-addresses``
  source addresses (127.0.0.10 … on the loopback), reopened as soon as the server closes them;
* ``swarm``: ``--swarm`` WebSocket clients of one bank that subscribe to a round of
  ``--big-offers`` offers again and again (a snapshot each time) and never read;
* ``brute``: ``--brute`` connections from ``--brute-addresses`` addresses posting wrong secrets
  for a real client id to ``/v1/oauth/token`` as fast as the answers come.

A ``quiet`` run (the same good clients, no attack) comes before each attack, and each attack is
compared with the quiet run just before it (the load others put on a shared machine drifts);
``after`` comes last (the same quiet load once every attack stopped: did the server recover?).
Each scenario reports the good clients' numbers, their ratio to quiet, the errors they saw, and
what the server did: its ``/metrics`` (connections refused or closed by reason, slow clients
dropped, 429s by rule, answers by status) read before the attack starts and after it stopped,
the log lines of its bounds, its peak file descriptors, RSS and CPU, and the machine's load
average, and the machine's CPUs over the measurement (busy, and the kernel's part of it).
The pass criterion (issue #10): the good clients' p99 within 2× of quiet, and no errors for
them. Results: ``var/hostile-results.json`` and a table on stdout.

A control: ``--flood-at twin`` starts a second ``ige serve --role api`` beside the server and
aims the flood at it; the good clients' server then never sees a flood connection, so what the
flood still does to them is the shared machine's doing (its CPUs and kernel), not the server's.
``--attack-cpus`` keeps the attackers to CPUs of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import psutil
from hdrh.histogram import HdrHistogram

from loadtests.bench.tools import (
    PY,
    Bank,
    Setup,
    WsClients,
    diff,
    log,
    push_summary,
    rate_gen,
    scrape,
)
from loadtests.hostile_report import log_counts, machine_busy, server_view, table, verdict
from loadtests.local_server import ROOT, LocalStack, Server, pin
from loadtests.rawhttp import host_port

ATTACKS = {"quiet": (), "flood": ("flood",), "swarm": ("swarm",), "brute": ("brute",),
           "all": ("flood", "swarm", "brute"), "after": ()}
#: a quiet run before each attack: on a shared machine the load of others drifts, so each attack
#: is compared with the quiet run just before it (and with the first one)
DEFAULT_ORDER = "quiet,flood,quiet,swarm,quiet,brute,quiet,all,after"
N_BANKS = 10
GOOD_BANKS = 8  # banks 0..7 bid (the desk); 0..4 also watch
SWARM_BANK = 8  # a bank of the big round whose WebSockets never read
TARGET_BANK = 9  # the bank whose client id is brute-forced (its owner asks for tokens)


def _env(name: str, default: Any) -> Any:
    raw = os.environ.get("HOSTILE_" + name.upper().replace("-", "_"))
    return default if raw is None else type(default)(raw)


def options(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)

    def opt(name: str, default: Any, text: str) -> None:
        ap.add_argument(f"--{name}", type=type(default), default=_env(name, default), help=text)

    opt("scenarios", DEFAULT_ORDER, "which scenarios, in this order (quiet may repeat; each "
                                    f"of {', '.join(ATTACKS)})")
    opt("seconds", 20.0, "the good clients' measurement per scenario")
    opt("warm", 5.0, "seconds between an attack being up and the measurement")
    opt("rate", 150.0, "the desk's offers per second (open loop)")
    opt("connections", 16, "the desk's keep-alive connections")
    opt("rounds", 20, "rounds the desk bids in (each watched by the good subscribers)")
    opt("flood", 21000, "TCP connections the flood keeps open")
    opt("flood-addresses", 240, "source addresses of the flood (127.0.0.10 and up)")
    opt("flood-procs", 2, "processes sharing the flood (each needs an fd per connection)")
    opt("flood-slow", 0.5, "the share of slow-header connections (the rest are silent)")
    opt("flood-ramp", 40.0, "seconds the flood may take to open its connections")
    opt("flood-at", "server", "where the flood aims: 'server' (the one the good clients use) or "
                              "'twin' (a control: a second `ige serve --role api` on the same "
                              "CPUs takes the flood, so what is left is the machine's share)")
    opt("swarm", 100, "non-reading WebSocket clients of one bank")
    opt("big-offers", 1000, "offers in the round the swarm asks snapshots of")
    opt("brute", 16, "connections guessing secrets")
    opt("brute-addresses", 8, "source addresses of the guessers (127.0.0.2 and up)")
    opt("server-cpus", "", "CPUs of the server, e.g. 0 ('' = any: on a machine others share, "
                           "pinning puts the server beside whatever they pinned there)")
    opt("rest-cpus", "", "CPUs of Redis, the good clients and the attackers ('' = any)")
    opt("attack-cpus", "", "CPUs of the attackers alone ('' = --rest-cpus): attackers on "
                           "their own hosts, as far as one machine can show it")
    opt("nofile", 0, "ulimit -n of the server and attackers (0: the hard limit; as root a "
                     "larger value raises the hard limit too)")
    opt("server-env", "", "settings of the server beyond the production defaults, e.g. "
                          "IGE_MAX_CONNECTIONS=0,IGE_HEADER_TIMEOUT=5")
    opt("json", str(ROOT / "var" / "hostile-results.json"), "where the results go")
    opt("work", str(ROOT / "var" / "hostile"), "the run's files: the stack (its logs), the "
                                               "attackers' specs and logs (emptied first)")
    return ap.parse_args(argv)


def server_env(text: str) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 or not p[0].startswith("IGE_") for p in pairs):
        raise SystemExit(f"--server-env: IGE_NAME=value pairs, comma-separated; got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def cpus(text: str) -> set[int] | None:
    return {int(c) for c in text.split(",") if c.strip()} or None


# ----------------------------------------------------------------------------- attackers
class Attacker:
    """One loadtests/attackers.py process."""

    def __init__(self, kind: str, spec: dict[str, Any], work: Path, cpu: set[int] | None,
                 index: int = 0) -> None:
        self.kind = kind
        path = work / f"attack-{kind}-{index}.json"
        path.write_text(json.dumps({"kind": kind, **spec}))

        def pre() -> None:
            if cpu:
                os.sched_setaffinity(0, cpu)
            os.nice(10)

        with open(work / f"attack-{kind}-{index}.log", "ab") as err:
            self.proc = subprocess.Popen([PY, "-m", "loadtests.attackers", str(path)],
                                         preexec_fn=pre, start_new_session=True, cwd=ROOT,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err)

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"the {self.kind} attacker exited; see attack-*.log of the "
                               "run's files (--work)")
        got: dict[str, Any] = json.loads(line.removeprefix("READY "))
        return got

    def ready(self) -> dict[str, Any]:
        return self._line()

    def report(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"report\n")
        self.proc.stdin.flush()
        return self._line()

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        with suppress(BrokenPipeError):
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.flush()
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = out.decode().strip().splitlines()
        got: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        return got


def addresses(first: int, n: int) -> list[str]:
    return [f"127.0.0.{i}" for i in range(first, min(first + n, 255))]


def merge_counts(reports: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in reports:
        for k, v in r.items():
            out[k] = out.get(k, 0) + v
    return out


# ----------------------------------------------------------------------------- good probes
class Probes:
    """What else a good client does while the desk measures: a fresh connection every 0.25 s
    (``GET /healthz``) and the attacked bank's owner asking for its token every 5 s."""

    def __init__(self, base: str, owner: Bank) -> None:
        self.base, self.owner = base, owner
        self.fresh = HdrHistogram(1, 60_000_000, 3)
        self.fresh_fail: dict[str, int] = {}
        self.token_status: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def _fresh(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                async with httpx.AsyncClient(timeout=10) as http:  # a new connection each time
                    r = await http.get(self.base + "/healthz")
                key = None if r.status_code == 200 else str(r.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            if key is None:
                self.fresh.record_value(max(1, int((time.perf_counter() - t0) * 1e6)))
            else:
                self.fresh_fail[key] = self.fresh_fail.get(key, 0) + 1
            with suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.25)

    async def _token(self) -> None:
        while not self.stop.is_set():
            try:
                async with httpx.AsyncClient(timeout=10) as http:
                    r = await http.post(self.base + "/v1/oauth/token", data={
                        "grant_type": "client_credentials", "client_id": self.owner.client_id,
                        "client_secret": self.owner.secret})
                key = str(r.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            self.token_status[key] = self.token_status.get(key, 0) + 1
            with suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 5)

    async def run(self) -> None:
        await asyncio.gather(self._fresh(), self._token())

    def result(self) -> dict[str, Any]:
        h = self.fresh
        return {"fresh_ok": h.get_total_count(), "fresh_fail": self.fresh_fail,
                "fresh_p50_ms": h.get_value_at_percentile(50) / 1000,
                "fresh_p99_ms": h.get_value_at_percentile(99) / 1000,
                "fresh_max_ms": h.get_max_value() / 1000, "owner_token": self.token_status}


class Watch:
    """The server process every half second: peak file descriptors and RSS; its CPU share over
    the good clients' measurement (and over the whole scenario: ramp, attack, settling)."""

    def __init__(self, pid: int) -> None:
        self.p = psutil.Process(pid)
        self.fds = self.rss = 0
        self.halt = threading.Event()
        self.t0 = time.monotonic()
        self.c0 = sum(self.p.cpu_times()[:2])
        self.m0 = (self.t0, self.c0)
        self.cpu_measured = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.halt.wait(0.5):
            with suppress(psutil.Error):
                self.fds = max(self.fds, self.p.num_fds())
                self.rss = max(self.rss, self.p.memory_info().rss)

    def measuring(self) -> None:
        """The good clients' measurement starts: CPU is read over it from now."""
        self.m0 = (time.monotonic(), sum(self.p.cpu_times()[:2]))

    def measured(self) -> None:
        t0, c0 = self.m0
        self.cpu_measured = (sum(self.p.cpu_times()[:2]) - c0) / (time.monotonic() - t0)

    def done(self) -> dict[str, Any]:
        self.halt.set()
        self.thread.join()
        cpu = (sum(self.p.cpu_times()[:2]) - self.c0) / (time.monotonic() - self.t0)
        return {"peak_fds": self.fds, "peak_rss_mib": round(self.rss / 2**20, 1),
                "cpu": round(self.cpu_measured, 3), "cpu_whole_scenario": round(cpu, 3)}


# ----------------------------------------------------------------------------- the run
class Run:
    def __init__(self, a: argparse.Namespace, stack: LocalStack, work: Path) -> None:
        self.a, self.stack, self.work = a, stack, work
        self.rest = cpus(a.rest_cpus)
        self.attack = cpus(a.attack_cpus) or self.rest
        self.server_pid = stack.pids()[0]
        self.log_path = next(work.glob("stack/server-0-*.log"))
        self.banks: list[Bank] = []
        self.big = ""
        self.setup_json = work / "desk.json"
        self.ws: WsClients | None = None
        self.base_fds = 0  # the server's descriptors before any attack

    async def prepare(self) -> None:
        a, base = self.a, self.stack.base_url
        log(f"set-up: {N_BANKS} banks, {a.rounds} rounds for the desk, one of {a.big_offers} "
            f"offers for the swarm")
        su = Setup(self.stack)
        await su.banks(N_BANKS)
        self.banks = su.made
        rids = await su.rounds(a.rounds + 1)
        self.big, desk = rids[0], rids[1:]
        offers = await su.offers([(b, r) for r in desk for b in range(GOOD_BANKS)], parallel=16)
        await su.offers([(i % N_BANKS, self.big) for i in range(a.big_offers)], parallel=16)
        self.setup_json.write_text(json.dumps(
            {"tokens": [b.token for b in self.banks[:GOOD_BANKS]], "offers": offers}))
        self.ws = WsClients(base, self.stack.stream_urls,
                            [[{"token": self.banks[b].token, "rounds": desk}
                              for b in range(5)]], self.rest, self.work)
        self.ws.ready()

    def attackers(self, kinds: tuple[str, ...]) -> list[Attacker]:
        a = self.a
        host, port = host_port(self.stack.base_url)
        out: list[Attacker] = []
        for kind in kinds:
            if kind == "flood" and a.flood > 0:
                fhost, fport = host_port(self.stack.servers[-1].url)  # the twin, if any
                addrs = addresses(10, a.flood_addresses)
                procs = max(1, a.flood_procs)
                for i in range(procs):
                    out.append(Attacker("flood", {
                        "host": fhost, "port": fport, "addresses": addrs[i::procs] or addrs,
                        "connections": a.flood // procs + (i < a.flood % procs),
                        "slow": a.flood_slow, "ramp_s": a.flood_ramp}, self.work, self.attack, i))
            elif kind == "swarm" and a.swarm > 0:
                out.append(Attacker("swarm", {
                    "host": host, "port": port, "addresses": ["127.0.0.250"],
                    "clients": a.swarm, "token": self.banks[SWARM_BANK].token,
                    "round": self.big}, self.work, self.attack))
            elif kind == "brute" and a.brute > 0:
                out.append(Attacker("brute", {
                    "host": host, "port": port, "addresses": addresses(2, a.brute_addresses),
                    "connections": a.brute, "client_id": self.banks[TARGET_BANK].client_id},
                    self.work, self.attack))
        return out

    def settle(self, timeout: float = 60) -> float:
        """Until the server (and the flood's twin, if any) is idle and its descriptors stopped
        falling (the attack's connections are gone; pools grown meanwhile may stay)."""
        ps = [psutil.Process(pid) for pid in self.stack.pids()]
        t0 = time.monotonic()
        for p in ps:
            p.cpu_percent(None)
        fds = sum(p.num_fds() for p in ps)
        while time.monotonic() - t0 < timeout:
            time.sleep(1.0)
            with suppress(psutil.Error):
                now = sum(p.num_fds() for p in ps)
                idle = all(p.cpu_percent(None) < 15 for p in ps)
                if idle and (now >= fds or now < self.base_fds + 50):
                    break
                fds = now
        return time.monotonic() - t0

    def scenario(self, label: str, name: str) -> dict[str, Any]:
        a = self.a
        assert self.ws is not None
        kinds = ATTACKS[name]
        log(f"=== {label}" + (f": {', '.join(kinds)}" if kinds else ""))
        before = scrape(self.stack.base_url)
        log_from = self.log_path.stat().st_size
        watch = Watch(self.server_pid)
        twin = self.stack.servers[1:]  # --flood-at twin: the process the flood is aimed at
        twin_before = scrape(twin[0].url) if twin else None
        twin_watch = Watch(twin[0].pids()[0]) if twin else None
        started = time.monotonic()
        attackers = self.attackers(kinds)
        up = [x.ready() for x in attackers]
        if attackers:
            log(f"  attack up in {time.monotonic() - started:.1f} s: {merge_counts(up)}")
            time.sleep(a.warm)
        load0 = os.getloadavg()
        self.ws.report()  # what came before the measurement is not counted
        watch.measuring()
        if twin_watch:
            twin_watch.measuring()
        cpu0 = psutil.cpu_times()
        desk, probes = asyncio.run(self._measure())
        machine = machine_busy(cpu0, psutil.cpu_times())
        watch.measured()
        if twin_watch:
            twin_watch.measured()
        push = self.ws.report()
        load1 = os.getloadavg()
        during = {x.kind: x.report() for x in attackers}
        finals: dict[str, list[dict[str, Any]]] = {}
        for x in attackers:
            finals.setdefault(x.kind, []).append(x.stop())
        settle = self.settle() if attackers else 0.0
        server = watch.done()
        after = scrape(self.stack.base_url)
        res: dict[str, Any] = {
            "attacks": list(kinds), "desk": desk, "push": push_summary(push), "probes": probes,
            "attackers": {k: merge_counts(v) for k, v in finals.items()},
            "attackers_during": during, "server": server, "settle_s": round(settle, 1),
            "metrics": server_view(diff(after, before), after),
            "log": log_counts(self.log_path, log_from),
            "loadavg": [round(x, 2) for x in (*load0, *load1)], "machine": machine,
        }
        if twin and twin_watch and twin_before is not None:
            res["twin"] = {"refused": server_view(diff(scrape(twin[0].url), twin_before),
                                                  {})["refused"], **twin_watch.done()}
            log(f"  the twin (took the flood): {res['twin']}")
        log(f"  ack p50 {desk['p50_ms']:.2f} p99 {desk['p99_ms']:.2f} ms (from the actual send "
            f"{desk['service_p99_ms']:.2f}), push p99 "
            f"{res['push']['p99_ms']:.2f} ms, desk statuses {desk['statuses']}, "
            f"fresh fail {probes['fresh_fail']}, owner token {probes['owner_token']}")
        log(f"  server: {res['metrics']}, {server}, load {res['loadavg']}, machine {machine}")
        return res

    async def _measure(self) -> tuple[dict[str, Any], dict[str, Any]]:
        probes = Probes(self.stack.base_url, self.banks[TARGET_BANK])
        task = asyncio.ensure_future(probes.run())
        try:
            desk = await asyncio.to_thread(
                rate_gen, self.stack.base_url, self.setup_json, self.a.rate, self.a.seconds,
                self.rest, self.a.connections)
        finally:
            probes.stop.set()
            await task
        return desk, probes.result()


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    a = options(argv)
    chosen = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(ATTACKS)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.nofile or hard
    if want > hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root only
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)  # inherited by the server
    log(f"ulimit -n: was soft {soft} / hard {hard}; now soft {nofile[0]} / hard {nofile[1]} "
        f"for the server and the attackers")
    pin(0, cpus(a.rest_cpus))
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # production bounds; tokens outlive the run; one bank may hold any number of offers in a
    # round (the big round); request lines at INFO, as in production
    if a.flood_at not in ("server", "twin"):
        raise SystemExit(f"--flood-at: 'server' or 'twin'; got {a.flood_at!r}")
    servers = [Server(cpus=cpus(a.server_cpus))]
    if a.flood_at == "twin":
        servers.append(Server("api", cpus=cpus(a.server_cpus)))
    stack = LocalStack(servers=servers, redis_cpus=cpus(a.rest_cpus),
                       data_dir=work / "stack",
                       env={"IGE_TOKEN_TTL": "7200", "IGE_MAX_OFFERS_PER_BANK": "0",
                            "IGE_LOG_LEVEL": "INFO", **server_env(a.server_env)})
    results: dict[str, Any] = {}
    t0 = time.time()
    with stack:
        run = Run(a, stack, work)
        asyncio.run(run.prepare())
        run.base_fds = sum(psutil.Process(pid).num_fds() for pid in stack.pids())
        try:
            baseline = first = None
            for name in chosen:
                n = sum(1 for k in results if k.split(" ")[0] == name)
                label = name if n == 0 else f"{name} {n + 1}"
                r = run.scenario(label, name)
                r["baseline"], r["first"] = baseline, first  # the quiet runs it is compared with
                results[label] = r
                if not ATTACKS[name]:
                    baseline = label
                    first = first or label
                (work / "partial.json").write_text(json.dumps(results, indent=1, default=str))
        finally:
            if run.ws is not None:
                with suppress(Exception):
                    run.ws.stop()
    verdicts = verdict(results)
    out: dict[str, Any] = {
           "options": vars(a), "nofile": {"before": [soft, hard], "used": list(nofile)},
           "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime(t0)),
           "minutes": round((time.time() - t0) / 60, 1), "results": results,
           "verdict": verdicts}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1, default=str))
    print()
    print(table(results))
    print()
    for name, v in verdicts.items():
        print(f"{name}: {'held' if v['held'] else 'NOT held'} against {v['baseline']} "
              f"(ack p99 × {v['ack_ratio']:.2f}, push p99 × {v['push_ratio']:.2f}, errors "
              f"{v['errors'] or 'none'})")
    log(f"wrote {a.json} in {out['minutes']} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
