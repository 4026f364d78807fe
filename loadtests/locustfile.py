"""Locust scenario: bank desks bidding over HTTP and watching their rounds over WebSocket.

    IGE_ADMIN_TOKEN=... locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 2m \\
        --host http://127.0.0.1:8000 --csv var/loadtest/run --exit-code-on-error 1

The scenario sets itself up through the admin API (``IGE_ADMIN_TOKEN``): ``LOAD_BANKS`` banks
and ``LOAD_ROUNDS`` rounds, once per locust process. Each user is a bank desk: it takes a token,
reads the pool, sends offers into a Zipf-skewed mix of rounds, revises them, reads books, with
think times. Every bank keeps one WebSocket open (a greenlet with ``websocket-client``),
subscribed to the rounds it bid in, and reports each masked quote of *another* bank as
``WS push_latency``: from the offer's ``updated_at`` (its ``accepted_at``) to arrival here.

Environment (every one optional but the token):
  IGE_ADMIN_TOKEN        operator token of the server under test (required)
  LOAD_BANKS / LOAD_ROUNDS           banks and rounds to create (10 / 20)
  LOAD_THINK             think time range in seconds, "min,max" (1,3)
  LOAD_SHAPE / --load-shape          steady | ramp | spike (reads -u, -r, -t); unset: plain -u/-r
  LOAD_MAX_FAIL_RATIO    stop the run (exit code 1) above this failure ratio (0.01)
  LOAD_EXPORTER          "self": register a demo exporter and poll its applications' results;
                         or LOAD_EXPORTER_EMAIL/_PASSWORD/_TOTP_SECRET [+ _APPLICATIONS ids];
                         unset: the exporter user is skipped
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import gevent
import websocket  # websocket-client: blocking sockets, which locust's gevent makes cooperative
from gevent.lock import Semaphore
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.argument_parser import LocustArgumentParser
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment
from locust.event import EventHook
from locust.runners import WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from auction.livebook import LiveBook, OutOfStep
from loadtests import scenario

log = logging.getLogger("ige.loadtest")

_Handler = TypeVar("_Handler", bound=Callable[..., None])


def _listener(hook: EventHook) -> Callable[[_Handler], _Handler]:
    """``@hook.add_listener``, typed: locust's EventHook is unannotated."""
    def register(handler: _Handler) -> _Handler:
        hook.add_listener(handler)  # type: ignore[no-untyped-call]  # locust: unannotated
        return handler
    return register


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _shape_choice() -> str:
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == "--load-shape" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--load-shape="):
            return a.split("=", 1)[1]
    return os.environ.get("LOAD_SHAPE", "")


def _think() -> tuple[float, float]:
    lo, _, hi = os.environ.get("LOAD_THINK", "1,3").partition(",")
    try:
        return float(lo), float(hi or lo)
    except ValueError:
        return 1.0, 3.0


@_listener(events.init_command_line_parser)
def _options(parser: LocustArgumentParser) -> None:
    parser.add_argument("--load-shape", choices=scenario.SHAPES, default=None,
                        env_var="LOAD_SHAPE",
                        help="ramp, steady or spike, shaped over -u (peak users), -r, -t")
    parser.add_argument("--max-fail-ratio", type=float, env_var="LOAD_MAX_FAIL_RATIO",
                        default=0.01, help="stop the run with exit code 1 above this failure ratio")


