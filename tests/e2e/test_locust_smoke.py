"""CI smoke of the locust scenario: a real server, locust headless for 20 s, no error allowed.

The scenario sets itself up through the admin API, bids, revises, reads books, keeps one
WebSocket per bank and polls an exporter's results; any failed request (HTTP or stream:
a seq gap, a stream error, a disconnect) makes locust exit non-zero."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ADMIN_TOKEN, ROOT

pytestmark = pytest.mark.slow


def test_locust_scenario_runs_twenty_seconds_without_a_single_error(
        server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IGE_", "LOAD_", "LOCUST_"))}
    env.update(IGE_ADMIN_TOKEN=ADMIN_TOKEN, LOAD_BANKS="4", LOAD_ROUNDS="6", LOAD_THINK="0.2,0.6",
               LOAD_EXPORTER="self", LOAD_MAX_FAIL_RATIO="0.001", PYTHONUNBUFFERED="1")
    prefix = tmp_path / "smoke"
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
         "--headless", "-u", "8", "-r", "8", "-t", "20s", "--host", srv.base_url,
         "--csv", str(prefix), "--exit-code-on-error", "1", "--stop-timeout", "5",
         "--only-summary", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    with open(f"{prefix}_stats.csv") as stats:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(stats)}
    agg = rows[("", "Aggregated")]
    assert int(agg["Failure Count"]) == 0, out[-4000:]
    assert int(rows[("POST", "/v1/bank/rounds/[id]/offers")]["Request Count"]) > 0
    assert int(rows[("PUT", "/v1/bank/rounds/[id]/offers/[offer_id]")]["Request Count"]) > 0
    # other banks' quotes reached the streams, and were timed
    assert int(rows[("WS", "push_latency")]["Request Count"]) > 0
    # the books the streams kept from quotes (every rank and book_size checked on the way)
    # equal fresh snapshots when the run stops (reported after the CSV is written: read from
    # the printed summary, where a failure would be listed too)
    assert re.search(r"WS\s+book_verified\s", out), out[-4000:]
    assert "book_differs" not in out and "book_out_of_step" not in out, out[-4000:]
    assert int(rows[("GET", "/v1/exporter/applications/[id]/results")]["Request Count"]) > 0
