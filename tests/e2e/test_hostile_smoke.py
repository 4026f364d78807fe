"""CI smoke of ``make hostile`` (loadtests/hostile.py): the whole tool, tiny sizes, a few seconds
per scenario. Only that it runs and that each attack reached the server is checked here; the
numbers (the good clients' p99 against quiet) are for ``make hostile`` to print, never asserted
in CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow


def test_the_hostile_run_starts_every_attack_and_reports_what_the_server_did(
        tmp_path: Path) -> None:
    out = tmp_path / "hostile.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IGE_", "HOSTILE_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "loadtests.hostile", "--scenarios", "quiet,all",
         "--seconds", "3", "--warm", "1", "--rate", "50", "--connections", "4", "--rounds", "3",
         "--flood", "300", "--flood-procs", "1", "--flood-addresses", "3", "--swarm", "4",
         "--big-offers", "30", "--brute", "2", "--brute-addresses", "2",
         # the second wrong secret from an address is refused: a slow machine's few guesses in
         # these seconds still reach the limit (production's 5 per 15 minutes did not, in CI)
         "--server-env", "IGE_RATE_FAILURES=1/15 minutes",
         "--json", str(out), "--work", str(tmp_path / "work")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    got = json.loads(out.read_text())
    quiet, attacked = got["results"]["quiet"], got["results"]["all"]
    assert attacked["baseline"] == "quiet"
    for r in (quiet, attacked):
        assert r["desk"]["ok"] > 0 and r["push"]["quotes"] > 0
        assert not any(s.startswith("5") for s in r["metrics"]["statuses"])
    seen = attacked["attackers"]
    assert seen["flood"]["opened"] >= 300
    assert seen["swarm"].get("handshake_101", 0) >= 1 and seen["swarm"].get("subscribes", 0) > 0
    assert seen["brute"].get("401", 0) + seen["brute"].get("429", 0) > 0
    assert attacked["metrics"]["rate_limited"], "the guesser was never rate limited"
    assert "all" in got["verdict"] and "| all |" in proc.stdout


def test_the_twin_control_aims_the_flood_at_a_second_server_the_good_clients_never_use(
        tmp_path: Path) -> None:
    """``--flood-at twin``: what the flood does to the good clients when the server they use
    never sees a flood connection (RELIABILITY.md §4, the control)."""
    out = tmp_path / "hostile.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IGE_", "HOSTILE_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "loadtests.hostile", "--scenarios", "quiet,flood",
         "--flood-at", "twin", "--seconds", "3", "--warm", "1", "--rate", "50",
         "--connections", "4", "--rounds", "3", "--flood", "300", "--flood-procs", "1",
         "--flood-addresses", "3", "--json", str(out), "--work", str(tmp_path / "work")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    flood = json.loads(out.read_text())["results"]["flood"]
    assert flood["attackers"]["flood"]["opened"] >= 300
    assert flood["twin"]["peak_fds"] >= 300  # the twin held the flood ...
    assert flood["server"]["peak_fds"] < 200  # ... and the good clients' server never did
    assert flood["desk"]["ok"] > 0 and flood["push"]["quotes"] > 0
    assert 0 < flood["machine"]["busy"] <= 1 and 0 <= flood["machine"]["kernel"] <= 1
