"""The deployment files agree with the code, so that neither drifts from the other.

``compose.yaml``: every variable a service of the image sets is one the server reads (the
settings, the CLI) or the image's entrypoint reads; each service's environment, interpolated
as Compose does, makes settings the server accepts, with the role the service is named for;
Redis keeps its append-only file fsynced on every write; the database is the PostgreSQL service;
the migration runs before the roles. The file is valid against the Compose specification's
schema (``tests/data/compose-spec.json``: compose-spec/compose-spec, schema/compose-spec.json,
Apache-2.0, as of October 2021). ``.dockerignore`` keeps in what the wheel is built from. The
image itself is built and started by ``make image-test`` (``tests/image/``).
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from gateway.redis_server import AOF_REWRITE_ARGS
from gateway.settings import ROLES, ConfigError, Settings
from tests.support import ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
#: the services that run the image built from ./Dockerfile
IGE = {name: s for name, s in SERVICES.items() if "build" in s}
MIGRATE = {name: s for name, s in IGE.items() if s.get("command") == ["ige", "migrate"]}
#: the services that run the entrypoint's default, `ige serve`
SERVERS = {name: s for name, s in IGE.items() if "command" not in s}
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
#: what an operator supplies (the file demands them with ${NAME:?...})
GIVEN = {"IGE_ADMIN_TOKEN": "an-admin-token-of-24-chars",
         "IGE_SECRET_KEY": "a-secret-key-of-at-least-32-characters",
         "POSTGRES_PASSWORD": "a-database-password"}

_VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?+])([^{}]*))?\}|(\w+))")


def interpolate(value: object, env: Mapping[str, str]) -> str:
    """A value of the file as Compose reads it: ``$$``, ``$NAME``, ``${NAME}``,
    ``${NAME:-default}``, ``${NAME-default}``, ``${NAME:?error}``, ``${NAME?error}``,
    ``${NAME:+other}``, ``${NAME+other}``."""
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name, op, arg = m.group(2) or m.group(5), m.group(3), m.group(4) or ""
        val = env.get(name)
        empty = val is None or (op is not None and op.startswith(":") and val == "")
        if op in ("-", ":-"):
            return arg if empty else str(val)
        if op in ("?", ":?"):
            if empty:
                raise ValueError(f"{name}: {arg}")
            return str(val)
        if op in ("+", ":+"):
            return "" if empty else arg
        return "" if val is None else val
    return _VARIABLE.sub(one, str(value))


def environment(service: dict[str, Any], given: Mapping[str, str] = GIVEN) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(v, given) for k, v in raw.items()}


class _Recording(dict[str, str]):
    """An environment that remembers which names were asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def variables_the_server_reads() -> set[str]:
    """What ``Settings.from_env`` asks for, what the rest of the server reads from
    ``os.environ``, and what the image's entrypoint reads."""
    env = _Recording(IGE_DEMO="1")
    Settings.from_env(env)
    names = set(env.asked)
    for source in (ROOT / "gateway").rglob("*.py"):
        names |= set(re.findall(r"environ(?:\.get\(|\.setdefault\(|\[)\s*\"([A-Z][A-Z0-9_]*)\"",
                                source.read_text()))
    return names | variables_the_entrypoint_reads()


def variables_the_entrypoint_reads() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", ENTRYPOINT.read_text()))


# ----------------------------------------------------------------------------- compose.yaml
def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    jsonschema.Draft201909Validator(schema).validate(COMPOSE)


def test_the_settings_are_found_where_the_server_reads_them() -> None:
    # the recording must see the settings, else the next test proves nothing
    names = variables_the_server_reads()
    assert {"REDIS_URL", "DATABASE_URL", "IGE_ADMIN_TOKEN", "IGE_SECRET_KEY", "IGE_ROLES",
            "IGE_LOG_LEVEL", "IGE_ROUND_DURATION", "IGE_PORT", "IGE_WORKERS"} <= names


@pytest.mark.parametrize("name", sorted(IGE))
def test_every_variable_a_service_sets_is_one_the_server_reads(name: str) -> None:
    unknown = set(environment(IGE[name])) - variables_the_server_reads()
    assert not unknown, f"{name} sets {sorted(unknown)}, which nothing reads"


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_each_server_gets_settings_that_start_with_the_role_it_is_named_for(name: str) -> None:
    env = environment(SERVERS[name])
    try:
        settings = Settings.from_env(env)
    except ConfigError as e:
        pytest.fail(f"{name}: the server would refuse to start: {e}")
    assert not settings.demo
    assert settings.roles == {name}
    assert int(env.get("IGE_WORKERS", "1")) >= 1


def test_one_server_per_role_and_every_role_served() -> None:
    assert set(SERVERS) == set(ROLES)


