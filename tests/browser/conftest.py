"""Browser tests: Playwright driving a real headless Chromium (Debian's ``chromium``, found at
``IGE_CHROMIUM`` or on the PATH; Playwright's own browser download is not used) against real
``ige serve`` processes on real Redis and SQLite.

Without a Chromium the tests FAIL, saying how to get one: a browser test that does not run must
never look like one that passed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from tests.support import ROOT, ServerProcess, sqlite_url

SCREENSHOTS = ROOT / "var" / "screenshots"
HOW_TO_GET_CHROMIUM = (
    "the browser tests need a Chromium: on Debian/Ubuntu `apt-get install -y chromium` (CI's "
    ".ci/run does it), or set IGE_CHROMIUM to a Chromium or Chrome binary")


def chromium_path() -> str:
    found = os.environ.get("IGE_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found or not os.access(found, os.X_OK):
        pytest.fail(HOW_TO_GET_CHROMIUM, pytrace=False)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True,
                               args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def servers(redis_url: str, channel: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Callable[..., ServerProcess]]:
    """factory(**IGE_env) -> a started server; the servers of one module are one deployment
    (one SQLite file, one Redis database)."""
    from persistence.db import migrate

    tmp: Path = tmp_path_factory.mktemp("browser-server")
    db = sqlite_url(tmp)
    migrate(db)
    started: list[ServerProcess] = []
    redis_sync.Redis.from_url(redis_url).flushdb()

    def factory(**env: str) -> ServerProcess:
        srv = ServerProcess(redis_url, db, {"IGE_REDIS_CHANNEL": channel, **env},
                            log_path=tmp / f"server-{len(started)}.log")
        started.append(srv)
        return srv.start()

    yield factory
    for s in started:
        s.stop()
    redis_sync.Redis.from_url(redis_url).flushdb()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
