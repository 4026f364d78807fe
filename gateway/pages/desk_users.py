"""A bank's user administrator on the desk pages (``/desk/users``): the bank's own desk users,
a new one (the activation code shown once, as the operator's API returns it) and deactivating
one (their sessions end everywhere, their login is refused).

The bank is always the session's (``usecases.desk.Desk``): a user id of another bank answers
exactly as an unknown one. Everything is audited with the person (``desk:<user id>``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.contract.requests import DESK_ROLES, DeskUserBody, read
from gateway.http import portal
from gateway.pages.desk import N_, OTHER_FIELD_ERROR, _form, refusal_text
from gateway.pages.web import Page, csrf_ok, page_of, refused
from gateway.routes import ids
from usecases.accounts import NewDeskUser
from usecases.outcomes import Refusal

USER_FIELDS = ("email", "full_name", "role")
#: what a field of the new-user form that the API's parser refused says, by field
USER_FIELD_MESSAGES = {
    "email": N_("Not a valid e-mail address."),
    "full_name": N_("Enter the full name (letters, no control characters)."),
    "role": N_("Choose one of the listed roles."),
}
#: what a refusal says on these pages, by its code
USER_REFUSALS = {
    "conflict": N_("A desk user with this e-mail address exists."),
    "forbidden": N_("Only your bank's user administrator manages its desk users."),
    "not_found": N_("No such desk user."),
    "self": N_("You cannot deactivate your own account: ask the guarantee institution."),
}
NOT_PENDING = N_("Only a user waiting for activation gets a new activation code.")


def _text(page: Page, r: Refusal) -> str:
    return page._(USER_REFUSALS[r.code]) if r.code in USER_REFUSALS else refusal_text(page, r)


async def _users_page(request: Request, page: Page, status: int = 200, **ctx: Any
                      ) -> Response:
    """The list and the form; a page saying so to a desk user who is not an administrator."""
    assert page.session is not None
    users = await portal(request).desk.users(page.session)
    if isinstance(users, Refusal):
        return page.render("error.html", 403, title=page._("Desk users"),
                           message=_text(page, users))
    ctx.setdefault("values", {"role": "viewer"})
    ctx.setdefault("errors", {})
    rows = [{"u": u, "status": u.status, "me": u.id == page.session.user_id}
            for u in users]
    return page.render("desk/users.html", status, users=rows, roles=DESK_ROLES, **ctx)


def _desk(page: Page) -> bool:
    return page.session is not None and page.session.kind == "desk"


def _to_login(page: Page) -> Response:
    return page.redirect("/desk/login?next=/desk/users")


async def _posted(request: Request) -> tuple[Page, Mapping[str, Any]] | Response:
    """A POST of these pages: the desk user's page and form, or the answer that ends it there
    (to the login when not signed in, refused when the CSRF token does not match)."""
    page = await page_of(request)
    if not _desk(page):
        return _to_login(page)
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    return page, form


async def _refused_user(request: Request, page: Page, r: Refusal,
                        conflict: str | None = None) -> Response:
    """An action on one desk user refused: 404 when there is no such user (of this bank),
    else the list with the reason (403 not an administrator, 409 otherwise)."""
    if r.code == "not_found":
        return page.render("error.html", 404, title=page._("No such desk user"),
                           message=_text(page, r))
    text = page._(conflict) if conflict and r.code == "conflict" else _text(page, r)
    return await _users_page(request, page, 403 if r.code == "forbidden" else 409, error=text)


async def users(request: Request) -> Response:
    page = await page_of(request)
    if not _desk(page):
        return _to_login(page)
    return await _users_page(request, page)


async def create_user(request: Request) -> Response:
    """A new desk user of the administrator's bank: the API's parser (its field errors next to
    the fields), then the activation code, shown on this answer only."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    assert page.session is not None
    values = {k: str(form.get(k, "")).strip() for k in USER_FIELDS}
    got = read(DeskUserBody, values)
    if got.errors or got.model is None:
        errors = {e.field: page._(USER_FIELD_MESSAGES.get(e.field, OTHER_FIELD_ERROR))
                  for e in got.errors}
        return await _users_page(request, page, 422, values=values, errors=errors)
    b = got.model
    made = await portal(request).desk.create_user(page.session, b.email, b.full_name, b.role)
    if isinstance(made, Refusal):
        status = 409 if made.code == "conflict" else 403 if made.code == "forbidden" else 422
        return await _users_page(request, page, status, values=values,
                                 error=_text(page, made))
    assert isinstance(made, NewDeskUser)
    return await _users_page(request, page, 201, created=made.user,
                             activation_code=made.activation_code)


async def new_activation_code(request: Request) -> Response:
    """A new activation code for a user still waiting for activation (the first was lost or
    ran out), shown on this answer only."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page = posted[0]
    assert page.session is not None
    made = await portal(request).desk.new_activation_code(page.session,
                                                          request.path_params["user_id"])
    if isinstance(made, Refusal):
        return await _refused_user(request, page, made, conflict=NOT_PENDING)
    return await _users_page(request, page, 201, created=made.user, renewed=True,
                             activation_code=made.activation_code)


async def deactivate_user(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page = posted[0]
    assert page.session is not None
    done = await portal(request).desk.deactivate_user(page.session,
                                                      request.path_params["user_id"])
    if isinstance(done, Refusal):
        return await _refused_user(request, page, done)
    return page.redirect("/desk/users?deactivated=1")


ROUTES: list[BaseRoute] = [
    Route("/desk/users", users, methods=["GET"]),
    Route("/desk/users", create_user, methods=["POST"]),
    Route(ids.path("/desk/users/{user_id}/deactivate"), deactivate_user, methods=["POST"]),
    Route(ids.path("/desk/users/{user_id}/activation-code"), new_activation_code,
          methods=["POST"]),
]
