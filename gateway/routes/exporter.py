"""Exporter routes: the account (register, two-factor activation, login), company matching
with consent, applications, results after the close and the acceptance."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import views
from gateway.contract.requests import (
    AcceptBody,
    ActivateBody,
    ApplicationForm,
    CompanyMatchBody,
    LoginBody,
    RegisterBody,
    parse,
    read,
)
from gateway.http import idempotent, ok, passed, portal, principal, reply, throttled
from gateway.logs import get_logger
from gateway.problems import problem
from gateway.routes import ids
from usecases.accounts import NewExporter
from usecases.applying import ApplicationDraft, ApplicationState
from usecases.outcomes import Refusal
from usecases.results import NO_APPLICATION, ExporterResults

log = get_logger("ige.exporter")


# ----------------------------------------------------------------------------- the account
async def register(request: Request) -> Response:
    raw = await request.body()
    b = parse(RegisterBody, raw)
    await throttled(request, "register", b.email)
    who = NewExporter(b.email, b.full_name, b.national_id, b.mobile, b.password)

    async def run() -> JSONResponse:
        return reply(await portal(request).accounts.register(who), views.registered, 201)

    return await idempotent(request, f"register:{who.email}", raw, run)


async def activate(request: Request) -> Response:
    body = parse(ActivateBody, await request.body())
    acct = await throttled(request, "activate", body.email)
    user_id = await portal(request).accounts.activate(body.email, body.code)
    if not isinstance(user_id, Refusal):
        await passed(request, "activate", acct)
    return reply(user_id, lambda uid: {"user_id": uid, "active": True})


async def login(request: Request) -> Response:
    body = parse(LoginBody, await request.body())
    acct = await throttled(request, "login", body.email)
    token = await portal(request).accounts.login(body.email, body.password, body.code)
    if not isinstance(token, Refusal):
        await passed(request, "login", acct)
    return reply(token, views.token)


# ----------------------------------------------------------------------------- companies
async def guarantee_package(request: Request) -> Response:
    principal(request, "exporter")
    pkg = portal(request).applying.package()
    return ok({"package": pkg.to_wire(),
               "consent": {"text_version": pkg.consent_text_version, "text": pkg.consent_text}})


async def match_company(request: Request) -> Response:
    p = principal(request, "exporter")
    raw = await request.body()
    version = portal(request).applying.package().consent_text_version
    tax_id = parse(CompanyMatchBody, raw, {"consent_text_version": version}).tax_id

    async def run() -> JSONResponse:
        # 201 as the contract says, also when the caller's consent to this text was already
        # active (then nothing new is recorded: one consent per text version)
        return reply(await portal(request).applying.match_company(p, tax_id), views.company,
                     201)

    return await idempotent(request, p.actor, raw, run)


async def companies(request: Request) -> Response:
    p = principal(request, "exporter")
    return ok({"companies": [views.company(c)
                             for c in await portal(request).applying.companies(p)]})


async def withdraw_consent(request: Request) -> Response:
    """Stops new applications and hides the company's data in its open rounds."""
    p = principal(request, "exporter")
    state = await portal(request).applying.withdraw_consent(p, request.path_params["company_id"])
    return reply(state, views.company)


# ----------------------------------------------------------------------------- applications
async def apply(request: Request) -> Response:
    p = principal(request, "exporter")
    raw = await request.body()
    got = read(ApplicationForm, raw)
    draft = ApplicationDraft(got.values.get("company_id"),
                             None if got.model is None else got.model.request(),
                             got.values, got.errors)

    async def run() -> JSONResponse:
        state = await portal(request).applying.apply(p, draft)
        if isinstance(state, ApplicationState):
            log.info("application_decided", application_id=state.application.id,
                     status=state.application.status, decided_by="scorecard")
            if state.round is not None:
                log.info("round_opened", round_id=state.round.id,
                         application_id=state.application.id)
        return reply(state, views.application, 201)

    return await idempotent(request, p.actor, raw, run)


async def applications(request: Request) -> Response:
    p = principal(request, "exporter")
    return ok({"applications": [views.application(a)
                                for a in await portal(request).applying.applications(p)]})


async def application(request: Request) -> Response:
    """An application of the caller's: scored here, or taken in by the operator for it."""
    p = principal(request, "exporter")
    decided = await portal(request).applying.application(request.path_params["application_id"],
                                                         p)
    return reply(decided if decided is not None else NO_APPLICATION, views.application)


async def results(request: Request) -> Response:
    p = principal(request, "exporter")
    res = await portal(request).results.results(p.id, request.path_params["application_id"])
    return reply(res, views.exporter_results)


async def accept(request: Request) -> Response:
    p = principal(request, "exporter")
    app_id = request.path_params["application_id"]
    own = await portal(request).results.own_round(p.id, app_id)  # 404 before the body
    if isinstance(own, Refusal):
        raise problem(own)
    raw = await request.body()
    offer_id = parse(AcceptBody, raw).offer_id

    async def run() -> JSONResponse:
        res = await portal(request).results.accept(p.id, app_id, offer_id)
        if isinstance(res, ExporterResults):
            log.info("offer_accepted", round_id=res.round.id, offer_id=offer_id)
        return reply(res, views.exporter_results)

    return await idempotent(request, p.actor, raw, run)


ROUTES: list[BaseRoute] = [
    Route("/v1/exporter/register", register, methods=["POST"]),
    Route("/v1/exporter/activate", activate, methods=["POST"]),
    Route("/v1/exporter/login", login, methods=["POST"]),
    Route("/v1/exporter/guarantee-package", guarantee_package),
    Route("/v1/exporter/companies", match_company, methods=["POST"]),
    Route("/v1/exporter/companies", companies, methods=["GET"]),
    Route(ids.path("/v1/exporter/companies/{company_id}/consent"), withdraw_consent,
          methods=["DELETE"]),
    Route("/v1/exporter/applications", apply, methods=["POST"]),
    Route("/v1/exporter/applications", applications, methods=["GET"]),
    Route(ids.path("/v1/exporter/applications/{application_id}"), application),
    Route(ids.path("/v1/exporter/applications/{application_id}/results"), results),
    Route(ids.path("/v1/exporter/applications/{application_id}/accept"), accept,
          methods=["POST"]),
]
