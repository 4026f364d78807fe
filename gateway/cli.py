"""The ``ige`` command: serve, demo (what ``make run`` starts), migrate, admin.

Logs are JSON lines on stderr (``gateway.logs``) at the level of ``IGE_LOG_LEVEL``. ``serve`` and
``demo`` give their processes one directory for the metrics of all of them
(``PROMETHEUS_MULTIPROC_DIR``, ``metrics_directory``). This module imports neither
``prometheus_client`` nor the app at import time: the directory must be set first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gateway import logs
from gateway.redis_server import RedisServer
from gateway.settings import ConfigError, Settings, parse_roles

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


PRIVATE_PREFIX = "ige-metrics-"


@contextlib.contextmanager
def metrics_directory() -> Iterator[str]:
    """The directory every server process writes its metrics to, in the environment the
    processes inherit: the one ``PROMETHEUS_MULTIPROC_DIR`` names (the operator's, used as it
    is: empty it between runs), else a new private one under the system's temporary directory,
    removed at exit (and, should this process be killed, by the next one that starts)."""
    given = os.environ.get(MULTIPROC_DIR)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        yield given
        return
    _remove_orphans()
    # new, empty, private (0700); named after this process so an orphan can be recognised
    made = tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-")
    os.environ[MULTIPROC_DIR] = made
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_DIR, None)
        shutil.rmtree(made, ignore_errors=True)


def _remove_orphans() -> None:
    """Private metrics directories whose server process is gone (it was killed)."""
    for d in Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*-*"):
        pid = d.name.removeprefix(PRIVATE_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and d.is_dir() \
                and d.stat().st_uid == os.getuid():
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Terminated(Exception):
    """SIGTERM, after uvicorn's graceful shutdown (it raises the signal again once done)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def raise_fd_limit() -> tuple[int, int]:
    """The soft limit on open descriptors raised to the hard one (inherited by uvicorn's worker
    processes): a server holding many connections should not stop at a default such as 1024.
    Returns the limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    raise_fd_limit()

    # uvicorn imports the app in every worker process, which reads IGE_ROLES (and
    # PROMETHEUS_MULTIPROC_DIR) from the environment they inherit; they apply the same logging
    # configuration (log_config), uvicorn's loggers at the root's level (log_level None)
    level = logs.level_of(os.environ.get("IGE_LOG_LEVEL"))
    terminated = False
    with metrics_directory():
        # uvicorn answers SIGTERM with a graceful shutdown, then raises it again under the
        # handler it found: let that be an exception here, so the directory is removed first
        previous = signal.signal(signal.SIGTERM, _terminated)
        try:
            from gateway.contract.limits import STREAM_MAX_FRAME
            from gateway.serving import BoundedWebSocket, WaitingHttp
            bounds = Settings.from_env()
            uvicorn.run("gateway.app:create_app", factory=True, host=host, port=port,
                        workers=workers, log_config=logs.dict_config(level), log_level=None,
                        ws_max_size=STREAM_MAX_FRAME, ws_ping_interval=20, ws_ping_timeout=20,
                        access_log=False, lifespan="on", http=WaitingHttp,
                        ws=BoundedWebSocket, timeout_keep_alive=int(bounds.keep_alive_s),
                        h11_max_incomplete_event_size=16 * 1024)
        except _Terminated:
            terminated = True
        finally:
            signal.signal(signal.SIGTERM, previous)
    if terminated:  # what SIGTERM would have done without us (the default: end the process)
        signal.raise_signal(signal.SIGTERM)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"ige: {e}", file=sys.stderr)
        return 2
    from persistence.db import migrate

    if args.role is not None:
        try:
            roles = parse_roles(args.role)
        except ConfigError as e:
            print(f"ige: {e}", file=sys.stderr)
            return 2
        os.environ["IGE_ROLES"] = ",".join(sorted(roles))
    migrate(settings.database_url)
    _serve(args.host, args.port, args.workers)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from persistence.db import migrate

    migrate(os.environ.get("DATABASE_URL", Settings().database_url))
    print("migrations applied")
    return 0


async def _create_bank(code: str, name: str) -> dict[str, object] | None:
    from gateway import bootstrap, views

    rt = bootstrap.build(Settings.from_env({**os.environ, "IGE_DEMO": "1"}))
    try:
        creds = await rt.portal.accounts.create_bank(code, name, "cli")
        return None if creds is None else dict(views.bank_credentials(creds))
    finally:
        await rt.aclose()


def cmd_create_bank(args: argparse.Namespace) -> int:
    from persistence.db import migrate

    migrate(os.environ.get("DATABASE_URL", Settings().database_url))
    creds = asyncio.run(_create_bank(args.code, args.name))
    if creds is None:
        print(f"ige: bank {args.code} already exists", file=sys.stderr)
        return 1
    print(json.dumps(creds, indent=2))
    return 0


async def _unlock_exporter(who: str) -> dict[str, object] | None:
    """Unlock the exporter with this e-mail (with an "@") or user id; None: no such one."""
    from gateway import bootstrap, views
    from usecases.outcomes import Refusal

    rt = bootstrap.build(Settings.from_env({**os.environ, "IGE_DEMO": "1"}))
    try:
        accounts = rt.portal.accounts
        found = await (accounts.exporter(email=who) if "@" in who
                       else accounts.exporter(user_id=who))
        if isinstance(found, Refusal):
            return None
        done = await accounts.unlock(found.id, "cli")
        return None if isinstance(done, Refusal) else dict(views.exporter_account(done))
    finally:
        await rt.aclose()


def cmd_unlock_exporter(args: argparse.Namespace) -> int:
    from persistence.db import migrate

    migrate(os.environ.get("DATABASE_URL", Settings().database_url))
    account = asyncio.run(_unlock_exporter(args.who))
    if account is None:
        print(f"ige: no exporter {args.who}", file=sys.stderr)
        return 1
    print(json.dumps(account, indent=2, ensure_ascii=False))
    return 0


async def _create_operator(email: str, full_name: str) -> dict[str, object] | None:
    from gateway import bootstrap, views
    from usecases.outcomes import Refusal

    rt = bootstrap.build(Settings.from_env({**os.environ, "IGE_DEMO": "1"}))
    try:
        made = await rt.portal.operators.create(email, full_name, "cli")
        return None if isinstance(made, Refusal) else dict(views.operator_created(made))
    finally:
        await rt.aclose()


def cmd_create_operator(args: argparse.Namespace) -> int:
    from gateway.contract import fields as F
    from persistence.db import migrate

    try:
        email, name = F.email_address(args.email), F.plain_text(200)(args.full_name)
    except ValueError as e:
        print(f"ige: {e}", file=sys.stderr)
        return 2
    migrate(os.environ.get("DATABASE_URL", Settings().database_url))
    made = asyncio.run(_create_operator(email, name))
    if made is None:
        print(f"ige: an operator with the e-mail {args.email} exists", file=sys.stderr)
        return 1
    print(json.dumps(made, indent=2, ensure_ascii=False))
    return 0


# ----------------------------------------------------------------------------- demo
LOCK_FILE = "demo.lock"
#: what ``--fresh`` removes from the data directory (the demo's own database, Redis, secrets)
FRESH_FILES = ("ige.db", "ige.db-wal", "ige.db-shm", "demo-credentials.json",
               "demo-secrets.json")


class Refused(Exception):
    """The demo cannot start: the reason, for its operator."""


@contextlib.contextmanager
def holding(var: Path, url: str) -> Iterator[None]:
    """This process holds the data directory (an exclusive ``flock`` on its lock file, gone
    with the process however it ends): a second ``ige demo`` on it refuses at once, naming the
    process that holds it, before it starts anything (a second Redis on the same AOF, say)."""
    path = var / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        try:
            holder = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        pid = holder.get("pid")
        who = (f"ige demo process {pid} serving {holder.get('url', '?')}" if pid
               else "another ige demo")
        stop = f"Ctrl-C in its terminal, or kill {pid}" if pid else "Ctrl-C in its terminal"
        raise Refused(f"the data directory {var} is in use by {who}: stop it first ({stop}), "
                      "or run another demo with its own DATA_DIR=... and PORT=...") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "url": url}).encode())
        yield
    finally:
        os.close(fd)


def port_owner(host: str, port: int) -> str | None:
    """Who listens on the port: "process <pid> (<name>)" when the system says, else None."""
    try:
        import psutil

        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return f"process {c.pid} ({psutil.Process(c.pid).name()})"
    except Exception:  # noqa: BLE001 - psutil absent, or not allowed to look: just say "in use"
        return None
    return None


def check_port(host: str, port: int) -> None:
    """Refuse now, before anything starts, when the port is taken (uvicorn would find out only
    after the application had started, and hang in its shutdown)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            owner = port_owner(host, port)
            raise Refused(f"port {port} on {host} is in use"
                          + (f" by {owner}" if owner else "")
                          + f": stop it, or choose another port: PORT={port + 1} make run "
                            f"(ige demo --port {port + 1})") from None