# ----------------------------------------------------------------------------- set-up
class World:
    """Banks, rounds and (optionally) an exporter, created once per locust process."""

    lock = Semaphore()
    ready = False
    host = ""
    admin: ClassVar[dict[str, str]] = {}
    banks: ClassVar[list[dict[str, Any]]] = []
    rounds: ClassVar[list[dict[str, Any]]] = []
    weights: ClassVar[list[float]] = []
    exporter: dict[str, Any] | None = None
    applications: ClassVar[list[str]] = []
    next_bank = 0
    streams: ClassVar[dict[str, BankStream]] = {}
    stopping = False

    @classmethod
    def ensure(cls, host: str | None) -> None:
        with cls.lock:
            if cls.ready:
                return
            cls._setup(host)
            cls.ready = True

    @classmethod
    def _setup(cls, host: str | None) -> None:
        from geventhttpclient import HTTPClient
        from geventhttpclient.url import URL

        token = os.environ.get("IGE_ADMIN_TOKEN", "")
        if not token:
            raise RuntimeError("set IGE_ADMIN_TOKEN to the operator token of the server under test")
        if host is None:
            raise RuntimeError("set the server under test with --host")
        cls.host = host.rstrip("/")
        cls.admin = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        http = HTTPClient.from_url(URL(cls.host), concurrency=4, connection_timeout=10,
                                   network_timeout=60)

        def call(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                 form: bool = False) -> Any:
            h = dict(headers if headers is not None else cls.admin)
            raw: bytes | None
            if form:
                from urllib.parse import urlencode

                raw = urlencode(body).encode()
                h["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                raw = json.dumps(body).encode() if body is not None else None
            r = http.request(method, path, body=raw, headers=h)
            text = r.read()
            if r.status_code >= 300:
                raise RuntimeError(f"set-up {method} {path}: {r.status_code} {text[:300]!r}")
            return json.loads(text) if text else None

        n_banks = int(_env_float("LOAD_BANKS", 10))
        n_rounds = int(_env_float("LOAD_ROUNDS", 20))
        run = uuid.uuid4().hex[:5].upper()
        for i in range(n_banks):
            code = f"L{run}{i:02d}"
            cls.banks.append(call("POST", "/v1/admin/banks",
                                  {"bank_code": code, "name": f"Load {code}"}))
        exporter_id = cls._exporter_setup(call)
        for i in range(n_rounds):
            r = call("POST", "/v1/admin/rounds",
                     scenario.round_body(i, exporter_id if i < 2 else None))
            cls.rounds.append(r)
            # every intake is an application; the exporter follows the ones taken in for it
            if exporter_id and r.get("exporter_user_id") == exporter_id:
                cls.applications.append(r["application_id"])
        rng = random.Random()
        rng.shuffle(cls.rounds)
        cls.weights = scenario.hot_weights(len(cls.rounds))
        http.close()
        log.info("set up %d banks and %d rounds on %s", n_banks, n_rounds, cls.host)

    @classmethod
    def _exporter_setup(cls, call: Any) -> str | None:
        """An exporter for the exporter user: self-registered, or given credentials."""
        import pyotp

        mode = os.environ.get("LOAD_EXPORTER", "")
        if mode == "self":
            email = f"load-{uuid.uuid4().hex[:8]}@example.com"
            password = "load test password 1"
            reg = call("POST", "/v1/exporter/register", {
                "full_name": "Yük Testi İhracatçı", "national_id": "10000000146", "email": email,
                "mobile": "+905321234567", "password": password},
                headers={"Content-Type": "application/json"})
            secret = pyotp.parse_uri(reg["totp_uri"]).secret
            step = int(time.time() // 30)
            call("POST", "/v1/exporter/activate",
                 {"email": email, "code": pyotp.TOTP(secret).at(step * 30)},
                 headers={"Content-Type": "application/json"})
            cls.exporter = {"email": email, "password": password, "totp": secret, "step": step}
            return str(reg["user_id"])
        given = os.environ.get("LOAD_EXPORTER_EMAIL")
        if given:
            cls.exporter = {"email": given,
                            "password": os.environ.get("LOAD_EXPORTER_PASSWORD", ""),
                            "totp": os.environ.get("LOAD_EXPORTER_TOTP_SECRET", ""), "step": 0}
            cls.applications = [
                a for a in os.environ.get("LOAD_EXPORTER_APPLICATIONS", "").split(",") if a]
            return os.environ.get("LOAD_EXPORTER_USER_ID") or None
        return None

    @classmethod
    def take_bank(cls) -> dict[str, Any]:
        with cls.lock:
            b = cls.banks[cls.next_bank % len(cls.banks)]
            cls.next_bank += 1
            return b


def _fire(name: str, ms: float, length: int = 0, exc: Exception | None = None) -> None:
    events.request.fire(  # type: ignore[no-untyped-call]  # locust: EventHook is unannotated
        request_type="WS", name=name, response_time=ms, response_length=length, exception=exc,
        context={})


class StreamError(Exception):
    pass


class BankStream:
    """One WebSocket per bank, subscribed to the rounds the bank bid in; checks that seq rises
    by exactly one per round, keeps each round's book from the snapshot and the quotes
    (``auction.livebook``: every quote's rank and book_size checked; a disagreement is a
    ``book_out_of_step`` failure and a fresh snapshot), compares the kept books with fresh
    snapshots when the run stops, and reports other banks' quotes as push latency."""

    def __init__(self, user: BankDesk) -> None:
        self.user = user  # the first desk of this bank: its HTTP client fetches tickets
        self.topics: dict[str, int] = {}  # round id -> last seq seen
        self.books: dict[str, LiveBook] = {}
        self.verifying: set[str] = set()
        self.ws: websocket.WebSocket | None = None
        self.greenlet = gevent.spawn(self._run)

    def subscribe(self, round_id: str) -> None:
        if round_id in self.topics:
            return
        self.topics[round_id] = 0
        self._send({"op": "subscribe", "topic": f"round:{round_id}"})

    def _send(self, msg: dict[str, Any]) -> None:
        ws = self.ws
        if ws is not None and ws.connected:
            # on failure the reader notices and reconnects
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.send(json.dumps(msg))

    def _connect(self) -> websocket.WebSocket:
        with self.user.bank_request("POST", "/v1/stream/tickets",
                                    name="/v1/stream/tickets") as r:
            if r.status_code != 201:
                r.failure(f"ticket: {r.status_code}")
                raise StreamError("no ticket")
            ticket = r.json()["ticket"]
        url = World.host.replace("http", "ws", 1) + f"/v1/stream?ticket={ticket}"
        t0 = time.perf_counter()
        ws = websocket.create_connection(url, subprotocols=["ige.v1.json"], timeout=30,
                                         enable_multithread=True)
        _fire("connect", (time.perf_counter() - t0) * 1000)
        ws.settimeout(None)
        return ws

    def _run(self) -> None:
        backoff = 0.5
        while not World.stopping:
            try:
                self.ws = self._connect()
                backoff = 0.5
                for rid, seq in list(self.topics.items()):  # after a reconnect: catch up
                    msg: dict[str, Any] = {"op": "subscribe", "topic": f"round:{rid}"}
                    if seq:
                        msg["since_seq"] = seq
                    self._send(msg)
                self._read(self.ws)
            except (OSError, StreamError, websocket.WebSocketException) as e:
                if World.stopping:
                    return
                _fire("disconnect", 0, exc=e)
            gevent.sleep(backoff)
            backoff = min(backoff * 2, 5)

    def _read(self, ws: websocket.WebSocket) -> None:
        while not World.stopping:
            raw = ws.recv()
            now = time.time() * 1000
            if not raw:
                raise StreamError("closed by the server")
            msg = json.loads(raw)
            kind = msg.get("type")
            topic = msg.get("topic") or ""
            rid = topic[6:] if topic.startswith("round:") else ""
            if kind == "snapshot" and rid:
                self.topics[rid] = int(msg["seq"])
                if rid in self.verifying:
                    self._verified(rid, msg)
                self.books[rid] = book = LiveBook()
                book.load(msg)
            elif kind in ("quote", "round_closed") and rid:
                self._keep(rid, msg)
                last = self.topics.get(rid, 0)
                seq = int(msg["seq"])
                if last and seq != last + 1:
                    _fire("seq_order", 0, exc=StreamError(f"round {rid}: seq {seq} after {last}"))
                self.topics[rid] = seq
                lat = scenario.push_latency_ms(msg, now)
                if lat is not None:
                    _fire("push_latency", lat, len(raw))
                elif kind == "round_closed":
                    _fire("round_closed", max(0.0, now - scenario.iso_ms(msg["closed_at"])),
                          len(raw))
            elif kind == "error" and msg.get("code") != "offer_required":
                _fire("stream_error", 0, exc=StreamError(f"{msg.get('code')}: {msg.get('detail')}"))

    def _keep(self, rid: str, msg: dict[str, Any]) -> None:
        book = self.books.get(rid)
        if book is None:
            return
        try:
            book.apply(msg)
        except OutOfStep as e:
            _fire("book_out_of_step", 0, exc=e)
            del self.books[rid]
            self._send({"op": "subscribe", "topic": f"round:{rid}"})  # start afresh

    def verify(self) -> None:
        """Ask for a fresh snapshot of every round to compare the kept books with."""
        self.verifying = {rid for rid in self.topics if rid in self.books}
        for rid in self.verifying:
            self._send({"op": "subscribe", "topic": f"round:{rid}"})

    def _verified(self, rid: str, snap: dict[str, Any]) -> None:
        self.verifying.discard(rid)
        kept = self.books.get(rid)
        if kept is None or kept.seq != snap["seq"]:
            _fire("book_unverifiable", 0)  # offers went on meanwhile: nothing to compare
        elif diff := kept.differences(snap):
            _fire("book_differs", 0, exc=StreamError(f"round {rid}: {'; '.join(diff[:3])}"))
        else:
            _fire("book_verified", 0)

    def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(Exception):  # closing at the end of a run
                ws.close(timeout=1)
        self.greenlet.kill(block=False)


# ----------------------------------------------------------------------------- users
class BankDesk(FastHttpUser):
    """A bank's dealing desk: pool, offers, revisions, books; think time between actions."""

    weight = 20
    wait_time = between(*_think())
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        World.ensure(self.host)
        self.rng = random.Random()
        self.bank = World.take_bank()
        self.token_until = 0.0
        self.auth: dict[str, str] = {}
        self.offers: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # round -> [(id, body)]
        self._token()
        code = self.bank["bank_code"]
        if code not in World.streams:
            World.streams[code] = BankStream(self)

    def bank_request(self, method: str, path: str, **kw: Any) -> ResponseContextManager:
        """A request with this bank's token, its response checked by the caller."""
        self._token()
        headers = {**self.auth, **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, catch_response=True, **kw)

    def _token(self) -> None:
        if time.time() < self.token_until:
            return
        with self.client.post("/v1/oauth/token", name="/v1/oauth/token", catch_response=True, data={
                "grant_type": "client_credentials", "client_id": self.bank["client_id"],
                "client_secret": self.bank["client_secret"]}) as r:
            if r.status_code != 200:
                r.failure(f"token: {r.status_code} {r.text[:200]}")
                return
            body = r.json()
        self.auth = {"Authorization": f"Bearer {body['access_token']}"}
        self.token_until = time.time() + int(body["expires_in"]) - 60

    def _round(self) -> dict[str, Any]:
        return self.rng.choices(World.rounds, World.weights)[0]

    def _drop(self, rid: str) -> None:
        self.offers.pop(rid, None)

    @task(1)
    def pool(self) -> None:
        with self.bank_request("GET", "/v1/bank/rounds?state=open&limit=50",
                               name="/v1/bank/rounds") as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")

    @task(3)
    def new_offer(self) -> None:
        rnd = self._round()
        rid = rnd["round_id"]
        if len(self.offers.get(rid, [])) >= 2:
            return self.revise()
        body = scenario.offer_body(rnd, self.rng)
        with self.bank_request("POST", f"/v1/bank/rounds/{rid}/offers",
                               name="/v1/bank/rounds/[id]/offers", json=body,
                               headers={"Idempotency-Key": uuid.uuid4().hex}) as r:
            if r.status_code == 201:
                self.offers.setdefault(rid, []).append((r.json()["offer_id"], body))
                World.streams[self.bank["bank_code"]].subscribe(rid)
            elif r.status_code == 409 and "round_closed" in r.text:
                r.success()  # a round's deadline passed during the run: expected
                self._drop(rid)
            elif r.status_code == 409 and "offer_limit" in r.text:
                r.success()  # the bank's other desks hold its offers here: expected
            else:
                r.failure(f"{r.status_code} {r.text[:300]}")
        return None

    @task(5)
    def revise(self) -> None:
        if not self.offers:
            return self.new_offer()
        rid = self.rng.choice(list(self.offers))
        i = self.rng.randrange(len(self.offers[rid]))
        offer_id, body = self.offers[rid][i]
        new = scenario.improved(body, self.rng)
        with self.bank_request("PUT", f"/v1/bank/rounds/{rid}/offers/{offer_id}",
                               name="/v1/bank/rounds/[id]/offers/[offer_id]", json=new,
                               headers={"Idempotency-Key": uuid.uuid4().hex}) as r:
            if r.status_code == 200:
                self.offers[rid][i] = (offer_id, new)
            elif r.status_code == 409 and "round_closed" in r.text:
                r.success()
                self._drop(rid)
            else:
                r.failure(f"{r.status_code} {r.text[:300]}")
        return None

    @task(2)
    def book(self) -> None:
        if not self.offers:
            return None
        rid = self.rng.choice(list(self.offers))
        with self.bank_request("GET", f"/v1/bank/rounds/{rid}/book",
                               name="/v1/bank/rounds/[id]/book") as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")
            elif any(o.get("mine") is False and ("offer_id" in o or "bank_id" in o)
                     for o in r.json()["offers"]):
                r.failure("masking: another bank's identity in the book")
        return None

    @task(1)
    def round_detail(self) -> None:
        rid = self._round()["round_id"]
        with self.bank_request("GET", f"/v1/bank/rounds/{rid}",
                               name="/v1/bank/rounds/[id]") as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")


class ExporterDesk(FastHttpUser):
    """Low-rate exporter: follows its applications and polls their results. Skipped unless
    LOAD_EXPORTER=self or exporter credentials are configured (see the module doc)."""

    abstract = not (os.environ.get("LOAD_EXPORTER") == "self"
                    or os.environ.get("LOAD_EXPORTER_EMAIL"))
    fixed_count = 1
    wait_time = constant(5)

    def on_start(self) -> None:
        World.ensure(self.host)
        self.auth: dict[str, str] = {}
        self._login()

    def _login(self) -> None:
        import pyotp

        ex = World.exporter
        if ex is None:
            return
        totp = pyotp.TOTP(ex["totp"])
        # a code is accepted once, within one step of now: take the step after the last used
        step = max(int(time.time() // 30), ex["step"] + 1)
        if step > int(time.time() // 30) + 1:
            gevent.sleep(step * 30 - 30 - time.time() + 0.5)
        ex["step"] = step
        with self.client.post("/v1/exporter/login", name="/v1/exporter/login", catch_response=True,
                              json={"email": ex["email"], "password": ex["password"],
                                    "code": totp.at(step * 30)}) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")
                return
            self.auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

    @task
    def follow(self) -> None:
        if not self.auth or not World.applications:
            return
        app_id = random.choice(World.applications)
        with self.client.get(f"/v1/exporter/applications/{app_id}", headers=self.auth,
                             name="/v1/exporter/applications/[id]", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")
        with self.client.get(f"/v1/exporter/applications/{app_id}/results", headers=self.auth,
                             name="/v1/exporter/applications/[id]/results",
                             catch_response=True) as r:
            if r.status_code == 409 and "round_open" in r.text:
                r.success()  # results come after the close
            elif r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")


# ----------------------------------------------------------------------------- shape, guard
class IgeShape(LoadTestShape):
    """ramp / steady / spike over -u (peak users), -r (spawn rate) and -t (run time)."""

    abstract = _shape_choice() not in scenario.SHAPES
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options if self.runner else None
        kind = (getattr(opts, "load_shape", None) or _shape_choice()) if opts else _shape_choice()
        peak = int(getattr(opts, "num_users", None) or 10)
        rate = float(getattr(opts, "spawn_rate", None) or 5)
        duration = float(getattr(opts, "run_time", None) or 60)
        # locust's get_run_time is unannotated
        run_time: float = self.get_run_time()  # type: ignore[no-untyped-call]
        stage = scenario.shape_at(kind, run_time, duration, peak, rate)
        return None if stage is None else (stage.users, stage.spawn_rate)


@_listener(events.test_start)
def _guard(environment: Environment, **_kw: Any) -> None:
    World.stopping = False
    if isinstance(environment.runner, WorkerRunner):
        return
    limit = float(getattr(environment.parsed_options, "max_fail_ratio", 0.01) or 0.01)

    def watch() -> None:
        while (environment.runner is not None
               and environment.runner.state not in ("stopped", "quitting")):
            gevent.sleep(1)
            total = environment.stats.total
            if total.num_requests >= 50 and total.fail_ratio > limit:
                log.error("failure ratio %.1f%% is above %.1f%%: stopping the run",
                          total.fail_ratio * 100, limit * 100)
                environment.process_exit_code = 1
                environment.runner.quit()
                return

    gevent.spawn(watch)


@_listener(events.test_stopping)
def _stop_streams(environment: Environment, **_kw: Any) -> None:
    streams = list(World.streams.values())
    for s in streams:
        s.verify()
    deadline = time.monotonic() + 5
    while any(s.verifying for s in streams) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    World.stopping = True
    for s in list(World.streams.values()):
        s.close()
    World.streams.clear()
