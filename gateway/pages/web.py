"""Request plumbing of the pages: the browser session (a cookie naming a server-side record,
``usecases.sessions``), CSRF, the language, rendering with Jinja2, and the security headers of
every page (``PageHeaders``).

* **Session cookie** ``ige_session``: HttpOnly, SameSite=Lax, Path=/, Secure when the request
  came over https; no Max-Age (the server ends it: idle and absolute limits).
* **CSRF**: every form carries a hidden ``csrf`` field and every state-changing fetch an
  ``X-CSRF-Token`` header. With a session it is the session's own token; before a login (the
  login and activation forms, the language switch) it is tied to a random pre-session cookie
  ``ige_pre`` (HMAC of it with the server's key). A POST without the right token, or whose
  ``Origin`` is another site, is refused with a page saying so (403).
* **Headers** of every page and static file: a strict Content-Security-Policy (no inline
  script or style, no framing, forms only to this site), ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``; pages are not cached.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http import portal, runtime
from gateway.pages import i18n
from gateway.pages.paths import STATIC_PREFIX, is_page
from usecases.sessions import BrowserSession

SESSION_COOKIE = "ige_session"
PRE_COOKIE = "ige_pre"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class PageHeaders:
    """Pure ASGI: the security headers on every page and static file, ``no-store`` on
    pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        page = is_page(path)
        if not page and not path.startswith(STATIC_PREFIX):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if page:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


# ----------------------------------------------------------------------------- rendering
def _environment(lang: str) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(),
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(i18n.gettext_of(lang), newstyle=True)  # type: ignore[attr-defined]
    fmt = i18n.Formats(lang)
    env.globals.update(fmt=fmt, lang=lang)
    return env


ENVIRONMENTS = {lang: _environment(lang) for lang in i18n.LANGS}


def lang(request: Request) -> str:
    return i18n.lang_of(request.cookies.get(i18n.COOKIE))


def _(request: Request, message: str) -> str:
    """A message of the catalogue in the request's language."""
    return i18n.gettext_of(lang(request)).gettext(message)


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _pre_token(request: Request, pre: str) -> str:
    key = runtime(request).settings.secret_key.encode()
    return hmac.new(key, b"ige-csrf:" + pre.encode(), hashlib.sha256).hexdigest()


class Page:
    """What a page handler knows of its request: the session (if any), the CSRF token of its
    forms, the language; it renders templates and sets the cookies they need."""

    def __init__(self, request: Request, session: BrowserSession | None,
                 sid: str | None) -> None:
        self.request = request
        self.session = session
        self.sid = sid
        self.lang = lang(request)
        self._pre = request.cookies.get(PRE_COOKIE, "")
        self._new_pre = False
        if session is None and not (0 < len(self._pre) <= 64):
            self._pre = secrets.token_urlsafe(24)
            self._new_pre = True

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else \
            _pre_token(self.request, self._pre)

    def _(self, message: str) -> str:
        return i18n.gettext_of(self.lang).gettext(message)

    def cookies(self, response: Response) -> Response:
        if self._new_pre:
            response.set_cookie(PRE_COOKIE, self._pre, httponly=True, samesite="lax",
                                secure=secure(self.request), path="/")
        return response

    def render(self, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        env = ENVIRONMENTS[self.lang]
        path = self.request.url.path
        html = env.get_template(template).render(
            page=self, session=self.session, csrf=self.csrf, path=path, home=home_of(path),
            js=i18n.Formats(self.lang).js(), server_now=portal(self.request).deps.clock(),
            **ctx)
        out = HTMLResponse(html, status_code=status)
        self.cookies(out)
        return out

    def redirect(self, to: str) -> RedirectResponse:
        out = RedirectResponse(to, status_code=303)
        self.cookies(out)
        return out

    def start_session(self, response: Response, sid: str) -> Response:
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="lax",
                            secure=secure(self.request), path="/")
        return response

    def end_session(self, response: Response) -> Response:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                               secure=secure(self.request))
        return response


def home_of(path: str) -> str:
    """The home page of the part of the site a path is in (the desk's by default)."""
    part = "/" + path.split("/", 2)[1] if path.startswith("/") else ""
    return part if part in ("/desk", "/exporter", "/operator") else "/desk"


async def page_of(request: Request) -> Page:
    sid = request.cookies.get(SESSION_COOKIE, "")
    session = await portal(request).sessions.find(sid) if sid else None
    return Page(request, session, sid if session is not None else None)


def same_origin(request: Request) -> bool:
    """A browser's ``Origin`` (when it sends one) is this site's."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    got = urlsplit(origin)
    return got.netloc == host and got.scheme in ("http", "https")


def csrf_ok(page: Page, form: Mapping[str, Any] | FormData | None) -> bool:
    """The request carries its page's CSRF token (form field or header) and comes from this
    site."""
    request = page.request
    if not same_origin(request):
        return False
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and form is not None:
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent:
        return False
    return hmac.compare_digest(sent.encode(), page.csrf.encode())


def refused(page: Page) -> HTMLResponse:
    """The clear page of a form without its token (or from another site)."""
    return page.render("error.html", 403, title=page._("This form was refused"),
                       message=page._("The form was not sent from this site's page, or the "
                                      "page is too old. Go back, reload the page and try "
                                      "again."))


def safe_next(target: str | None, default: str) -> str:
    """A local path to return to (never another site: no scheme, no host, no //)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target[:500]