def start_over(var: Path) -> list[str]:
    """``--fresh``: remove the demo's database, Redis data and credentials from the data
    directory (never a database or Redis of one's own: refused when DATABASE_URL or REDIS_URL
    is set)."""
    own = [k for k in ("DATABASE_URL", "REDIS_URL") if k in os.environ]
    if own:
        raise Refused(f"--fresh starts over only with the demo's own SQLite and Redis in {var}; "
                      f"{' and '.join(own)} name(s) your own: reset them yourself")
    removed = [name for name in FRESH_FILES if (var / name).exists()]
    for name in removed:
        (var / name).unlink()
    if (var / "redis").exists():
        shutil.rmtree(var / "redis")
        removed.append("redis/")
    return removed


def cmd_demo(args: argparse.Namespace) -> int:
    """Start everything with demo data: private Redis (unless REDIS_URL), SQLite file
    (unless DATABASE_URL), migrations, seed, serve. Ctrl-C stops what it started."""
    var = Path(args.data_dir).resolve()
    var.mkdir(parents=True, exist_ok=True)
    base = f"http://{args.host}:{args.port}"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(holding(var, base))
            check_port(args.host, args.port)
            removed = start_over(var) if args.fresh else None
        except Refused as e:
            print(f"ige demo: {e}", file=sys.stderr)
            return 1
        if removed is not None:
            print(f"Starting over: removed {', '.join(removed) or 'nothing (no demo data)'} "
                  f"from {var}", flush=True)
        return _run_demo(args, var, base)
    raise AssertionError("unreachable")


