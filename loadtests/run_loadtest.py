"""``make loadtest``: one bounded, headless locust run that stops by itself.

Without ``BASE_URL`` it starts its own stack (private durable Redis, SQLite, ``ige serve``) and
stops it afterwards; with ``BASE_URL`` (and ``IGE_ADMIN_TOKEN``) it loads that server instead.
Reports (CSV, HTML) go to ``var/loadtest/``. Knobs: LOAD_USERS (50), LOAD_SPAWN_RATE (10),
LOAD_RUN_TIME (60s), LOAD_SHAPE (steady | ramp | spike), and the scenario's own LOAD_* (see
loadtests/locustfile.py). The exit code is locust's: non-zero on any failed request."""

from __future__ import annotations

import os
import subprocess
import sys

from loadtests.local_server import ROOT, LocalStack


def run(base_url: str, admin_token: str) -> int:
    out = ROOT / "var" / "loadtest"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "IGE_ADMIN_TOKEN": admin_token}
    env.setdefault("LOAD_SHAPE", "steady")
    env.setdefault("LOAD_EXPORTER", "self")
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
           "--headless", "-u", os.environ.get("LOAD_USERS", "50"),
           "-r", os.environ.get("LOAD_SPAWN_RATE", "10"),
           "-t", os.environ.get("LOAD_RUN_TIME", "60s"), "--host", base_url,
           "--csv", str(out / "run"), "--html", str(out / "report.html"),
           "--exit-code-on-error", "1", "--stop-timeout", "10", "--only-summary"]
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    print(f"reports: {out}/run_stats.csv, {out}/report.html (exit code {rc})")
    return rc


def main() -> int:
    base = os.environ.get("BASE_URL")
    if base:
        token = os.environ.get("IGE_ADMIN_TOKEN", "")
        if not token:
            print("BASE_URL is set: IGE_ADMIN_TOKEN must be its operator token", file=sys.stderr)
            return 2
        return run(base, token)
    with LocalStack(data_dir=ROOT / "var" / "loadtest" / "stack") as stack:
        print(f"started {stack.base_url} (Redis {stack.redis.url if stack.redis else '?'}, "
              f"{stack.database_url})", flush=True)
        return run(stack.base_url, stack.admin_token)


if __name__ == "__main__":
    sys.exit(main())
