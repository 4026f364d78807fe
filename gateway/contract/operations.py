"""The table of HTTP operations: one row per (method, path) the gateway serves.

Each row names what a client needs and what the document is generated from: the operation id
and tag, the auth kind, the request model (body, form or query string), the success status and
shape, and the problem codes per status beyond the ones every operation of its kind has
(``openapi.problem_codes`` adds those: 400/422 for JSON bodies, 401/404 for tokens, 422
``idempotency_mismatch`` for idempotent calls, 503 ``unavailable``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.contract import limits as L
from gateway.contract import requests as rq
from gateway.contract import responses as rs
from gateway.contract.reading import RequestModel
from gateway.contract.schema import Schema

Auth = Literal["public", "bank", "exporter", "operator", "any"]
JSON_MEDIA = "application/json"
FORM_MEDIA = "application/x-www-form-urlencoded"

__all__ = ["FORM_MEDIA", "JSON_MEDIA", "OPERATIONS", "PATH_PARAMS", "Auth", "Operation"]

#: descriptions of path parameters, by name (an operation may override one)
PATH_PARAMS: dict[str, str] = {
    "round_id": "The round.",
    "offer_id": "The bank's own offer.",
    "application_id": "The caller's own application.",
    "company_id": "A company the caller is matched to.",
    "bank_id": "A bank (`bank_id` of `GET /v1/admin/banks`).",
    "desk_user_id": "A desk user of that bank (`user_id` of "
                    "`GET /v1/admin/banks/{bank_id}/users`).",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    description: str
    auth: Auth
    status: int  # success
    ok: str  # description of the success response
    shape: type | Schema | None  # a TypedDict, a schema, or None (no JSON body)
    body: type[RequestModel] | None = None
    form: bool = False
    query: type[RequestModel] | None = None
    idempotent: bool = False
    problems: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    path_docs: Mapping[str, str] = field(default_factory=dict)
    ok_media: str = JSON_MEDIA
    extra_responses: Mapping[str, Any] = field(default_factory=dict)
    extensions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{([^}]+)}", self.path)


_STREAM_DESCRIPTION = "__stream__"  # replaced by openapi.STREAM_DESCRIPTION

OPERATIONS: tuple[Operation, ...] = (
    # -- public
    Operation("get", "/healthz", "healthz", "public", "Liveness", "The process is up.",
              "public", 200, "Alive.", rs.Alive),
    Operation("get", "/readyz", "readyz", "public", "Readiness",
              "Redis and the database are reachable, and the live book is not being rebuilt "
              "from SQL (after Redis lost its data set).", "public", 200, "Ready.", rs.Readiness,
              extra_responses={"503": (("Not ready: the same body with status unavailable "
                                        "(not a problem document)."), rs.Readiness)}),
    Operation("get", "/metrics", "metrics", "public", "Metrics",
              "Prometheus text format: the counters, gauges and histograms of every process of "
              "this server (offers by outcome, acknowledgement and push latency, open "
              "WebSockets, persister and close lag, backing-service errors, requests by route "
              "template). Counts and durations only: no ids, no personal data.", "public", 200,
              "The metrics.", {"type": "string"}, ok_media="text/plain"),
    Operation("get", "/v1/openapi.json", "openapi", "public", "This OpenAPI document",
              "The machine-readable contract.", "public", 200, "OpenAPI 3.1 document.",
              {"type": "object"}),
    Operation("get", "/docs", "docs", "public", "Human documentation",
              "This document rendered as HTML.", "public", 200, "HTML page.",
              {"type": "string"}, ok_media="text/html"),
    Operation("get", "/v1/calendar/deadline", "calendarDeadline", "public",
              "Business-day deadline",
              "The deadline `business_days` Turkish business days strictly after the day of "
              "`start`, at the round close time, by the same rules as the rounds.", "public",
              200, "The deadline.", rs.Deadline, query=rq.DeadlineQuery),
    Operation("get", "/v1/calendar/holidays", "calendarHolidays", "public",
              "Turkish public holidays",
              "The holidays of a year as the business-day rules see them.", "public",
              200, "The holidays.", rs.Holidays, query=rq.HolidaysQuery),
    # -- banks
    Operation("post", "/v1/oauth/token", "oauthToken", "bank", "Bank access token",
              "OAuth2 client credentials (form-encoded). Use the `access_token` as "
              "`Authorization: Bearer <token>` on `/v1/bank/...` until it expires.", "public",
              200, "A bank token.", rs.Token, body=rq.OAuthTokenForm, form=True,
              problems={400: ("unsupported_grant_type", "validation_failed", "bad_request"),
                        401: ("invalid_client",)}),
    Operation("get", "/v1/bank/rounds", "bankRounds", "bank", "The pool of rounds",
              "Open rounds (the pool), or with another `state` the finished rounds this bank "
              "bid in, soonest deadline first.", "bank", 200, "A page of rounds.",
              rs.RoundList, query=rq.BankRoundsQuery),
    Operation("get", "/v1/bank/rounds/{round_id}", "bankRound", "bank", "One round",
              "An open round, or a finished one this bank bid in, with this bank's own offers.",
              "bank", 200, "The round.", rs.RoundDetail),
    Operation("post", "/v1/bank/rounds/{round_id}/offers", "postOffer", "bank", "Send an offer",
              "A new offer in an open round. A bank may keep several live offers in a round, "
              "up to `IGE_MAX_OFFERS_PER_BANK` (default 5); one more is 409 `offer_limit` "
              "(revise one of them instead). Ranked by apr, then annual_rate, then earlier "
              "seq.", "bank",
              201, "The offer as accepted, with its current rank.", rs.Offer,
              body=rq.OfferTermsBody, idempotent=True,
              problems={409: ("round_closed", "offer_limit")}),
    Operation("put", "/v1/bank/rounds/{round_id}/offers/{offer_id}", "putOffer", "bank",
              "Revise an offer",
              "Replaces the terms of one of this bank's offers: `version` + 1. Offers are "
              "revised, never deleted; every version is kept. Another bank's offer is 404.",
              "bank", 200, "The new version.", rs.Offer, body=rq.OfferTermsBody,
              idempotent=True, problems={409: ("round_closed",)}),
    Operation("get", "/v1/bank/rounds/{round_id}/book", "bankBook", "bank", "The masked book",
              "Every offer of the round, masked: other banks appear only under a random label.",
              "bank", 200, "The book.", rs.Book, problems={403: ("offer_required",)}),
    Operation("get", "/v1/bank/rounds/{round_id}/result", "bankResult", "bank",
              "This bank's result",
              "After the close: the reference number, the binding period and this bank's "
              "offers with their final ranks and whether the exporter chose one.", "bank",
              200, "The result.", rs.Result, problems={409: ("round_open",)}),
    # -- exporters
    Operation("post", "/v1/exporter/register", "exporterRegister", "exporter",
              "Register an exporter",
              "Creates an inactive account and returns an otpauth URI for an authenticator "
              "app; activate it with a first code.", "public", 201, "The account.",
              rs.Registered, body=rq.RegisterBody, idempotent=True,
              problems={409: ("conflict",)}),
    Operation("post", "/v1/exporter/activate", "exporterActivate", "exporter",
              "Activate an account",
              "Proves the authenticator app works with a first one-time code.", "public",
              200, "Activated.", rs.Activated, body=rq.ActivateBody,
              problems={401: ("unauthorized", "totp_invalid", "totp_reused"),
                        423: ("locked",)}),
    Operation("post", "/v1/exporter/login", "exporterLogin", "exporter", "Exporter login",
              "E-mail, password and a one-time code; a code is never accepted twice. A wrong "
              "e-mail, password or code is 401 `unauthorized` (which one is not said) and "
              "counts as a failure; five failures lock the account (423 `locked`) until the "
              "operator unlocks it. With the right password, a right code that was already "
              "used is 401 `totp_reused` (wait for the next code; not a failure), and an "
              "account not activated yet is 403 `not_activated` (the code is not used up: "
              "activate with it).", "public", 200, "An exporter token.",
              rs.ExporterToken, body=rq.LoginBody,
              problems={401: ("unauthorized", "totp_reused"), 403: ("not_activated",),
                        423: ("locked",)}),
    Operation("get", "/v1/exporter/applications/{application_id}", "exporterApplication",
              "exporter", "One application",
              "The application with its round's state; no offer data while the round is open.",
              "exporter", 200, "The application.", rs.Application),
    Operation("get", "/v1/exporter/applications/{application_id}/results", "exporterResults",
              "exporter", "The offers after close",
              "Every binding offer with the bank's code and name (shown only here, after the "
              "close), best first.", "exporter", 200, "The results.", rs.ExporterResults,
              problems={409: ("round_open",)}),
    Operation("post", "/v1/exporter/applications/{application_id}/accept", "exporterAccept",
              "exporter", "Accept an offer",
              "Accepts one binding offer inside the binding window; one acceptance per round.",
              "exporter", 200, "The results with accepted_offer_id set.", rs.ExporterResults,
              body=rq.AcceptBody, idempotent=True,
              problems={409: ("binding_expired", "already_accepted", "round_open",
                              "conflict")}),
    Operation("get", "/v1/exporter/guarantee-package", "exporterGuaranteePackage", "exporter",
              "The guarantee package in force",
              "The versioned rules applications are decided under: group limits (TL), "
              "guarantee rate caps, tenor and grace caps per loan type, the conversion rates "
              "for foreign-currency requests, the re-application rule, the scorecard's "
              "weights, bands and pass mark, and the consent text (muvafakatname) with its "
              "version.", "exporter", 200, "The package and the consent text.",
              rs.GuaranteePackageOut),
    Operation("post", "/v1/exporter/companies", "exporterMatchCompany", "exporter",
              "Match a company and give consent",
              "Checks the trade registry (MERSİS): the company exists, is active and the "
              "caller (by national id) is an authorised signatory; then records the consent "
              "(muvafakatname) with its text version and time (once per text version: "
              "matching again while that consent is active records nothing new).", "exporter",
              201, "The company.", rs.CompanyOut, body=rq.CompanyMatchBody, idempotent=True,
              problems={403: ("not_signatory",), 409: ("conflict",),
                        422: ("company_not_found", "company_inactive")}),
    Operation("get", "/v1/exporter/companies", "exporterCompanies", "exporter", "My companies",
              "The companies the caller is matched to, with their consent state.", "exporter",
              200, "The companies.", rs.CompanyList),
    Operation("delete", "/v1/exporter/companies/{company_id}/consent",
              "exporterWithdrawConsent", "exporter", "Withdraw the consent",
              "Withdraws the company's consent (any authorised signatory may): new "
              "applications are refused (409 `consent_withdrawn`) and the company's data is "
              "hidden in the pool: its open rounds show no name, tax id, contact or assessment "
              "from now on. Give the consent again with POST /v1/exporter/companies.",
              "exporter", 200, "The company with the withdrawn consent.", rs.CompanyOut),
    Operation("post", "/v1/exporter/applications", "exporterApply", "exporter",
              "Apply for a guaranteed loan",
              "Checks the form against the guarantee package (422 with stable codes such as "
              "`tenor_below_minimum`, `grace_above_maximum`, `guarantee_above_loan`), gathers "
              "the trade registry, financial statements, risk centre and export performance "
              "of the company and its risk group, applies the intake and hard rules and the "
              "scorecard, and stores the decision with every input and reason. Approved: the "
              "offer round opens and is announced on the `pool` topic. Rejected: the process "
              "ends with the reasons. Both are 201. Refused without a decision: 409 "
              "`consent_withdrawn`; 409 `reapplication_blocked` (rejected twice within 3 "
              "months; the problem carries `not_before`); 409 `conflict` (another application "
              "of the same risk group is being assessed).", "exporter",
              201, "The decided application.", rs.Application, body=rq.ApplicationForm,
              idempotent=True,
              problems={403: ("not_signatory",),
                        409: ("consent_withdrawn", "reapplication_blocked", "conflict"),
                        422: ("company_not_found",)}),
    Operation("get", "/v1/exporter/applications", "exporterApplications", "exporter",
              "My applications",
              "The caller's applications, newest first (at most 100): decided in the portal, "
              "and taken in by the operator for the caller (`decision.decided_by` "
              "`operator`).",
              "exporter", 200, "The applications.", rs.ApplicationList),
    # -- stream
    Operation("post", "/v1/stream/tickets", "streamTicket", "stream", "Live stream ticket",
              _STREAM_DESCRIPTION, "any", 201, "A ticket.", rs.Ticket),
    # -- operator
    Operation("post", "/v1/admin/banks", "adminCreateBank", "operator", "Register a bank",
              "Creates a bank and its OAuth2 client credentials (also `ige` CLI).", "operator",
              201, "The credentials (the secret is shown once).", rs.BankCredentials,
              body=rq.BankBody, idempotent=True, problems={409: ("conflict",)}),
    Operation("get", "/v1/admin/banks", "adminBanks", "operator", "List banks", "Every bank.",
              "operator", 200, "The banks.", rs.BankList),
    Operation("post", "/v1/admin/banks/{bank_id}/users", "adminCreateDeskUser", "operator",
              "Create a desk user of a bank",
              "A person at the bank with a login of their own for the desk pages (`/desk`): "
              "`viewer` sees the pool, books and results, `trader` also offers and revises "
              "(each offer audited with the person, `desk_offer`), `admin` is the bank's user "
              "administrator: sees what a viewer sees and creates and deactivates the bank's "
              "own desk users at `/desk/users` (never offers). The account is inactive "
              "until the person activates it at `activation_url` with the one-time "
              "`activation_code` (shown once), choosing a password and an authenticator "
              "(TOTP). Login then has the exporters' rules: password and one-time code, a "
              "code accepted once, five failures by the authenticator's holder lock it.",
              "operator", 201, "The user and its activation code (shown once).",
              rs.DeskUserCreated, body=rq.DeskUserBody, idempotent=True,
              problems={409: ("conflict",)}),
    Operation("get", "/v1/admin/banks/{bank_id}/users", "adminDeskUsers", "operator",
              "A bank's desk users", "The bank's desk users, by e-mail.", "operator", 200,
              "The users.", rs.DeskUserList),
    Operation("post", "/v1/admin/banks/{bank_id}/users/{desk_user_id}/deactivate",
              "adminDeactivateDeskUser", "operator", "Deactivate a desk user",
              "The person can no longer sign in or activate (an outstanding activation code is "
              "void), and every browser session they have ends at once, on every server. "
              "Deactivating again answers the same and changes nothing. An unknown user and "
              "another bank's user are both 404.", "operator", 200,
              "The user, deactivated.", rs.DeskUser, problems={404: ("not_found",)}),
    Operation("post", "/v1/admin/banks/{bank_id}/users/{desk_user_id}/activation-code",
              "adminNewActivationCode", "operator", "A new activation code for a desk user",
              "For a desk user still waiting for activation whose code was lost or ran out: a "
              "new one-time code (shown once, good for 7 days); the old one is void. An "
              "active or deactivated user is 409 `conflict`; an unknown user and another "
              "bank's user are both 404. Not idempotent: each call is a new code.",
              "operator", 201, "The user and its new activation code (shown once).",
              rs.DeskUserCreated, problems={404: ("not_found",), 409: ("conflict",)}),
    Operation("post", "/v1/admin/banks/{bank_id}/client-secret", "adminRotateClientSecret",
              "operator", "Rotate a bank's client secret",
              "A new OAuth2 client secret for the bank's API client, shown once (stored only "
              "as a hash); the old secret gets no token from now on. Tokens issued before "
              "keep working until they expire (`expires_in` of the token, 15 minutes by "
              "default): they are self-contained. Not idempotent: each call is a new secret.",
              "operator", 200, "The credentials with the new secret (shown once).",
              rs.BankCredentials, problems={404: ("not_found",)}),
    Operation("post", "/v1/admin/operators", "adminCreateOperator", "operator",
              "Create an operator (a console login)",
              "A person of the guarantee institution with a login of their own for the "
              "operator's console (`/operator`): rounds by state, any round's unmasked "
              "history, the audit trail, banks and their desk users, decision records. The "
              "account is inactive until the person activates it at `activation_url` with the "
              "one-time `activation_code` (shown once, stored as a hash, good for 7 days), "
              "choosing a password and an authenticator (TOTP); login then has the exporters' "
              "rules. What they do in the console is audited as `operator:<user_id>`. The "
              "admin token stays for automation. Also `ige admin create-operator`.",
              "operator", 201, "The operator and its activation code (shown once).",
              rs.OperatorCreated, body=rq.OperatorBody, idempotent=True,
              problems={409: ("conflict",)}),
    Operation("post", "/v1/admin/rounds", "adminCreateRound", "operator",
              "Open a round (manual intake)",
              "An application approved outside the portal or after a manual review; the round "
              "runs exactly like one opened by scoring. The intake is stored as an "
              "application (`application_id`), approved and decided by the operator "
              "(`decision.decided_by` `operator`, reason `operator_intake`): the operator "
              "sees it at `GET /v1/admin/applications/{application_id}`, and the exporter "
              "named by `exporter_user_id` (422 `unknown_exporter` if there is none) lists "
              "it, follows it and accepts an offer as for its own.", "operator",
              201, "The round, open.", rs.AdminRound, body=rq.RoundIntakeBody, idempotent=True,
              problems={409: ("conflict",)}),
    Operation("get", "/v1/admin/rounds/{round_id}", "adminRound", "operator", "One round",
              "Any round, with its persistence state.", "operator", 200, "The round.",
              rs.AdminRound),
    Operation("get", "/v1/admin/applications/{application_id}", "adminApplication", "operator",
              "One application, explained",
              "The application with every input the decision read (registry records of the "
              "company and its risk group, financial statements, risk-centre reports, export "
              "performance, the exposures counted towards the group limit) and every number of "
              "the guarantee package it was decided under; for an operator's intake, what "
              "was taken in and who decided.", "operator",
              200, "The application.", rs.AdminApplication,
              path_docs={"application_id": "Any application."}),
    Operation("get", "/v1/admin/exporters", "adminExporters", "operator",
              "Find an exporter account",
              "The account with this e-mail (a list of at most one), with its failed "
              "attempts and whether it is locked.", "operator", 200, "The accounts.",
              rs.ExporterAccountList, query=rq.ExporterQuery),
    Operation("post", "/v1/admin/exporters/{user_id}/unlock", "adminUnlockExporter",
              "operator", "Unlock an exporter account",
              "Clears the account's failed attempts: a locked account (five failures) can log "
              "in again. Audited (`exporter_unlocked`, with the attempts cleared); safe to "
              "repeat. Also `ige admin unlock-exporter <e-mail or user id>`.", "operator",
              200, "The account, unlocked.", rs.ExporterAccount,
              path_docs={"user_id": "The exporter's user id."}),
    Operation("get", "/v1/admin/audit", "adminAudit", "operator", "Audit trail",
              f"The append-only audit trail, oldest first, {L.AUDIT_PAGE} entries a page; "
              "filtered by round, actor, action and time (`since` inclusive, `until` "
              "exclusive), each optional.",
              "operator",
              200, "A page of entries.", rs.AuditPage, query=rq.AuditQuery),
)