def _run_demo(args: argparse.Namespace, var: Path, base: str) -> int:
    from gateway.demo import banner_lines, seed

    secrets_file = var / "demo-secrets.json"
    sec = json.loads(secrets_file.read_text()) if secrets_file.exists() else {
        "admin_token": "demo-admin-" + secrets.token_urlsafe(18),
        "secret_key": secrets.token_urlsafe(32)}
    secrets_file.write_text(json.dumps(sec))
    os.environ.setdefault("IGE_ADMIN_TOKEN", sec["admin_token"])
    os.environ.setdefault("IGE_SECRET_KEY", sec["secret_key"])
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{var / 'ige.db'}")
    os.environ["IGE_DEMO"] = "1"
    redis_srv: RedisServer | None = None
    if "REDIS_URL" not in os.environ:
        redis_srv = RedisServer(var / "redis").start()
        os.environ["REDIS_URL"] = redis_srv.url
    try:
        settings = Settings.from_env()
        from persistence.db import migrate

        migrate(settings.database_url)
        creds_file = var / "demo-credentials.json"
        known = json.loads(creds_file.read_text()) if creds_file.exists() else {}
        seeded = asyncio.run(seed(settings, known))
        saved = seeded.saved
        creds_file.write_text(json.dumps(saved, indent=2, ensure_ascii=False))
        print("\n=== IGE Kefalet Portalı bidding server (demo) ===")
        print(f"API        {base}   docs {base}/docs   schema {base}/v1/openapi.json")
        print(f"Redis      {os.environ['REDIS_URL']}  (AOF appendfsync always)")
        print(f"Database   {settings.database_url}")
        print(f"Admin      Authorization: Bearer {settings.admin_token}")
        for code, c in saved.get("banks", {}).items():
            print(f"Bank {code:8s} client_id={c['client_id']}  client_secret={c['client_secret']}")
        if "exporter" in saved:
            e = saved["exporter"]
            print(f"Exporter   {e['email']} / {e['password']}  TOTP {e['totp_uri']}")
        print(f"Pages      {base}/desk  (bank desk: log in with an e-mail, its password and a "
              "one-time code of its TOTP secret, e.g. python -c \"import pyotp; "
              "print(pyotp.parse_uri('<TOTP URI>').now())\" or any authenticator app)")
        for d in saved.get("desk_users", {}).values():
            print(f"Desk {d['bank']:8s} {d['email']} / {d['password']}  ({d['role']})  "
                  f"TOTP {d['totp_uri']}")
        if "operator" in saved:
            o = saved["operator"]
            print(f"Console    {base}/operator  (the operator's console: rounds, audit, banks, "
                  "decision records)")
            print(f"Operator   {o['email']} / {o['password']}  TOTP {o['totp_uri']}")
        print(f"Pages      {base}/exporter  (the exporter's pages: the demo exporter above, "
              "or register a new one there)")
        print(f"(credentials also in {creds_file}; they survive restarts: make reset starts "
              "over)")
        for line in banner_lines(seeded, settings):
            print(line)
        print(flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        _serve(args.host, args.port, args.workers)
    except KeyboardInterrupt:
        pass
    finally:
        if redis_srv is not None:
            redis_srv.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        level = logs.level_of(os.environ.get("IGE_LOG_LEVEL"))
    except ValueError as e:
        print(f"ige: {e}", file=sys.stderr)
        return 2
    logs.configure(level)
    p = argparse.ArgumentParser(
        prog="ige", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Logs: JSON lines on stderr. IGE_LOG_LEVEL=DEBUG | INFO (the default: a line per "
               "request and per background action: round opened, closed with its reference "
               "number, lapsed, offer accepted...) | WARNING (only what needs attention) | "
               "ERROR | CRITICAL. README.md, 'Metrics and logs', lists every line.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the gateway (HTTP + WebSocket)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1,
                   help="processes (each with the roles of --role)")
    s.add_argument("--role", default=None,
                   help="comma-separated: api (HTTP), stream (WebSocket), worker (closing, "
                        "lapsing, persisting); default all three (also IGE_ROLES)")
    s.set_defaults(func=cmd_serve)
    d = sub.add_parser("demo", help="start everything with demo data (make run)")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--workers", type=int, default=1)
    d.add_argument("--data-dir", default="var")
    d.add_argument("--fresh", action="store_true",
                   help="start over: remove the demo's database, Redis data and credentials "
                        "in the data directory first (make reset)")
    d.set_defaults(func=cmd_demo)
    m = sub.add_parser("migrate", help="apply database migrations")
    m.set_defaults(func=cmd_migrate)
    a = sub.add_parser("admin", help="operator commands")
    asub = a.add_subparsers(dest="admin_cmd", required=True)
    cb = asub.add_parser("create-bank", help="register a partner bank, print its credentials")
    cb.add_argument("code")
    cb.add_argument("name")
    cb.set_defaults(func=cmd_create_bank)
    ue = asub.add_parser("unlock-exporter",
                         help="clear an exporter's failed logins (a locked account logs in "
                              "again); audited")
    ue.add_argument("who", help="the exporter's e-mail address or user id")
    ue.set_defaults(func=cmd_unlock_exporter)
    co = asub.add_parser("create-operator",
                         help="an operator with a console login (/operator): prints the "
                              "one-time activation code")
    co.add_argument("email")
    co.add_argument("full_name")
    co.set_defaults(func=cmd_create_operator)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
