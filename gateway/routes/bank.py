"""Bank routes: the token, the pool, offers and revisions, the masked book, the result."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import faults, views
from gateway.contract.requests import BankRoundsQuery, OAuthTokenForm, OfferTermsBody, parse, read
from gateway.http import offer_idempotency, passed, portal, principal, reply, throttled
from gateway.requestinfo import note
from gateway.routes import ids
from usecases.bidding import Accepted
from usecases.outcomes import Draft, Refusal


async def oauth_token(request: Request) -> Response:
    form = parse(OAuthTokenForm, await request.form())
    acct = await throttled(request, "token", form.client_id)
    token = await portal(request).accounts.bank_token(form.client_id, form.client_secret)
    if not isinstance(token, Refusal):
        await passed(request, "token", acct)
    return reply(token, views.token)


async def rounds(request: Request) -> Response:
    """The pool (state=open: every open round) or the finished rounds this bank bid in."""
    p = principal(request, "bank")
    q = parse(BankRoundsQuery, request.query_params)
    return reply(await portal(request).bidding.pool(p.id, q.state, q.limit, q.cursor),
                 views.pool)


def _offer(raw: bytes) -> Draft:
    """The terms as far as they parse; the round's rules over them are the use case's."""
    got = read(OfferTermsBody, raw)
    return Draft(got.values, got.errors)


async def one_round(request: Request) -> Response:
    p = principal(request, "bank")
    detail = await portal(request).bidding.round(p.id, request.path_params["round_id"])
    return reply(detail, views.round_detail)


async def post_offer(request: Request) -> Response:
    info = note(request.scope)
    info.op = "submit"  # ige_offers_total{op="submit"} and its acknowledgement latency
    p = principal(request, "bank")
    raw = await request.body()
    draft = _offer(raw)
    key = request.headers.get("idempotency-key")
    idem = offer_idempotency(p.id, key, "POST", request.scope["path"], raw)
    accepted = await portal(request).bidding.submit(p.id, request.path_params["round_id"],
                                                    draft, idem)
    info.replayed = isinstance(accepted, Accepted) and accepted.replayed
    if faults.POINT is not None and isinstance(accepted, Accepted):
        faults.reached("offer_after_redis")
    return reply(accepted, views.offer, 201)


async def put_offer(request: Request) -> Response:
    info = note(request.scope)
    info.op = "revise"
    p = principal(request, "bank")
    raw = await request.body()
    draft = _offer(raw)
    key = request.headers.get("idempotency-key")
    idem = offer_idempotency(p.id, key, "PUT", request.scope["path"], raw)
    accepted = await portal(request).bidding.revise(
        p.id, request.path_params["round_id"], request.path_params["offer_id"], draft, idem)
    info.replayed = isinstance(accepted, Accepted) and accepted.replayed
    if faults.POINT is not None and isinstance(accepted, Accepted):
        faults.reached("offer_after_redis")
    return reply(accepted, views.offer)


async def book(request: Request) -> Response:
    p = principal(request, "bank")
    seen = await portal(request).bidding.book(p.id, request.path_params["round_id"])
    return reply(seen, lambda s: views.book(s, p.id))


async def result(request: Request) -> Response:
    p = principal(request, "bank")
    res = await portal(request).bidding.result(p.id, request.path_params["round_id"])
    return reply(res, views.bank_result)


#: the bid path: first in the router's list (it tries the routes in order)
OFFERS: list[Route] = [
    Route(ids.path("/v1/bank/rounds/{round_id}/offers/{offer_id}"), put_offer,
          methods=["PUT"]),
    Route(ids.path("/v1/bank/rounds/{round_id}/offers"), post_offer, methods=["POST"]),
]

ROUTES: list[BaseRoute] = [
    Route("/v1/oauth/token", oauth_token, methods=["POST"]),
    Route("/v1/bank/rounds", rounds),
    Route(ids.path("/v1/bank/rounds/{round_id}"), one_round),
    Route(ids.path("/v1/bank/rounds/{round_id}/book"), book),
    Route(ids.path("/v1/bank/rounds/{round_id}/result"), result),
]
