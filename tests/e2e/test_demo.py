"""``make run`` as a new user meets it (``ige demo`` on a data directory of its own): the demo
is true on every start, says what it did, lists its open rounds, refuses a second start at once,
and ``--fresh`` starts over.

Each of these once went wrong: the demo exporter's application list was empty, a restart with
``IGE_ROUND_DURATION=PT2M`` made no short rounds, the banner listed no rounds, and a second
``make run`` started a second Redis on the same data and then hung.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import websockets

from gateway.redis_server import free_port
from tests.support import ROOT, checked_client

pytestmark = pytest.mark.slow

RUN = [sys.executable, "-m", "gateway.cli", "demo", "--host", "127.0.0.1"]


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    port: int
    data: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self) -> None:
        """What Ctrl-C does in make run's terminal."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("the demo did not stop on Ctrl-C") from None


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if not k.startswith("IGE_") and k not in ("DATABASE_URL", "REDIS_URL")}
    out.update(IGE_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", **extra)
    return out


def start(data: Path, port: int, *flags: str, **extra: str) -> Demo:
    n = len(list(data.parent.glob(f"{data.name}-out-*")))
    out, err = data.parent / f"{data.name}-out-{n}", data.parent / f"{data.name}-err-{n}"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([*RUN, "--port", str(port), "--data-dir", str(data), *flags],
                                env=env(**extra), cwd=ROOT, stdout=o, stderr=e,
                                start_new_session=True)
    demo = Demo(proc, out, err, port, data)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the demo exited: {demo.text()}\n{err.read_text()[-3000:]}")
        if "=== IGE" in demo.text():
            try:
                if httpx.get(demo.base + "/readyz", timeout=1).status_code == 200:
                    return demo
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    demo.stop()
    raise AssertionError(f"the demo did not come up: {demo.text()}")


def credentials(data: Path) -> dict[str, Any]:
    return dict(json.loads((data / "demo-credentials.json").read_text()))


def admin(data: Path) -> dict[str, str]:
    token = json.loads((data / "demo-secrets.json").read_text())["admin_token"]
    return {"Authorization": f"Bearer {token}"}


def exporter_headers(http: httpx.Client, data: Path) -> dict[str, str]:
    e = credentials(data)["exporter"]
    code = pyotp.TOTP(pyotp.parse_uri(e["totp_uri"]).secret).now()
    r = http.post("/v1/exporter/login", json={"email": e["email"], "password": e["password"],
                                               "code": code})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def open_rounds(banner: str) -> list[str]:
    return [ln.split()[0] for ln in banner.splitlines() if ln.startswith("  rnd_")]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "var"


def test_the_demo_is_true_on_every_start_and_says_what_it_did(data: Path) -> None:
    port = free_port()
    first = start(data, port)
    try:
        banner = first.text()
        assert "opened 3 fresh demo round(s) with these rules" in banner
        assert "business days after they open" in banner
        rounds = open_rounds(banner)
        assert len(rounds) == 3 and banner.count("  (new)") == 3
        http = checked_client(base_url=first.base, timeout=30)
        mine = http.get("/v1/exporter/applications",
                        headers=exporter_headers(http, data)).json()["applications"]
        # the three demo rounds are the demo exporter's applications, decided by the operator
        assert sorted(a["round"]["round_id"] for a in mine) == sorted(rounds)
        assert {a["decision"]["decided_by"] for a in mine} == {"operator"}
        for a in mine:
            assert f"application {a['application_id']}" in banner
            seen = http.get(f"/v1/admin/applications/{a['application_id']}", headers=admin(data))
            assert seen.status_code == 200 and seen.json()["decision"]["reasons"][0][
                "code"] == "operator_intake"
        assert "exporter exporter@demo.example" in banner
        # what the demo opened is logged (ids only)
        opened = [json.loads(ln) for ln in first.err.read_text().splitlines()
                  if '"round_opened"' in ln]
        assert sorted(ln["round_id"] for ln in opened) == sorted(rounds)
        assert all(ln["source"] == "demo" for ln in opened)
    finally:
        first.stop()

    # a restart with short rounds opens short rounds, and says so; the others stay open;
    # the credentials survive it
    token, creds = admin(data), credentials(data)
    short = start(data, port, IGE_ROUND_DURATION="PT2M", IGE_BINDING_DURATION="PT5M")
    try:
        assert admin(data) == token and credentials(data) == creds
        assert "they survive restarts" in short.text()
        banner = short.text()
        assert "rounds last 2 min (IGE_ROUND_DURATION); offers bind 5 min" in banner
        assert "opened 3 fresh demo round(s) with these rules" in banner
        assert "(the open ones had other deadlines)" in banner
        now_open = open_rounds(banner)
        assert len(now_open) == 6 and set(rounds) <= set(now_open)
        http = checked_client(base_url=short.base, timeout=30)
        bank = credentials(data)["banks"]["ZIRAAT"]
        token = http.post("/v1/oauth/token", data={
            "grant_type": "client_credentials", "client_id": bank["client_id"],
            "client_secret": bank["client_secret"]}).json()["access_token"]
        pool = http.get("/v1/bank/rounds", headers={"Authorization": f"Bearer {token}"}).json()
        soon = [r for r in pool["rounds"] if r["round_id"] not in rounds]
        assert len(soon) == 3
        for r in soon:  # two minutes from now
            left = (_epoch(r["closes_at"]) - time.time())
            assert 60 < left <= 125, r
    finally:
        short.stop()

    # the same rules again: nothing new, and the banner says it kept them
    again = start(data, port, IGE_ROUND_DURATION="PT2M", IGE_BINDING_DURATION="PT5M")
    try:
        assert "3 demo rounds already open with these rules: kept" in again.text()
        assert "(new)" not in again.text()
    finally:
        again.stop()


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_a_second_start_refuses_at_once_and_starts_nothing(data: Path, tmp_path: Path) -> None:
    port = free_port()
    first = start(data, port)
    try:
        aof_before = sorted(p.name for p in (data / "redis").rglob("*"))
        began = time.monotonic()
        second = subprocess.run([*RUN, "--port", str(free_port()), "--data-dir", str(data)],
                                env=env(), cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert time.monotonic() - began < 10
        assert second.returncode == 1
        assert f"the data directory {data} is in use by ige demo process {first.proc.pid} " \
               f"serving {first.base}" in second.stderr
        assert "=== IGE" not in second.stdout
        assert sorted(p.name for p in (data / "redis").rglob("*")) == aof_before
        # another data directory, the same port: the port is named, and who holds it
        other = subprocess.run([*RUN, "--port", str(port), "--data-dir",
                                str(tmp_path / "other")], env=env(), cwd=ROOT,
                               capture_output=True, text=True, timeout=30)
        assert other.returncode == 1
        assert f"port {port} on 127.0.0.1 is in use" in other.stderr
        assert not (tmp_path / "other" / "redis").exists()
        # the first one never noticed
        assert httpx.get(first.base + "/readyz", timeout=5).status_code == 200
    finally:
        first.stop()
    assert first.proc.returncode == 0


def test_fresh_starts_over(data: Path) -> None:
    port = free_port()
    first = start(data, port)
    token, creds = admin(data), credentials(data)
    first.stop()
    fresh = start(data, port, "--fresh")
    try:
        assert "Starting over: removed ige.db" in fresh.text()
        assert admin(data) != token and credentials(data) != creds  # new credentials
        assert len(open_rounds(fresh.text())) == 3
        http = checked_client(base_url=fresh.base, timeout=30)
        assert http.get("/v1/admin/banks", headers=token).status_code == 401
        assert len(http.get("/v1/admin/banks", headers=admin(data)).json()["banks"]) == 5
    finally:
        fresh.stop()
    # never someone's own database
    own = subprocess.run([*RUN, "--port", str(port), "--data-dir", str(data), "--fresh"],
                         env={**env(), "DATABASE_URL": f"sqlite:///{data / 'mine.db'}"},
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert own.returncode == 1 and "DATABASE_URL name(s) your own" in own.stderr
    assert (data / "ige.db").exists()


def _desk_login(base: str, user: dict[str, Any], steps: tuple[int, ...] = (1,),
                part: str = "desk", home: str = "/desk/rounds") -> httpx.Client:
    """Sign in on the page as a person does (the form's CSRF token, password, a TOTP code).
    A code is accepted once: a person signing in again takes another time step's code
    (``steps``: the first of them not used yet, of -1, 0 and 1). ``part``: the desk's sign-in,
    or the console's (``operator``, whose home is ``/operator``)."""
    page = httpx.Client(base_url=base, timeout=30)
    for step in steps:
        form = page.get(f"/{part}/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert form.status_code == 200 and csrf is not None
        code = pyotp.TOTP(pyotp.parse_uri(user["totp_uri"]).secret).at(time.time() + 30 * step)
        r = page.post(f"/{part}/login", data={"csrf": csrf.group(1), "email": user["email"],
                                             "password": user["password"], "code": code})
        if r.status_code == 401 and step != steps[-1]:
            continue
        assert r.status_code == 303 and r.headers["location"] == home, r.text
        return page
    raise AssertionError("no step left")


def test_the_demo_has_desk_traders_of_two_banks_and_an_operator_whose_pages_are_not_empty(
        data: Path) -> None:
    demo = start(data, free_port())
    try:
        banner = demo.text()
        assert f"Pages      {demo.base}/desk" in banner
        assert f"Pages      {demo.base}/exporter" in banner
        desk = credentials(data)["desk_users"]
        assert {d["bank"] for d in desk.values()} == {"ZIRAAT", "HALKB"}
        for d in desk.values():
            assert f"Desk {d['bank']:8s} {d['email']} / {d['password']}" in banner
            assert d["totp_uri"] in banner
        rounds = open_rounds(banner)
        for d in desk.values():
            page = _desk_login(demo.base, d)
            pool = page.get("/desk/rounds").text
            assert all(f'data-round="{rid}"' in pool for rid in rounds)
            assert "Anadolu Tekstil" in pool and "Karadeniz Gıda" in pool
            one = page.get(f"/desk/rounds/{rounds[0]}").text
            if d["bank"] == "HALKB":  # it offered in every demo round: its book is there
                assert 'class="mine"' in one and "data-ref=" in one
            else:  # ZIRAAT offered in none: "offer to see the book", no book
                assert 'id="book-locked" class="notice">' in one and "data-ref=" not in one
        # the operator's console: its URL and login in the banner, every page with data
        op = credentials(data)["operator"]
        assert f"Console    {demo.base}/operator" in banner
        assert f"Operator   {op['email']} / {op['password']}  TOTP {op['totp_uri']}" in banner
        console = _desk_login(demo.base, op, part="operator", home="/operator")
        dash = console.get("/operator").text
        assert '<li class="count-card" data-state="open">' in dash
        assert f'<span class="count-n">{len(rounds)}</span>' in dash
        listed = console.get("/operator/rounds?state=open").text
        assert all(f"/operator/rounds/{rid}" in listed for rid in rounds)
        one = console.get(f"/operator/rounds/{rounds[0]}").text
        assert 'class="bank-name"' in one and "round_opened" in one
        audit = console.get("/operator/audit").text
        assert 'id="audit-rows"' in audit and "bank_created" in audit
        banks = console.get("/operator/banks").text
        assert banks.count('class="card bank"') == 5 and "desk@ziraat.demo.example" in banks
        apps = console.get("/operator/applications").text
        app_id = re.search(r'href="/operator/applications/(app_[A-Za-z0-9_-]+)"', apps)
        assert app_id is not None
        record = console.get(f"/operator/applications/{app_id.group(1)}")
        assert record.status_code == 200 and 'id="package-version"' in record.text
    finally:
        demo.stop()


async def _next_close(ws: Any, within_s: float) -> int | None:
    """The close code the server sends within ``within_s`` (heartbeats read and dropped);
    None when the connection is still open then."""
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            await asyncio.wait_for(ws.recv(), max(0.05, deadline - time.monotonic()))
    except TimeoutError:
        return None
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else -1
    return None


def _desk_ticket(page: httpx.Client) -> str:
    """A stream ticket as the page's script takes it (the session's CSRF token)."""
    csrf = re.search(r'<meta name="csrf" content="([^"]+)">', page.get("/desk/rounds").text)
    assert csrf is not None
    page.headers["X-CSRF-Token"] = csrf.group(1)
    t = page.post("/desk/ticket")
    assert t.status_code == 201, t.text
    return str(t.json()["ticket"])


def _deactivate(demo: Demo, data: Path, email: str) -> None:
    """The operator deactivates the desk user with this e-mail (the admin API)."""
    bank = next(b for b in httpx.get(demo.base + "/v1/admin/banks",
                                     headers=admin(data)).json()["banks"]
                if b["bank_code"] == "ZIRAAT")
    users = httpx.get(f"{demo.base}/v1/admin/banks/{bank['bank_id']}/users",
                      headers=admin(data)).json()["users"]
    user_id = next(u["user_id"] for u in users if u["email"] == email)
    gone = httpx.post(f"{demo.base}/v1/admin/banks/{bank['bank_id']}/users/{user_id}"
                      "/deactivate", headers=admin(data))
    assert gone.status_code == 200, gone.text


async def test_a_pages_live_stream_ends_with_its_browser_session(data: Path) -> None:
    """A desk page's WebSocket lives as long as the browser session it was opened from:
    signing out closes that browser's (4401) and not another browser's of the same person;
    deactivating the person closes every one."""
    demo = await asyncio.to_thread(start, data, free_port(), IGE_HEARTBEAT_SECONDS="0.5")
    try:
        d = credentials(data)["desk_users"]
        user = next(u for u in d.values() if u["bank"] == "ZIRAAT")
        browsers = [await asyncio.to_thread(_desk_login, demo.base, user, (1, 0, -1))
                    for _ in range(2)]  # two browsers, one person
        socks = []
        for page in browsers:
            ticket = await asyncio.to_thread(_desk_ticket, page)
            socks.append(await websockets.connect(
                f"ws://127.0.0.1:{demo.port}/v1/stream?ticket={ticket}",
                subprotocols=["ige.v1.json"]))
        assert [await _next_close(ws, 1.5) for ws in socks] == [None, None]
        out = await asyncio.to_thread(browsers[0].post, "/desk/logout",
                                      data={"csrf": browsers[0].headers["X-CSRF-Token"]})
        assert out.status_code == 303, out.text
        assert await _next_close(socks[0], 5) == 4401
        assert await _next_close(socks[1], 1.5) is None  # the other browser's: still live
        await asyncio.to_thread(_deactivate, demo, data, user["email"])
        assert await _next_close(socks[1], 5) == 4401
        again = await asyncio.to_thread(browsers[1].get, "/desk/rounds")
        assert again.status_code == 303  # to the sign-in
        for ws in socks:
            await ws.close()
    finally:
        await asyncio.to_thread(demo.stop)
