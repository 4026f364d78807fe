"""schemathesis against a real server: every operation of the document, authenticated as a
bank, an exporter and the operator (each operation with the token of its audience), with
every check schemathesis has (``--checks all``): no 5xx, no response the document does not
describe, no schema-valid request refused for its shape, no schema-invalid one accepted, a 405
with its ``Allow`` header...

Bounded: a fixed seed, ``MAX_EXAMPLES`` cases per operation and phase, a wall-clock limit
(about a minute and a half on 2 cores). The server runs on PostgreSQL when TEST_DATABASE_URL
is set (as in CI), else on SQLite.

Where a refusal of a schema-valid request depends on the server's state or on a rule across
fields that a schema cannot state (an amount above the round's loan, a tenor beyond the loan
type's limit, a bank code nobody registered, a tax id the trade registry does not know; an
account locked by the fuzzer's own failures), the operation lists that status among the ones
``positive_data_acceptance`` accepts: ``STATEFUL_STATUSES``. Every other operation must accept
what its schema allows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.contract.openapi import spec
from tests.e2e.conftest import register_exporter
from tests.support import ADMIN_TOKEN, ROOT, Api, create_pg_database, drop_pg_database

pytestmark = pytest.mark.slow

SEED = 20261130
MAX_EXAMPLES = int(os.environ.get("IGE_SCHEMATHESIS_EXAMPLES", "15"))
TIME_LIMIT_S = 420  # a hang is a failure, not a stuck suite
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")

#: operation -> the statuses a schema-valid request may also get, by state or by a rule across
#: fields a schema cannot state
STATEFUL_STATUSES = {
    # the round's loan amount, the loan type's tenor and grace, the fee below the amount
    "postOffer": ["422"],
    "putOffer": ["422"],
    # the guarantee package's form rules across fields, bank codes nobody registered
    "exporterApply": ["422"],
    # a tax id the trade registry does not know, the consent text in force
    "exporterMatchCompany": ["422"],
    # the loan type's tenor and grace, a guarantee above the loan, an exporter id nobody has
    "adminCreateRound": ["422"],
    # an account locked by earlier failures (the fuzzer's own, with the test account's e-mail)
    "exporterLogin": ["423"],
    "exporterActivate": ["423"],
}


def toml(value: Any) -> str:
    """The few TOML values this config needs (strings, numbers, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def config(base_url: str, tokens: dict[str, str], ids: dict[str, list[str]]) -> str:
    """The three tokens by security scheme, and one [[operations]] block per operation of the
    document: real ids for half of its path parameters, and the statuses
    positive_data_acceptance accepts."""
    lines = [f"base-url = {toml(base_url)}", "workers = 1",
             "[generation]", "database = \"none\"",
             "[auth]", "auto-signup = false",  # the tokens below, no accounts of its own
             # each operation with the token of its security scheme (its audience)
             f"openapi.bankToken = {toml({'bearer': tokens['bank']})}",
             f"openapi.exporterToken = {toml({'bearer': tokens['exporter']})}",
             f"openapi.operatorToken = {toml({'bearer': tokens['admin']})}",
             "[dictionaries]"]
    lines += [f"{name} = {{ values = {toml(values)} }}" for name, values in ids.items()]
    for path, item in spec()["paths"].items():
        for op in item.values():
            block = []
            params = {f"path.{p}": {"dictionary": p + "s", "probability": 0.5}
                      for p in _path_params(path) if p + "s" in ids}
            if params:
                block.append(f"parameters = {toml(params)}")
            extra = STATEFUL_STATUSES.get(op["operationId"])
            if extra is not None:
                block.append("checks.positive_data_acceptance.expected-statuses = "
                             + toml(["2xx", "3xx", "401", "403", "404", "409", *extra]))
            if block:  # a public operation without path parameters needs nothing
                lines += ["[[operations]]", f"include-operation-id = {toml(op['operationId'])}",
                          *block]
    return "\n".join(lines) + "\n"


def _path_params(path: str) -> list[str]:
    return [p.strip("{}") for p in path.split("/") if p.startswith("{")]


@pytest.fixture(scope="module")
def server(server_factory_module: Any) -> Any:
    return server_factory_module


@pytest.fixture(scope="module")
def server_factory_module(redis_url: str, channel: str,
                          tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server for the run, on PostgreSQL when TEST_DATABASE_URL is set (else SQLite)."""
    import redis as redis_sync

    from persistence.db import migrate
    from tests.support import ServerProcess, sqlite_url

    base = os.environ.get("TEST_DATABASE_URL")
    tmp = tmp_path_factory.mktemp("schemathesis")
    if base:
        db, name = create_pg_database(base)
    else:
        db, name = sqlite_url(tmp), ""
    migrate(db)
    redis_sync.Redis.from_url(redis_url).flushdb()
    srv = ServerProcess(redis_url, db, {"IGE_REDIS_CHANNEL": channel,
                                        "IGE_ROUND_DURATION": "PT30M",
                                        "IGE_BINDING_DURATION": "PT30M"},
                        log_path=tmp / "server.log").start()
    try:
        yield srv
    finally:
        srv.stop()
        redis_sync.Redis.from_url(redis_url).flushdb()
        if base:
            drop_pg_database(base, name)


def seed(api: Api) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A bank with an offer in an open round, an exporter with a matched company, an approved
    application and an operator intake of its own: real ids for the path parameters."""
    creds = api.create_bank("STBANK", "Schemathesis Bankası")
    bank = api.bank_token(creds)
    exporter = register_exporter(api)
    intake = api.open_round(exporter_user_id=exporter["user_id"])
    offer = api.offer(bank, intake["round_id"])
    assert offer.status_code == 201, offer.text
    company = api.http.post("/v1/exporter/companies", headers=exporter["headers"], json={
        "tax_id": "1100000014", "consent": {"text_version": "MUV-2026-01", "accepted": True}})
    assert company.status_code == 201, company.text
    app = api.http.post("/v1/exporter/applications", headers=exporter["headers"], json={
        "company_id": company.json()["company_id"], "loan_type": "working_capital",
        "currency": "TRY", "loan_amount": "5000000.00", "guarantee_amount": "5000000.00",
        "tenor_months": 24, "grace_months": 6, "export_commitment": True})
    assert app.status_code == 201 and app.json()["status"] == "approved", app.text
    tokens = {"bank": bank["Authorization"].split()[1],
              "exporter": exporter["headers"]["Authorization"].split()[1],
              "admin": ADMIN_TOKEN}
    app_round = app.json()["round"]["round_id"]
    ids = {"round_ids": [intake["round_id"], app_round],
           "offer_ids": [offer.json()["offer_id"]],
           "application_ids": [app.json()["application_id"], intake["application_id"]],
           "company_ids": [company.json()["company_id"]],
           "user_ids": [exporter["user_id"]],
           "bank_ids": [creds["bank_id"]]}
    return tokens, ids


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
        server: Any, tmp_path: Path) -> None:
    api = Api(server.base_url)
    tokens, ids = seed(api)
    cfg = tmp_path / "schemathesis.toml"
    cfg.write_text(config(server.base_url, tokens, ids))
    report = tmp_path / "report"
    cmd = [str(Path(sys.executable).with_name("st")), "--config-file", str(cfg), "--no-color",
           "run", f"{server.base_url}/v1/openapi.json", "--checks", "all",
           "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
           "--request-timeout", "20", "--report", "junit", "--report-dir", str(report)]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "PYTHONPATH": str(ROOT)}
    try:
        run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"schemathesis ran longer than {TIME_LIMIT_S} s:\n{e.stdout!s:.20000}")
    out = run.stdout + run.stderr
    (ROOT / "var").mkdir(exist_ok=True)
    (ROOT / "var" / "schemathesis.txt").write_text(out)  # the last run, for a reader
    assert run.returncode == 0, out[-20000:]
    assert "Server error" not in out and "violates schema" not in out