def test_a_missing_secret_stops_compose_instead_of_starting_with_an_empty_one() -> None:
    for service in IGE.values():
        for secret in ("IGE_ADMIN_TOKEN", "IGE_SECRET_KEY", "POSTGRES_PASSWORD"):
            given = {k: v for k, v in GIVEN.items() if k != secret}
            if any(secret in str(v) for v in (service.get("environment") or {}).values()):
                with pytest.raises(ValueError, match=secret):
                    environment(service, given)


def test_the_servers_share_one_redis_one_database_and_one_secret() -> None:
    shared = ("REDIS_URL", "DATABASE_URL", "IGE_ADMIN_TOKEN", "IGE_SECRET_KEY",
              "IGE_REDIS_CHANNEL")
    envs = [environment(s) for s in SERVERS.values()]
    for key in shared:
        assert len({e.get(key) for e in envs}) == 1, key
    for migrate in MIGRATE.values():
        assert environment(migrate)["DATABASE_URL"] == envs[0]["DATABASE_URL"]


def test_redis_keeps_its_append_only_file_fsynced_on_every_write() -> None:
    url = urlparse(environment(SERVERS["api"])["REDIS_URL"])
    redis = SERVICES[url.hostname or ""]
    assert redis["image"].startswith("redis:")
    command = redis["command"]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "always"
    # its AOF rewrites as the private server's (gateway/redis_server.py)
    assert dict(zip(AOF_REWRITE_ARGS[::2], AOF_REWRITE_ARGS[1::2], strict=True)).items() \
        <= options.items()
    assert url.port in (None, 6379) and "--port" not in options
    assert any(v.endswith(":/data") for v in redis["volumes"])  # the AOF outlives the container


def test_the_database_is_the_postgresql_service_with_its_own_credentials() -> None:
    url = urlparse(environment(SERVERS["api"])["DATABASE_URL"])
    assert url.scheme == "postgresql"
    pg = SERVICES[url.hostname or ""]
    assert pg["image"].startswith("postgres:")
    pg_env = environment(pg)
    assert (url.username, url.password, url.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])
    assert url.port in (None, 5432)
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])


def test_the_migration_runs_once_before_any_role_starts() -> None:
    assert len(MIGRATE) == 1
    (migrate,) = MIGRATE
    assert MIGRATE[migrate]["restart"] == "no"
    assert MIGRATE[migrate]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in SERVERS.items():
        deps = service["depends_on"]
        assert deps[migrate]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == deps["postgres"]["condition"] == "service_healthy"


def test_the_servers_run_read_only_and_publish_the_port_the_entrypoint_serves() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^EXPOSE 8000$", dockerfile, re.M)
    assert '"${IGE_PORT:-8000}"' in ENTRYPOINT.read_text()
    for name, service in IGE.items():
        assert service["read_only"] is True and "/tmp" in service["tmpfs"], name
        inside = environment(service).get("IGE_PORT", "8000")
        for port in service.get("ports", []):
            assert str(port).rsplit(":", 1)[-1] == inside, (name, port)
    assert SERVICES["api"]["ports"] and SERVICES["stream"]["ports"]
    assert "ports" not in SERVICES["worker"]


# ----------------------------------------------------------------------------- the image
def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rx = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pattern[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pattern[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(rx)))
    return rules


def dockerignored(path: str) -> bool:
    """Docker's rule: a path is left out when it or a folder above it matches a pattern;
    the last pattern that matches decides, ``!`` taking it back in."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    out = False
    for negate, rx in _dockerignore_rules():
        if any(rx.fullmatch(p) for p in prefixes):
            out = not negate
    return out


def test_the_dockerignore_matcher_reads_patterns_as_docker_does() -> None:
    assert dockerignored("tests/unit/test_model.py")
    assert dockerignored("gateway/__pycache__/app.cpython-311.pyc")
    assert dockerignored("deploy/image-test.sh")
    assert not dockerignored("deploy/entrypoint.sh")


def test_the_image_is_built_from_every_file_of_the_wheel() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]
                ["include"]]
    assert {"auction", "applications", "persistence", "usecases", "gateway"} <= set(packages)
    tracked = subprocess.run(["git", "ls-files", *packages], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    needed = [*tracked, "pyproject.toml", pyproject["project"]["readme"],
              str(ENTRYPOINT.relative_to(ROOT))]
    assert all(Path(ROOT, p).exists() for p in needed)
    left_out = [p for p in needed if dockerignored(p)]
    assert not left_out, f".dockerignore leaves out {left_out}"


def test_the_dockerfile_sets_only_variables_something_reads() -> None:
    final = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    env_block = re.search(r"^ENV (.*?)(?<!\\)$", final, re.M | re.S)
    assert env_block
    names = set(re.findall(r"([A-Z][A-Z0-9_]*)=", env_block.group(1)))
    python_or_shell = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
    assert names - python_or_shell <= variables_the_server_reads()
    user = re.search(r"^USER (\d+)(?::(\d+))?$", final, re.M)
    assert user and int(user.group(1)) != 0
