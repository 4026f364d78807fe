"""What a page shows once (a new bank's client secret, a rotated one, an activation code): kept
server-side for the one browser session that made it, for a few minutes, and handed over by the
next page load only (a redirect after the POST; a reload, or any other session, finds nothing).

The record lives through the guards port beside the sessions, under a hash of the session id
and a random token (the token travels in the redirect's URL; alone it opens nothing)."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from usecases.context import Deps

ONCE_TTL_S = 300  # how long a secret waits for its page


def _key(sid: str, token: str) -> str:
    return hashlib.sha256(f"ige-once:{sid}:{token}".encode()).hexdigest()


class ShownOnce:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    async def keep(self, sid: str, what: dict[str, Any]) -> str:
        """Keep ``what`` for this session's next page; returns the token naming it."""
        token = secrets.token_urlsafe(16)
        await self.d.guards.put_session(_key(sid, token), json.dumps(what), ONCE_TTL_S)
        return token

    async def take(self, sid: str, token: str) -> dict[str, Any] | None:
        """What was kept under ``token`` for this session, once; None afterwards."""
        if not sid or not token or len(token) > 64:
            return None
        key = _key(sid, token)
        raw = await self.d.guards.get_session(key)
        if raw is None:
            return None
        await self.d.guards.drop_session(key)
        try:
            got = json.loads(raw)
        except ValueError:
            return None
        return got if isinstance(got, dict) else None
