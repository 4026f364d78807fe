"""``loadtests/fsync_probe.py``: the host check behind BENCHMARKS.md's reading of the
acknowledgement tail (an fsync beside CPU work on its core waits for a timer tick)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loadtests.fsync_probe import other_cpu, probe

CASES = ["alone", "beside a commit", "beside CPU work", "beside CPU work, SCHED_RR"]


def test_each_case_times_the_fsyncs_it_made_and_leaves_no_file(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    got = probe(tmp_path, 512, 200, 0.25, max(before))
    assert os.sched_getaffinity(0) == before  # pinned while it ran, as it was afterwards
    assert [name for name, _ in got] == CASES
    for name, res in got:
        if isinstance(res, str):  # only real-time priority may be refused (not root)
            assert name == CASES[3] and os.geteuid() != 0 and "root" in res
            continue
        assert 1 <= res["n"] <= 51, (name, res)  # 200/s for 0.25 s, paced: never more
        assert 0 < res["p50"] <= res["p90"] <= res["p99"] <= res["max"]
    assert list(tmp_path.iterdir()) == []


def test_the_command_prints_one_line_per_case(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "loadtests.fsync_probe", "--dir", str(tmp_path),
                          "--seconds", "0.2", "--rate", "100"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("fdatasync of 1024 B appended, 100/s")
    assert [ln[:28].rstrip() for ln in lines[1:]] == CASES


def test_the_commits_run_on_another_cpu_than_the_writer_where_there_is_one() -> None:
    assert other_cpu(1, {0, 1}) == 0
    assert other_cpu(0, {0, 1, 2}) == 1
    assert other_cpu(0, {0}) == 0  # one CPU: beside it, the only place there is
