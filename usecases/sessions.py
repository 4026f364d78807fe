"""Browser sessions of the pages: server-side records (revocable: logging out drops the record,
and a dropped record is no session anywhere), ended after ``Policy.session_idle_s`` without a
request and ``Policy.session_max_s`` after the login whatever happens.

The cookie carries a random session id; the guards keep the record under a hash of it (a copy
of the store is no key to anyone's session). Each session has its own CSRF token, checked by
the gateway on every form and every state-changing fetch.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, replace

from usecases.context import Deps
from usecases.security import Principal


@dataclass(frozen=True)
class BrowserSession:
    kind: str  # "desk": a person at a bank; "exporter"
    user_id: str
    name: str  # shown in the page header
    csrf: str
    created_ms: int
    seen_ms: int
    bank_id: str | None = None
    role: str | None = None  # desk: viewer | trader | admin

    @property
    def bank(self) -> Principal:
        """Whom the session acts for in the bank's use cases and on the stream: its bank,
        exactly as an API client of that bank (same masking, same rules)."""
        assert self.bank_id is not None
        return Principal("bank", self.bank_id)

    @property
    def principal(self) -> Principal:
        """Whom the session is on the stream: the bank of a desk user, the exporter."""
        return self.bank if self.kind == "desk" else Principal(self.kind, self.user_id)

    @property
    def actor(self) -> str:
        """Who acted, in the audit trail: the person, not only the bank."""
        return f"{self.kind}:{self.user_id}"

    @property
    def may_offer(self) -> bool:
        return self.kind == "desk" and self.role == "trader"

    @property
    def may_manage_users(self) -> bool:
        """A bank's user administrator: creates and deactivates its own bank's desk users."""
        return self.kind == "desk" and self.role == "admin" and self.bank_id is not None


#: how long after ``end_all`` a person's new session is refused: longer than any sign-in
#: takes between its account checks and its session (a deactivated account then fails them)
REVOKE_HOLD_S = 300


def _key(sid: str) -> str:
    return hashlib.sha256(("ige-session:" + sid).encode()).hexdigest()


def session_key(sid: str) -> str:
    """The name a session is kept under (a hash of the cookie's value, never the value):
    what a page's stream ticket is bound to (``Sessions.keep``)."""
    return _key(sid)


class Sessions:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def _ttl(self, s: BrowserSession, now: int) -> int:
        p = self.d.policy
        left_s = (s.created_ms + p.session_max_s * 1000 - now) // 1000
        return int(min(p.session_idle_s, left_s))

    async def start(self, kind: str, user_id: str, name: str, bank_id: str | None = None,
                    role: str | None = None) -> tuple[str, BrowserSession] | None:
        """A new session: (its id, for the cookie only; the session); None when the person's
        sessions were just revoked (``end_all``: a sign-in that raced a deactivation)."""
        now = self.d.clock()
        sid = secrets.token_urlsafe(32)
        s = BrowserSession(kind, user_id, name, secrets.token_urlsafe(32), now, now, bank_id,
                           role)
        await self.d.guards.put_session(_key(sid), json.dumps(asdict(s)), self._ttl(s, now))
        if not await self.d.guards.index_session(s.actor, _key(sid), self.d.policy.session_max_s):
            await self.d.guards.drop_session(_key(sid))
            return None
        return sid, s

    async def find(self, sid: str) -> BrowserSession | None:
        """The live session of this id, renewed (its idle time starts again); None when
        there is none, or it is past its idle or absolute limit."""
        if not sid or len(sid) > 100:
            return None
        raw = await self.d.guards.get_session(_key(sid))
        if raw is None:
            return None
        try:
            s = BrowserSession(**json.loads(raw))
        except (ValueError, TypeError):
            return None
        now = self.d.clock()
        p = self.d.policy
        if now - s.seen_ms > p.session_idle_s * 1000 or self._ttl(s, now) <= 0:
            await self.d.guards.drop_session(_key(sid))
            return None
        s = replace(s, seen_ms=now)
        if not await self.d.guards.renew_session(_key(sid), json.dumps(asdict(s)),
                                                 self._ttl(s, now)):
            return None  # ended meanwhile (a logout between the read and the renewal)
        return s

    async def keep(self, key: str) -> bool:
        """Whether the session kept under ``key`` is live, renewed as by a request: a page
        watching the stream is in use. False once it was ended (logout, deactivation) or is
        past its absolute limit: the page's WebSocket is then closed."""
        raw = await self.d.guards.get_session(key)
        if raw is None:
            return False
        try:
            s = BrowserSession(**json.loads(raw))
        except (ValueError, TypeError):
            return False
        now = self.d.clock()
        if self._ttl(s, now) <= 0:
            await self.d.guards.drop_session(key)
            return False
        s = replace(s, seen_ms=now)
        # never brought back: a GET then SET here undid a logout that came in between (the
        # stream's check every heartbeat raced the logout; the CI clone caught it)
        return await self.d.guards.renew_session(key, json.dumps(asdict(s)), self._ttl(s, now))

    async def end(self, sid: str) -> None:
        if sid and len(sid) <= 100:
            await self.d.guards.drop_session(_key(sid))

    async def end_all(self, kind: str, user_id: str) -> int:
        """Every session of this person ended, wherever it was opened, and none started for
        ``REVOKE_HOLD_S`` (a sign-in whose checks passed just before); returns how many
        were live."""
        return await self.d.guards.revoke_sessions(f"{kind}:{user_id}", REVOKE_HOLD_S)
