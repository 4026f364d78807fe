"""The image as it is deployed, started from its own filesystem (``container.py``).

``make image-test`` builds it (``deploy/image-test.sh``) and names it in ``IGE_IMAGE``; without
that these tests are skipped. Redis is a private server started here (AOF ``appendfsync
always``); the database is SQLite in the image's data volume (its default ``DATABASE_URL``).
The migration step and the servers run as a deployment runs them (``compose.yaml``): ``ige
migrate`` through the entrypoint, then the entrypoint alone with ``IGE_ROLES``.
"""

from __future__ import annotations

import os
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.redis_server import RedisServer, free_port
from tests.image.container import (
    Container,
    Image,
    cmdline,
    podman_command,
    root_mount_options,
    status_ids,
)
from tests.support import ADMIN_TOKEN, ROOT, SECRET_KEY, Api

IMAGE = os.environ.get("IGE_IMAGE", "")

pytestmark = pytest.mark.skipif(
    not IMAGE, reason="the image is built and started by `make image-test` (IGE_IMAGE)")


def wait_ready(c: Container, timeout: float = 60) -> str:
    url = f"http://127.0.0.1:{c.env['IGE_PORT']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert c.proc is not None
        if c.proc.poll() is not None:
            pytest.fail(f"the container exited ({c.proc.returncode}): {c.log()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the container did not become ready: {c.log()[-3000:]}")


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    with Image.mounted(IMAGE, podman_command()) as img:
        yield img


@pytest.fixture(scope="module")
def deployment(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private Redis, the migration step, then the server with every role (IGE_ROLES unset),
    sharing one data volume as one deployment's containers share a named volume."""
    tmp = tmp_path_factory.mktemp("image")
    redis = RedisServer(tmp / "redis").start()
    server: Container | None = None
    try:
        env = {"REDIS_URL": redis.url, "IGE_ADMIN_TOKEN": ADMIN_TOKEN,
               "IGE_SECRET_KEY": SECRET_KEY, "IGE_HOST": "127.0.0.1", "IGE_LOG_LEVEL": "WARNING",
               "IGE_ROUND_DURATION": "PT3S", "IGE_BINDING_DURATION": "PT30S"}
        migrate = Container(image, tmp / "migrate", env, args=["ige", "migrate"])
        migrated = migrate.run()
        server = Container(image, tmp / "server", {**env, "IGE_PORT": str(free_port())},
                           volumes=migrate.volumes).start()
        yield {"env": env, "migrated": migrated, "server": server, "url": wait_ready(server),
               "volumes": migrate.volumes, "tmp": tmp}
    finally:
        if server is not None:
            server.stop()
        redis.stop()


def test_the_migration_step_runs_through_the_entrypoint_into_the_data_volume(
        deployment: dict[str, Any]) -> None:
    migrated = deployment["migrated"]
    assert migrated.returncode == 0, migrated.stderr
    assert "migrations applied" in migrated.stdout
    assert (deployment["volumes"]["/var/lib/ige"] / "ige.db").exists()


def test_the_server_is_ready_with_redis_and_the_database(deployment: dict[str, Any]) -> None:
    r = httpx.get(deployment["url"] + "/readyz")
    assert r.status_code == 200, r.text
    assert set(r.json()["checks"].values()) == {"ok"}


def test_a_bank_round_runs_over_http_to_its_closing_record(deployment: dict[str, Any]) -> None:
    api = Api(deployment["url"])
    a, b = api.create_bank(), api.create_bank()
    ha, hb = api.bank_token(a), api.bank_token(b)
    rid = api.open_round()["round_id"]
    assert api.offer(ha, rid, annual_rate="39.00").status_code == 201
    assert api.offer(hb, rid, annual_rate="38.00").status_code == 201
    deadline = time.monotonic() + 30
    while (res := api.http.get(f"/v1/bank/rounds/{rid}/result", headers=ha)).status_code != 200:
        assert res.status_code == 409 and time.monotonic() < deadline, res.text
        time.sleep(0.2)
    ra = res.json()
    rb = api.http.get(f"/v1/bank/rounds/{rid}/result", headers=hb).json()
    assert ra["reference_number"].startswith("IGE-")
    assert ra["reference_number"] == rb["reference_number"]
    assert [o["final_rank"] for o in ra["my_offers"]] == [2]
    assert [o["final_rank"] for o in rb["my_offers"]] == [1]


def test_every_process_of_the_container_runs_as_the_images_non_root_user(
        image: Image, deployment: dict[str, Any]) -> None:
    uid, gid = image.user()
    assert (uid, gid) == (10001, 10001)
    server: Container = deployment["server"]
    procs = server.processes()
    assert "ige serve" in cmdline(procs[0])
    for pid in procs:
        ids = status_ids(pid)
        assert ids["Uid"] == [uid] * 4 and ids["Gid"] == [gid] * 4, (pid, cmdline(pid), ids)
        assert ids["Groups"] == []
        # and from the image's own filesystem: its Python, chrooted into the image's root
        rootfs = server.workdir / "rootfs"
        assert Path(os.readlink(f"/proc/{pid}/root")) == rootfs
        assert os.readlink(f"/proc/{pid}/exe").startswith(f"{rootfs}/")


def test_the_root_filesystem_is_read_only_and_the_writes_land_in_the_volumes(
        deployment: dict[str, Any]) -> None:
    server: Container = deployment["server"]
    assert "ro" in root_mount_options(server.pid)
    touched = server.exec(["touch", "/opt/ige/written"], root=True)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr
    volumes = deployment["volumes"]
    assert (volumes["/var/lib/ige"] / "ige.db").exists()  # the SQLite file
    assert any(volumes["/tmp"].glob("ige-metrics-*"))  # the processes' metrics


def test_the_images_health_check_passes(deployment: dict[str, Any]) -> None:
    checked = deployment["server"].healthcheck()
    assert checked.returncode == 0, checked.stderr


def test_ige_roles_chooses_the_role_and_a_stop_signal_ends_it_at_once(
        image: Image, deployment: dict[str, Any]) -> None:
    env = {**deployment["env"], "IGE_ROLES": "stream", "IGE_PORT": str(free_port())}
    data = {"/var/lib/ige": deployment["volumes"]["/var/lib/ige"]}  # a /tmp of its own
    stream = Container(image, deployment["tmp"] / "stream", env, volumes=data).start()
    try:
        url = wait_ready(stream)
        assert httpx.get(url + "/v1/bank/rounds").status_code == 404  # the api role's route
        started = time.monotonic()
        assert stream.stop(timeout=10) == 0  # PID 1 is ige itself: SIGTERM is not ignored
        assert time.monotonic() - started < 10
    finally:
        stream.stop()


def test_the_image_holds_the_whole_project_and_no_build_tools(image: Image) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]
                ["include"]]
    (record,) = image.root.glob("opt/ige/lib/python3*/site-packages/ige_portal-*.dist-info/RECORD")
    installed = {line.split(",")[0] for line in record.read_text().splitlines()}
    tracked = subprocess.run(["git", "ls-files", *packages], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    wanted = {f for f in tracked if f.endswith((".py", ".lua", ".mako"))
              or f.startswith("gateway/static/")}
    assert wanted and wanted <= installed, sorted(wanted - installed)
    for tool in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/make", "opt/ige/bin/pip",
                 "root/.cache/pip", "src"):
        assert not (image.root / tool).exists(), tool
