"""CI smoke of ``python -m loadtests.churn`` (the server's CPU per evicted connection): tiny
sizes, one run of each kind. Only that it runs, that the server evicted, and that it reports a
number for each kind is checked; the numbers are for RELIABILITY.md §4, never asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow


def test_the_churn_run_evicts_and_reports_cpu_per_connection_for_each_kind() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IGE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "loadtests.churn", "--cap", "100", "--churn", "400",
         "--rate", "1000", "--runs", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rows = dict(re.findall(r"^\| (silent|slow) \| [^|]+ \| (-?[\d.]+) \|$", proc.stdout, re.M))
    assert set(rows) == {"silent", "slow"}, proc.stdout
    assert all(float(v) > 0 for v in rows.values()), proc.stdout
    runs = re.findall(r"^(silent|slow) run 1: \d+ connections/s, (\d+) evicted,", proc.stdout, re.M)
    assert len(runs) == 2 and all(int(n) >= 400 - 10 for _, n in runs), proc.stdout  # each one
