"""Operator routes: banks, manual intake of rounds, any round or application, the audit."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from auction.model import dt_to_ms
from gateway import views
from gateway.contract.requests import (
    AuditQuery,
    BankBody,
    DeskUserBody,
    ExporterQuery,
    OperatorBody,
    RoundIntakeBody,
    parse,
    read,
)
from gateway.http import idempotent, ok, portal, principal, reply
from gateway.logs import get_logger
from gateway.problems import refuse
from gateway.routes import ids
from usecases.console import AuditFilter
from usecases.outcomes import Refusal
from usecases.results import NO_APPLICATION

log = get_logger("ige.admin")


async def create_bank(request: Request) -> Response:
    p = principal(request, "admin")
    raw = await request.body()
    body = parse(BankBody, raw)

    async def run() -> JSONResponse:
        creds = await portal(request).accounts.create_bank(body.bank_code, body.name, p.actor)
        if creds is None:
            raise refuse("conflict", f"bank {body.bank_code} already exists")
        return ok(views.bank_credentials(creds), 201)

    return await idempotent(request, p.actor, raw, run)


async def banks(request: Request) -> Response:
    principal(request, "admin")
    return ok(views.banks(await portal(request).accounts.banks()))


async def create_desk_user(request: Request) -> Response:
    p = principal(request, "admin")
    bank_id = request.path_params["bank_id"]
    raw = await request.body()
    body = parse(DeskUserBody, raw)

    async def run() -> JSONResponse:
        made = await portal(request).accounts.create_desk_user(
            bank_id, body.email, body.full_name, body.role, p.actor)
        if not isinstance(made, Refusal):
            log.info("desk_user_created", user_id=made.user.id, bank_id=bank_id)
        return reply(made, views.desk_user_created, 201)

    return await idempotent(request, p.actor, raw, run)


async def desk_users(request: Request) -> Response:
    principal(request, "admin")
    return reply(await portal(request).accounts.desk_users(request.path_params["bank_id"]),
                 views.desk_users)


async def deactivate_desk_user(request: Request) -> Response:
    p = principal(request, "admin")
    bank_id, user_id = request.path_params["bank_id"], request.path_params["desk_user_id"]
    done = await portal(request).accounts.deactivate_desk_user(bank_id, user_id, p.actor)
    if not isinstance(done, Refusal):
        log.info("desk_user_deactivated", user_id=user_id, bank_id=bank_id)
    return reply(done, views.desk_user)


async def new_activation_code(request: Request) -> Response:
    p = principal(request, "admin")
    bank_id, user_id = request.path_params["bank_id"], request.path_params["desk_user_id"]
    made = await portal(request).accounts.new_activation_code(bank_id, user_id, p.actor)
    if not isinstance(made, Refusal):
        log.info("desk_user_activation_renewed", user_id=user_id, bank_id=bank_id)
    return reply(made, views.desk_user_created, 201)


async def rotate_client_secret(request: Request) -> Response:
    p = principal(request, "admin")
    bank_id = request.path_params["bank_id"]
    done = await portal(request).accounts.rotate_client_secret(bank_id, p.actor)
    if not isinstance(done, Refusal):
        log.info("client_secret_rotated", bank_id=bank_id)
    return reply(done, views.bank_credentials)


async def create_operator(request: Request) -> Response:
    """A person of the guarantee institution with a login for the console (``/operator``)."""
    p = principal(request, "admin")
    raw = await request.body()
    body = parse(OperatorBody, raw)

    async def run() -> JSONResponse:
        made = await portal(request).operators.create(body.email, body.full_name, p.actor)
        if not isinstance(made, Refusal):
            log.info("operator_created", user_id=made.user.id)
        return reply(made, views.operator_created, 201)

    return await idempotent(request, p.actor, raw, run)


async def create_round(request: Request) -> Response:
    p = principal(request, "admin")
    raw = await request.body()
    got = read(RoundIntakeBody, raw)
    values = got.model.values() if got.model is not None else got.values

    async def run() -> JSONResponse:
        opened = await portal(request).operator.intake(values, got.errors, p.actor)
        if not isinstance(opened, Refusal):
            log.info("application_decided", application_id=opened.application_id,
                     status="approved", decided_by="operator")
            log.info("round_opened", round_id=opened.id, application_id=opened.application_id)
        return reply(opened, views.admin_round, 201)

    return await idempotent(request, p.actor, raw, run)


async def one_round(request: Request) -> Response:
    principal(request, "admin")
    return reply(await portal(request).operator.round(request.path_params["round_id"]),
                 views.admin_round_view)


async def application(request: Request) -> Response:
    """Every input the decision read and every number of the package it was decided under."""
    principal(request, "admin")
    found = await portal(request).applying.application(request.path_params["application_id"])
    outcome = found if found is not None else NO_APPLICATION
    return reply(outcome, views.operator_application)


async def exporters(request: Request) -> Response:
    principal(request, "admin")
    q = parse(ExporterQuery, request.query_params)
    found = await portal(request).accounts.exporter(email=q.email)
    return ok({"exporters": [] if isinstance(found, Refusal)
               else [views.exporter_account(found)]})


async def unlock_exporter(request: Request) -> Response:
    p = principal(request, "admin")
    user_id = request.path_params["user_id"]
    done = await portal(request).accounts.unlock(user_id, p.actor)
    if not isinstance(done, Refusal):
        log.info("exporter_unlocked", user_id=user_id)
    return reply(done, views.exporter_account)


async def audit(request: Request) -> Response:
    principal(request, "admin")
    q = parse(AuditQuery, request.query_params)
    f = AuditFilter(q.round_id, q.actor, q.action,
                    dt_to_ms(q.since) if q.since else None, dt_to_ms(q.until) if q.until else None)
    rows = await portal(request).operator.audit(q.round_id, q.after_id, f)
    return ok(views.audit(rows))


ROUTES: list[BaseRoute] = [
    Route("/v1/admin/banks", create_bank, methods=["POST"]),
    Route("/v1/admin/banks", banks, methods=["GET"]),
    Route(ids.path("/v1/admin/banks/{bank_id}/users"), create_desk_user, methods=["POST"]),
    Route(ids.path("/v1/admin/banks/{bank_id}/users"), desk_users, methods=["GET"]),
    Route(ids.path("/v1/admin/banks/{bank_id}/users/{desk_user_id}/deactivate"),
          deactivate_desk_user, methods=["POST"]),
    Route(ids.path("/v1/admin/banks/{bank_id}/users/{desk_user_id}/activation-code"),
          new_activation_code, methods=["POST"]),
    Route(ids.path("/v1/admin/banks/{bank_id}/client-secret"), rotate_client_secret,
          methods=["POST"]),
    Route("/v1/admin/operators", create_operator, methods=["POST"]),
    Route("/v1/admin/rounds", create_round, methods=["POST"]),
    Route(ids.path("/v1/admin/rounds/{round_id}"), one_round),
    Route(ids.path("/v1/admin/applications/{application_id}"), application),
    Route("/v1/admin/exporters", exporters),
    Route(ids.path("/v1/admin/exporters/{user_id}/unlock"), unlock_exporter, methods=["POST"]),
    Route("/v1/admin/audit", audit),
]
