"""The log line format (gateway/logs.py) and the process set-up of the metrics (gateway/cli.py,
gateway/metrics.py), without a server."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import logs
from gateway.cli import MULTIPROC_DIR, metrics_directory
from tests.support import ROOT


class Capture:
    def __init__(self) -> None:
        self.out = io.StringIO()
        self.handler = logging.StreamHandler(self.out)
        self.handler.setFormatter(logs.json_formatter())
        self.handler.addFilter(logs.DropWebSocketAccess())
        self.handler.addFilter(logs.QuietClientFaults())

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(c.handler)
    root.setLevel(logging.DEBUG)
    try:
        yield c
    finally:
        root.removeHandler(c.handler)
        root.setLevel(level)


def test_our_events_and_foreign_records_are_one_json_object_per_line(capture: Capture):
    token = logs.REQUEST_ID.set("req-1")
    try:
        logs.get_logger("ige.test").info("round_closed", round_id="rnd_1", close_lag_ms=12)
        logging.getLogger("some.library").warning("plain %s message", "stdlib")
    finally:
        logs.REQUEST_ID.reset(token)
    logging.getLogger("some.library").error("outside a request")
    ours, foreign, outside = capture.lines()
    assert list(ours)[:6] == ["timestamp", "level", "logger", "pid", "event", "request_id"]
    assert ours == {**ours, "level": "info", "logger": "ige.test", "pid": os.getpid(),
                    "event": "round_closed", "request_id": "req-1", "round_id": "rnd_1",
                    "close_lag_ms": 12}
    assert ours["timestamp"].endswith("Z")
    assert (foreign["level"], foreign["event"], foreign["request_id"]) == (
        "warning", "plain stdlib message", "req-1")
    assert "request_id" not in outside


def test_a_traceback_stays_inside_its_line(capture: Capture):
    try:
        raise ValueError("boom")
    except ValueError:
        logs.get_logger("ige.test").exception("loop_failed", loop="closer")
        logging.getLogger("other").exception("stdlib too")
    ours, foreign = capture.lines()
    assert ours["level"] == "error" and "ValueError: boom" in ours["exception"]
    assert "ValueError: boom" in foreign["exception"]


def test_query_strings_and_uvicorns_websocket_lines_are_kept_out(capture: Capture):
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000",
                 "/v1/stream?ticket=SECRET-TICKET")
    uvicorn.info('%s - "WebSocket %s" 403', "127.0.0.1:5000", "/v1/stream?ticket=SECRET")
    logging.getLogger("httpx").info("GET http://x/v1/stream?ticket=SECRET-TICKET&a=b done")
    logging.getLogger("other").info("ready? yes")
    cut, kept = capture.lines()
    assert cut["event"] == "GET http://x/v1/stream?[redacted] done"
    assert kept["event"] == "ready? yes"  # a question mark alone is no query string
    assert "SECRET" not in capture.out.getvalue()


def test_a_clients_bad_utf8_frame_is_one_info_line_without_a_traceback(capture: Capture):
    uvicorn = logging.getLogger("uvicorn.error")
    try:
        b"\xff".decode()
    except UnicodeDecodeError:  # as uvicorn logs it
        uvicorn.exception("Invalid UTF-8 sequence received from client.")
        uvicorn.exception("Exception in ASGI application\n")  # a server fault keeps its own
    (client, server) = capture.lines()
    assert client["level"] == "info" and "exception" not in client
    assert server["level"] == "error" and "UnicodeDecodeError" in server["exception"]
    names = logs.dict_config("INFO")["handlers"]["stderr"]["filters"]
    assert "client_faults" in names


def test_levels_come_from_ige_log_level():
    assert logs.level_of(None) == "INFO"
    assert logs.level_of(" warning ") == "WARNING"
    assert [logs.level_of(x) for x in ("debug", "ERROR", "critical")] == [
        "DEBUG", "ERROR", "CRITICAL"]
    with pytest.raises(ValueError, match="IGE_LOG_LEVEL"):
        logs.level_of("verbose")
    config = logs.dict_config("WARNING")
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.error"]["level"] == "WARNING"  # the root's, set on it


def test_a_private_metrics_directory_lives_as_long_as_the_server(
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(MULTIPROC_DIR, raising=False)
    with metrics_directory() as d:
        path = Path(d)
        assert os.environ[MULTIPROC_DIR] == d and path.is_dir() and not any(path.iterdir())
        assert (path.stat().st_mode & 0o777) == 0o700
        (path / "counter_1.db").write_bytes(b"x")
    assert not path.exists() and MULTIPROC_DIR not in os.environ


def test_a_killed_servers_private_directory_is_removed_by_the_next_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv(MULTIPROC_DIR, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = tmp_path / f"ige-metrics-{gone}-abc123"
    living = tmp_path / f"ige-metrics-{os.getpid()}-def456"  # a server still running
    other = tmp_path / "ige-metrics-notapid"
    for d in (orphan, living, other):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"x")
    with metrics_directory() as d:
        assert Path(d).parent == tmp_path and Path(d).name.startswith(
            f"ige-metrics-{os.getpid()}-")
        assert not orphan.exists() and living.exists() and other.exists()


def test_an_operators_metrics_directory_is_used_as_given(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path):
    given = tmp_path / "prom"
    monkeypatch.setenv(MULTIPROC_DIR, str(given))
    with metrics_directory() as d:
        assert d == str(given) and given.is_dir()
        (given / "counter_1.db").write_bytes(b"x")
    assert (given / "counter_1.db").exists() and os.environ[MULTIPROC_DIR] == str(given)


def test_the_cli_imports_no_prometheus_client_before_the_directory_is_set():
    """prometheus_client picks its storage (per-process files or memory) when first imported:
    ige serve must set PROMETHEUS_MULTIPROC_DIR before anything imports it."""
    code = ("import sys, gateway.cli; "
            "sys.exit(int('prometheus_client' in sys.modules or 'gateway.app' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0


def test_uvicorn_loggers_get_the_level_itself_not_notset():
    """uvicorn formats a trace line for every connection made and lost when its logger's own
    level is below TRACE (NOTSET is 0): under a connection flood that is work for nothing."""
    for level in logs.LEVELS:
        conf = logs.dict_config(level)["loggers"]
        assert conf["uvicorn"]["level"] == conf["uvicorn.error"]["level"] == level


def test_metrics_in_multiprocess_mode_keep_the_pid_and_a_forked_child_writes_its_own_file(
        tmp_path: Path):
    """Every metric update asks for the process id (prometheus_client's files are per process):
    gateway.metrics keeps it instead of a system call each time, and a forked child learns
    its own, so its numbers go to its own file, never into its parent's."""
    code = """
import os, sys
import gateway.metrics as m
calls = []
real = os.getpid
os.getpid = lambda: calls.append(1) or real()
m.OFFERS.labels("submit", "accepted").inc()
m.OFFER_ACK.labels("submit").observe(0.001)
parent_calls = len(calls)
pid = os.fork()
if pid == 0:
    m.OFFERS.labels("submit", "accepted").inc(5)
    os._exit(0)
os.waitpid(pid, 0)
print(parent_calls, real(), pid)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), MULTIPROC_DIR: str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    calls, parent, child = (int(x) for x in done.stdout.split())
    assert calls == 0
    from prometheus_client.mmap_dict import MmapedDict

    def offers(pid: int) -> float:
        d = MmapedDict(str(tmp_path / f"counter_{pid}.db"), read_mode=True)
        try:
            return sum(v for k, v, _ts in d.read_all_values() if "ige_offers" in k)
        finally:
            d.close()
    assert offers(parent) == 1 and offers(child) == 5
