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
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _serve(host: str, port: int, workers: int) -> None:
    import uvicorn

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
            from gateway.serving import BoundedHttp, BoundedWebSocket
            bounds = Settings.from_env()
            uvicorn.run("gateway.app:create_app", factory=True, host=host, port=port,
                        workers=workers, log_config=logs.dict_config(level), log_level=None,
                        ws_max_size=64 * 1024, ws_ping_interval=20, ws_ping_timeout=20,
                        access_log=False, lifespan="on", http=BoundedHttp,
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


# ----------------------------------------------------------------------------- demo
DEMO_BANKS = [
    ("ZIRAAT", "T.C. Ziraat Bankası"), ("HALKB", "Türkiye Halk Bankası"),
    ("VAKIF", "Türkiye Vakıflar Bankası"), ("ISBANK", "Türkiye İş Bankası"),
    ("GARANTI", "Garanti BBVA"),
]
DEMO_ROUNDS: list[dict[str, Any]] = [
    dict(company={"name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
                  "sector": "textiles", "contact": {"name": "Ayşe Yılmaz",
                                                    "email": "ayse@anadolutekstil.example",
                                                    "phone": "+905321234567"}},
         loan_type="working_capital", currency="TRY", loan_amount=500_000_000,
         guarantee_amount=500_000_000, tenor_months=24, grace_months=6, export_commitment=True,
         assessment={"score": 72, "band": "B"}),
    dict(company={"name": "Ege Makina San. Ltd.", "tax_id": "9876543217", "is_sme": False,
                  "sector": "machinery", "contact": {"name": "Mehmet Demir",
                                                     "email": "mehmet@egemakina.example",
                                                     "phone": "+905339876543"}},
         loan_type="investment", currency="USD", loan_amount=250_000_000,
         guarantee_amount=200_000_000, tenor_months=60, grace_months=12, export_commitment=False,
         assessment={"score": 64, "band": "C"}),
    dict(company={"name": "Karadeniz Gıda A.Ş.", "tax_id": "1111111114", "is_sme": True,
                  "sector": "food", "contact": {"name": "Zeynep Kaya",
                                                "email": "zeynep@karadenizgida.example",
                                                "phone": "+905051112233"}},
         loan_type="working_capital", currency="EUR", loan_amount=80_000_000,
         guarantee_amount=68_000_000, tenor_months=12, grace_months=3, export_commitment=True,
         assessment={"score": 81, "band": "A"}),
]
DEMO_EXPORTER = {"email": "exporter@demo.example", "password": "demo-password-1",
                 "full_name": "Demo İhracatçı", "national_id": "10000000146",
                 "mobile": "+905551112233"}


async def seed_demo(settings: Settings, saved: dict[str, Any]) -> dict[str, Any]:
    """Five banks, a demo exporter, three open rounds with a few offers. Idempotent."""
    from gateway import bootstrap, views
    from usecases.accounts import NewExporter, Registered
    from usecases.bidding import OfferDraft
    from usecases.opening import RoundRequest
    from usecases.security import new_id

    rt = bootstrap.build(settings)
    portal = rt.portal
    try:
        await portal.durability.ensure_book()
        banks = saved.setdefault("banks", {})
        existing = {b.code for b in await portal.accounts.banks()}
        for code, name in DEMO_BANKS:
            if code not in existing:
                created = await portal.accounts.create_bank(code, name, "demo")
                if created:
                    banks[code] = views.bank_credentials(created)
        if "exporter" not in saved:
            reg = await portal.accounts.register(NewExporter(
                DEMO_EXPORTER["email"], DEMO_EXPORTER["full_name"],
                DEMO_EXPORTER["national_id"], DEMO_EXPORTER["mobile"],
                DEMO_EXPORTER["password"]), activated=True)
            if isinstance(reg, Registered):
                saved["exporter"] = {**DEMO_EXPORTER, "user_id": reg.user_id,
                                     "totp_uri": reg.totp_uri}
        open_rounds = await portal.operator.rounds("open", 10)
        if len(open_rounds) < 3:
            all_banks = await portal.accounts.banks()
            exporter_id = saved.get("exporter", {}).get("user_id")
            for i, spec in enumerate(DEMO_ROUNDS[len(open_rounds):]):
                t = await portal.opening.open_round(RoundRequest(
                    **spec, exporter_user_id=exporter_id, application_id=new_id("app")), "demo")
                for j, bank in enumerate(all_banks[: 2 + i]):
                    await portal.bidding.submit(bank.id, t.round_id, OfferDraft({
                        "annual_rate": 38_0000 + 2500 * j - 5000 * i,
                        "amount": t.loan_amount, "tenor_months": t.tenor_months,
                        "grace_months": t.grace_months, "repayment_every_months": 3,
                        "upfront_fee": 0, "assumes_export_commitment": t.export_commitment,
                        "conditions": "demo offer"}), None)
        return saved
    finally:
        await rt.aclose()


def cmd_demo(args: argparse.Namespace) -> int:
    """Start everything with demo data: private Redis (unless REDIS_URL), SQLite file
    (unless DATABASE_URL), migrations, seed, serve. Ctrl-C stops what it started."""
    var = Path(args.data_dir).resolve()
    var.mkdir(parents=True, exist_ok=True)
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
        saved = asyncio.run(seed_demo(settings, known))
        creds_file.write_text(json.dumps(saved, indent=2, ensure_ascii=False))
        base = f"http://{args.host}:{args.port}"
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
        print(f"(credentials also in {creds_file})\n", flush=True)
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
    p = argparse.ArgumentParser(prog="ige", description=__doc__)
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
    d.set_defaults(func=cmd_demo)
    m = sub.add_parser("migrate", help="apply database migrations")
    m.set_defaults(func=cmd_migrate)
    a = sub.add_parser("admin", help="operator commands")
    asub = a.add_subparsers(dest="admin_cmd", required=True)
    cb = asub.add_parser("create-bank", help="register a partner bank, print its credentials")
    cb.add_argument("code")
    cb.add_argument("name")
    cb.set_defaults(func=cmd_create_bank)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
