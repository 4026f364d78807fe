"""The benchmark's baseline: the practical ceiling of a Python bid path on this machine.

A bare Starlette endpoint on the offer routes that reads the request body, runs **one**
EVALSHA of a trivial script that writes (``INCR``, so the durable Redis fsyncs its AOF exactly
as for a real offer) and answers 201 with a small JSON body. Served by uvicorn with the same
options and worker count as ``ige serve``. Everything the real path adds (auth, validation,
pricing, the book script, fan-out, persistence) is missing on purpose.

    REDIS_URL=redis://... uvicorn loadtests.baseline_app:app
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SCRIPT = "return redis.call('INCR', KEYS[1])"
KEY = "ige:bench:baseline"


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    r = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    app.state.script = r.register_script(SCRIPT)
    yield
    await r.aclose()


async def offer(request: Request) -> JSONResponse:
    await request.body()
    n = await request.app.state.script(keys=[KEY])
    return JSONResponse({"seq": int(n)}, status_code=201)


app = Starlette(routes=[
    Route("/v1/bank/rounds/{round_id}/offers", offer, methods=["POST"]),
    Route("/v1/bank/rounds/{round_id}/offers/{offer_id}", offer, methods=["PUT"]),
], lifespan=lifespan)
