"""The operator's console: the banks (``/operator/banks``), each with its API client and its desk
users. An operator creates a bank (its client secret shown once), rotates a bank's client
secret (the new one shown once; the old one stops working), creates a desk user (the activation
code shown once) and deactivates one (every session of theirs ends).

Each form posts with the session's CSRF token to a route that calls the API's use case
(``Accounts``), with the operator as the audit's actor (``operator:<user id>``), then redirects
(303) to the banks page; a secret goes there through ``usecases.once`` (this session, the next
load only: a reload shows it no more). Form values are read with the API's request models.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import views
from gateway.contract.requests import BankBody, DeskUserBody, read
from gateway.http import portal
from gateway.pages.desk import N_, OTHER_FIELD_ERROR, OTHER_REFUSAL, _form
from gateway.pages.desk_users import NOT_PENDING
from gateway.pages.operator import is_operator, to_login
from gateway.pages.web import Page, csrf_ok, page_of, refused
from gateway.routes import ids
from usecases.accounts import NewDeskUser
from usecases.outcomes import Refusal

BANKS = "/operator/banks"
#: what a field of the bank and desk-user forms that the API's parser refused says
FORM_MESSAGES = {
    "bank_code": N_("2 to 20 characters: A-Z, 0-9 and _."),
    "name": N_("Enter a name (letters, no control characters)."),
    "email": N_("Not a valid e-mail address."),
    "full_name": N_("Enter a full name (letters, no control characters)."),
    "role": N_("Choose viewer, trader or user administrator."),
}
#: what a refusal of these forms says (the API's codes)
BANK_REFUSALS = {
    "conflict": N_("This already exists."),
    "not_found": N_("No such bank or desk user."),
}


async def _banks_context(request: Request) -> dict[str, Any]:
    accounts = portal(request).accounts
    out = []
    for b in await accounts.banks():
        users = await accounts.desk_users(b.id)
        out.append({"bank": b, "users": [] if isinstance(users, Refusal) else users})
    return {"banks": out}


async def _render(page: Page, status: int = 200, **ctx: Any) -> Response:
    return page.render("operator/banks.html", status, **(await _banks_context(page.request)),
                       **ctx)


async def banks(request: Request) -> Response:
    """The banks; what the last form made, once (``?once=``)."""
    page = await page_of(request)
    if not is_operator(page):
        return to_login(page)
    assert page.sid is not None
    token = request.query_params.get("once", "")
    shown = await portal(request).once.take(page.sid, token) if token else None
    return await _render(page, shown=shown, done=request.query_params.get("done"))


async def _operator_form(request: Request) -> tuple[Page, dict[str, Any] | Response]:
    page = await page_of(request)
    if not is_operator(page):
        return page, to_login(page)
    form = await _form(request)
    if not csrf_ok(page, form):
        return page, refused(page)
    return page, dict(form)


async def _show_once(page: Page, what: dict[str, Any], anchor: str) -> Response:
    assert page.sid is not None
    token = await portal(page.request).once.keep(page.sid, what)
    return page.redirect(f"{BANKS}?once={token}#{anchor}")


def _field_errors(page: Page, errors: list[Any]) -> dict[str, str]:
    return {e.field: page._(FORM_MESSAGES.get(e.field, OTHER_FIELD_ERROR)) for e in errors}


async def create_bank(request: Request) -> Response:
    page, form = await _operator_form(request)
    if isinstance(form, Response):
        return form
    assert page.session is not None
    values = {"bank_code": str(form.get("bank_code", "")).strip().upper(),
              "name": str(form.get("name", "")).strip()}
    got = read(BankBody, values)
    if got.model is None:
        return await _render(page, 422, bank_form=values,
                             bank_errors=_field_errors(page, got.errors))
    made = await portal(request).accounts.create_bank(got.model.bank_code, got.model.name,
                                                      page.session.actor)
    if made is None:
        return await _render(page, 409, bank_form=values,
                             bank_errors={"bank_code": page._(BANK_REFUSALS["conflict"])})
    return await _show_once(page, {"kind": "bank_created",
                                   **views.bank_credentials(made)}, f"bank-{made.bank_id}")


async def create_desk_user(request: Request) -> Response:
    page, form = await _operator_form(request)
    if isinstance(form, Response):
        return form
    assert page.session is not None
    bank_id = request.path_params["bank_id"]
    values = {"email": str(form.get("email", "")).strip(),
              "full_name": str(form.get("full_name", "")).strip(),
              "role": str(form.get("role", ""))}
    got = read(DeskUserBody, values)
    if got.model is None:
        return await _render(page, 422, user_form={bank_id: values},
                             user_errors={bank_id: _field_errors(page, got.errors)})
    b = got.model
    made = await portal(request).accounts.create_desk_user(bank_id, b.email, b.full_name, b.role,
                                                           page.session.actor)
    if isinstance(made, Refusal):
        status = 404 if made.code == "not_found" else 409
        return await _render(page, status, user_form={bank_id: values}, user_errors={
            bank_id: {"email": page._(BANK_REFUSALS.get(made.code, OTHER_REFUSAL))}})
    assert isinstance(made, NewDeskUser)
    return await _show_once(page, {"kind": "desk_user_created",
                                   **views.desk_user_created(made)}, f"bank-{bank_id}")


async def rotate_secret(request: Request) -> Response:
    """A new client secret for the bank's API client, shown once; the old one stops working
    (``Accounts.rotate_client_secret``, the API's)."""
    page, form = await _operator_form(request)
    if isinstance(form, Response):
        return form
    assert page.session is not None
    bank_id = request.path_params["bank_id"]
    done = await portal(request).accounts.rotate_client_secret(bank_id, page.session.actor)
    if isinstance(done, Refusal):
        return page.render("error.html", 404, title=page._("No such bank"),
                           message=page._(BANK_REFUSALS["not_found"]))
    return await _show_once(page, {"kind": "secret_rotated", **views.bank_credentials(done)},
                            f"bank-{bank_id}")


async def new_activation_code(request: Request) -> Response:
    """A new activation code, shown once, for a desk user still waiting for activation (the
    first was lost or ran out; ``Accounts.new_activation_code``, the API's)."""
    page, form = await _operator_form(request)
    if isinstance(form, Response):
        return form
    assert page.session is not None
    bank_id = request.path_params["bank_id"]
    made = await portal(request).accounts.new_activation_code(
        bank_id, request.path_params["desk_user_id"], page.session.actor)
    if isinstance(made, Refusal):
        if made.code == "not_found":
            return page.render("error.html", 404, title=page._("No such desk user"),
                               message=page._(BANK_REFUSALS["not_found"]))
        return await _render(page, 409, error=page._(NOT_PENDING))
    return await _show_once(page, {"kind": "activation_renewed",
                                   **views.desk_user_created(made)}, f"bank-{bank_id}")


async def deactivate_user(request: Request) -> Response:
    """The desk user can no longer sign in or activate, and every session of theirs ends
    (``Accounts.deactivate_desk_user``, the API's)."""
    page, form = await _operator_form(request)
    if isinstance(form, Response):
        return form
    assert page.session is not None
    bank_id = request.path_params["bank_id"]
    done = await portal(request).accounts.deactivate_desk_user(
        bank_id, request.path_params["desk_user_id"], page.session.actor)
    if isinstance(done, Refusal):
        return page.render("error.html", 404, title=page._("No such desk user"),
                           message=page._(BANK_REFUSALS["not_found"]))
    return page.redirect(f"{BANKS}?done=deactivated#bank-{bank_id}")


ROUTES: list[BaseRoute] = [
    Route(BANKS, banks),
    Route(BANKS, create_bank, methods=["POST"]),
    Route(ids.path(BANKS + "/{bank_id}/users"), create_desk_user, methods=["POST"]),
    Route(ids.path(BANKS + "/{bank_id}/secret"), rotate_secret, methods=["POST"]),
    Route(ids.path(BANKS + "/{bank_id}/users/{desk_user_id}/deactivate"), deactivate_user,
          methods=["POST"]),
    Route(ids.path(BANKS + "/{bank_id}/users/{desk_user_id}/activation-code"),
          new_activation_code, methods=["POST"]),
]
