"""Who may act: banks (client credentials), exporters and desk users (people at a bank: password
+ one-time code, two-factor activation, lockout, one rule for both kinds), and single-use
tickets for the live stream."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import pyotp

from persistence.accounts import DeskUsers, Exporters
from persistence.operators import Operators
from persistence.records import BankRecord, DeskUserRecord, ExporterRecord, OperatorRecord
from persistence.store import Conflict, Tx
from usecases.context import Deps
from usecases.outcomes import Refusal
from usecases.security import Principal, hash_secret, new_id, verify_secret
from usecases.sessions import Sessions

MAX_LOGIN_FAILURES = 5
MAX_EMAIL = 254  # longer is no e-mail address: not looked up
TOTP_ISSUER = "IGE Kefalet Portali"
CODE_WINDOW = (0, -1, 1)  # time steps a one-time code may come from (RFC 6238, ±1 step)
CODE_STEP_S = 30  # RFC 6238's time step, pyotp's default
CODE_MEMORY_S = 4 * CODE_STEP_S  # a used code is remembered longer than the window it is good in
NO_EXPORTER = Refusal("not_found", "no such exporter")
NO_BANK = Refusal("not_found", "no such bank")
#: viewer: books and results; trader: also offers; admin: the bank's user administrator,
#: who sees what a viewer sees and manages the bank's own desk users (never offers)
DESK_ROLES = ("viewer", "trader", "admin")
NO_DESK_USER = Refusal("not_found", "no such desk user")
DEACTIVATED = Refusal("deactivated", "this account was deactivated: ask your bank or the "
                                     "guarantee institution")
DESK_ACTIVATION_S = 7 * 24 * 3600  # how long a desk user's activation code is good

#: whose login is checked: the kinds of account with a password and an authenticator
LoginKind = Literal["exporter", "desk", "operator"]
LoginRecord = ExporterRecord | DeskUserRecord | OperatorRecord
#: the kinds of account the operator creates with a one-time activation code
ActivatedKind = Literal["desk", "operator"]


def _users(tx: Tx, kind: LoginKind) -> Exporters | DeskUsers | Operators:
    if kind == "operator":
        return tx.operators
    return tx.exporters if kind == "exporter" else tx.desk_users


@dataclass(frozen=True)
class BankCredentials:
    bank_id: str
    bank_code: str
    name: str
    client_id: str
    client_secret: str  # shown once; only its hash is stored


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int
    bank_code: str | None = None


@dataclass(frozen=True)
class Registered:
    user_id: str
    totp_uri: str


@dataclass(frozen=True)
class NewExporter:
    email: str
    full_name: str
    national_id: str
    mobile: str
    password: str


@dataclass(frozen=True)
class NewDeskUser:
    """A desk user the operator created: the activation code is shown once."""

    user: DeskUserRecord
    bank: BankRecord
    activation_code: str


@dataclass(frozen=True)
class Ticket:
    ticket: str
    expires_in: int


_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    """A password hash no secret matches: checked for unknown ids, so an unknown client id or
    e-mail costs the same time as a known one (no existence oracle)."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))
    return _DUMMY_HASH


class Accounts:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    # -- banks --------------------------------------------------------------------------
    async def create_bank(self, code: str, name: str, actor: str) -> BankCredentials | None:
        """A partner bank and its OAuth2 client; None when the code is taken."""
        client_id = f"{code.lower()}-{secrets.token_hex(4)}"
        secret = secrets.token_urlsafe(32)
        bank = BankRecord(new_id("bnk"), code, name, client_id,
                          await asyncio.to_thread(hash_secret, secret), True, self.d.clock())
        try:
            async with self.d.store.unit() as tx:
                await tx.banks.add(bank)
                await tx.audit.add(bank.created_at, actor, "bank_created", None,
                                   {"bank_id": bank.id, "bank_code": code, "name": name})
                await tx.commit()
        except Conflict:
            return None
        return BankCredentials(bank.id, code, name, client_id, secret)

    async def rotate_client_secret(self, bank_id: str, actor: str
                                   ) -> BankCredentials | Refusal:
        """A new client secret for the bank's API client, shown once (only its hash is
        stored); the old secret gets no token from now on. Tokens issued before live out
        their time (``bank_token_ttl_s``): they are self-contained."""
        secret = secrets.token_urlsafe(32)
        hashed = await asyncio.to_thread(hash_secret, secret)
        async with self.d.store.unit() as tx:
            bank = await tx.banks.get(bank_id)
            if bank is None or not await tx.banks.set_secret(bank_id, hashed):
                return NO_BANK
            await tx.audit.add(self.d.clock(), actor, "client_secret_rotated", None,
                               {"bank_id": bank.id, "client_id": bank.client_id})
            await tx.commit()
        return BankCredentials(bank.id, bank.code, bank.name, bank.client_id, secret)

    async def banks(self) -> list[BankRecord]:
        async with self.d.store.read() as q:
            return await q.banks.all()

    async def bank_token(self, client_id: str, client_secret: str) -> Token | Refusal:
        """OAuth2 client credentials."""
        bank = None
        if client_id and len(client_id) <= 200:
            async with self.d.store.read() as q:
                bank = await q.banks.by_client_id(client_id)
        known = bank is not None and bank.active
        good = await asyncio.to_thread(  # the same work for an unknown client id
            verify_secret, bank.secret_hash if known and bank else _dummy_hash(),
            client_secret if isinstance(client_secret, str) else "")
        if bank is None or not known or not good:
            return Refusal("invalid_client", "unknown client_id or wrong client_secret")
        ttl = self.d.policy.bank_token_ttl_s
        return Token(self.d.tokens.issue("bank", bank.id, ttl), ttl, bank.code)

    # -- exporters ------------------------------------------------------------------------
    async def register(self, who: NewExporter, activated: bool = False
                       ) -> Registered | Refusal:
        """An inactive account and the otpauth URI of its authenticator (``activated``: an
        account the operator vouches for, such as the demo's)."""
        secret = pyotp.random_base32()
        user = ExporterRecord(
            new_id("usr"), who.email, who.full_name, who.national_id, who.mobile,
            await asyncio.to_thread(hash_secret, who.password), secret, activated, 0,
            self.d.clock())
        try:
            async with self.d.store.unit() as tx:
                await tx.exporters.add(user)
                await tx.audit.add(user.created_at, f"exporter:{user.id}",
                                   "exporter_registered", None, {"user_id": user.id})
                await tx.commit()
        except Conflict:
            # answered like a first registration (a 409 would tell anyone that the address
            # has an account): nothing is stored, the existing account is unchanged, and this
            # authenticator activates nothing
            return Registered(new_id("usr"), pyotp.TOTP(pyotp.random_base32()).provisioning_uri(
                name=who.email, issuer_name=TOTP_ISSUER))
        uri = pyotp.TOTP(secret).provisioning_uri(name=who.email, issuer_name=TOTP_ISSUER)
        return Registered(user.id, uri)

    def _code_step(self, user: LoginRecord, code: object) -> int | None:
        """The time step (RFC 6238 counter) of the user's codes that ``code`` is, within ±1
        step of now; None when it is none of them. Nothing is used up."""
        if not isinstance(code, str) or not code.isdigit() or len(code) != 6 \
                or not user.totp_secret:
            return None
        totp = pyotp.TOTP(user.totp_secret, interval=CODE_STEP_S)
        now = self.d.clock() / 1000
        for step in CODE_WINDOW:
            t = now + step * totp.interval
            if hmac.compare_digest(totp.at(t), code):
                return int(totp.timecode(datetime.fromtimestamp(t, UTC)))
        return None

    async def _authenticate(self, email: object, code: object, password: object,
                            with_password: bool = True, for_login: bool = False,
                            kind: LoginKind = "exporter") -> LoginRecord | Refusal:
        """The user (an exporter, or a desk user: ``kind``) when the e-mail, the password (not
        asked at activation) and a fresh code are right. Every answer costs the same work
        whether the account exists or not (the password is checked against a dummy hash for
        an unknown e-mail) and says nothing of the account (no attempts left, no lock to a
        caller who cannot prove the second factor).

        The lock: a failure counts towards MAX_LOGIN_FAILURES only when its one-time code was
        right and fresh, that is, when the caller holds the account's authenticator and got
        the password wrong (the code is then used up). A caller without the authenticator
        cannot lock anyone out (wrong codes are throttled per source by the gateway's rate
        limits instead). A locked account says ``locked`` only to a caller whose password and
        code are both right. Said apart too, because they leak nothing the caller did not
        prove (password and code right):

        - a right code that was already used: ``totp_reused``, not a failure: wait for the
          next code;
        - at login, an account not activated yet: ``not_activated``, and the code is not used
          up, so activation can take it in the same time step.
        """
        user: LoginRecord | None = None
        if isinstance(email, str) and len(email) <= MAX_EMAIL:
            async with self.d.store.read() as q:
                user = await _users(q, kind).by_email(email.lower())
        wrong = Refusal("unauthorized" if with_password else "totp_invalid",
                        "wrong e-mail, password or code")
        pw_ok = True
        if with_password:
            pw_ok = await asyncio.to_thread(
                verify_secret, user.password_hash if user is not None and user.password_hash
                else _dummy_hash(),
                password if isinstance(password, str) else "")
            pw_ok = pw_ok and isinstance(password, str)
        if user is None:
            return wrong
        step = self._code_step(user, code)
        if step is None:
            return wrong
        if not pw_ok:
            # the authenticator's holder, the wrong password: the code is spent and, if it
            # was fresh, the failure counts towards the lock
            if await self.d.guards.use_code(user.id, step, CODE_MEMORY_S):
                async with self.d.store.unit() as tx:
                    await _users(tx, kind).failed(user.id)
                    await tx.commit()
            return wrong
        if user.failed_attempts >= MAX_LOGIN_FAILURES:
            return Refusal("locked", "too many failed attempts; the account is locked, "
                                     "contact the guarantee institution")
        if for_login and not user.active:
            if isinstance(user, DeskUserRecord) and user.status == "deactivated":
                return DEACTIVATED
            return Refusal("not_activated", "activate the account with a first code")
        if not await self.d.guards.use_code(user.id, step, CODE_MEMORY_S):
            return Refusal("totp_reused", "this one-time code was already used: wait for the "
                                          "next one (a new code every 30 seconds)")
        if user.failed_attempts:
            async with self.d.store.unit() as tx:
                await _users(tx, kind).succeeded(user.id)
                await tx.commit()
        return user

    async def activate(self, email: object, code: object) -> str | Refusal:
        """The first one-time code proves the authenticator works; returns the user id."""
        user = await self._authenticate(email, code, None, with_password=False)
        if isinstance(user, Refusal):
            return user
        assert isinstance(user, ExporterRecord)
        async with self.d.store.unit() as tx:
            await tx.exporters.activate(user.id)
            await tx.audit.add(self.d.clock(), f"exporter:{user.id}", "exporter_activated",
                               None, {})
            await tx.commit()
        return user.id

    async def exporter_login(self, email: object, password: object, code: object
                             ) -> ExporterRecord | Refusal:
        """The exporter whose e-mail, password and fresh code these are (the pages' login:
        the same rule as ``login``, a session instead of a token)."""
        user = await self._authenticate(email, code, password, for_login=True)
        if isinstance(user, Refusal):
            return user
        assert isinstance(user, ExporterRecord)
        return user

    async def login(self, email: object, password: object, code: object) -> Token | Refusal:
        user = await self.exporter_login(email, password, code)
        if isinstance(user, Refusal):
            return user
        ttl = self.d.policy.exporter_token_ttl_s
        return Token(self.d.tokens.issue("exporter", user.id, ttl), ttl)

    # -- the operator: exporter accounts --------------------------------------------------
    async def exporter(self, user_id: str | None = None, email: str | None = None
                       ) -> ExporterRecord | Refusal:
        """An exporter account by id or by e-mail (the operator's view)."""
        async with self.d.store.read() as q:
            user = (await q.exporters.get(user_id) if user_id is not None
                    else await q.exporters.by_email((email or "").lower()))
        return NO_EXPORTER if user is None else user

    async def unlock(self, user_id: str, actor: str) -> ExporterRecord | Refusal:
        """The operator clears an exporter's failed attempts (a locked account logs in again);
        audited with how many there were, also when there were none."""
        async with self.d.store.unit() as tx:
            before = await tx.exporters.unlock(user_id)
            if before is None:
                return NO_EXPORTER
            await tx.audit.add(self.d.clock(), actor, "exporter_unlocked", None, {
                "user_id": user_id, "failed_attempts": before,
                "was_locked": before >= MAX_LOGIN_FAILURES})
            await tx.commit()
        return await self.exporter(user_id)

    # -- desk users: people at a bank -------------------------------------------------------
    async def create_desk_user(self, bank_id: str, email: str, full_name: str, role: str,
                               actor: str) -> NewDeskUser | Refusal:
        """A person at a bank, not active yet: a one-time activation code (shown once, stored
        as a hash) lets them choose a password and an authenticator (``activate_desk_user``)."""
        if role not in DESK_ROLES:
            return Refusal("validation_failed", "role is viewer, trader or admin")
        async with self.d.store.read() as q:
            bank = await q.banks.get(bank_id)
        if bank is None:
            return NO_BANK
        code = secrets.token_urlsafe(24)
        now = self.d.clock()
        user = DeskUserRecord(new_id("dsk"), bank.id, email.lower(), full_name, role, None,
                              None, await asyncio.to_thread(hash_secret, code),
                              now + DESK_ACTIVATION_S * 1000, False, 0, now)
        try:
            async with self.d.store.unit() as tx:
                await tx.desk_users.add(user)
                await tx.audit.add(now, actor, "desk_user_created", None, {
                    "user_id": user.id, "bank_id": bank.id, "role": role})
                await tx.commit()
        except Conflict:
            return Refusal("conflict", "a desk user with this e-mail exists")
        return NewDeskUser(user, bank, code)

    async def desk_users(self, bank_id: str) -> list[DeskUserRecord] | Refusal:
        async with self.d.store.read() as q:
            if await q.banks.get(bank_id) is None:
                return NO_BANK
            return await q.desk_users.of_bank(bank_id)

    async def new_activation_code(self, bank_id: str, user_id: str, actor: str
                                  ) -> NewDeskUser | Refusal:
        """A new one-time activation code (shown once; good for DESK_ACTIVATION_S) for a
        desk user still waiting for activation: the code was lost, or ran out. The old code
        is void. An active or deactivated user is ``conflict``; an unknown user and another
        bank's are ``not_found`` alike."""
        code = secrets.token_urlsafe(24)
        hashed = await asyncio.to_thread(hash_secret, code)
        now = self.d.clock()
        async with self.d.store.unit() as tx:
            user = await tx.desk_users.get(user_id)
            bank = await tx.banks.get(bank_id)
            if user is None or bank is None or user.bank_id != bank_id:
                return NO_DESK_USER
            if not await tx.desk_users.new_activation(bank_id, user_id, hashed,
                                                      now + DESK_ACTIVATION_S * 1000):
                return Refusal("conflict", f"the user is {user.status}: only a user waiting "
                                           "for activation gets a new code")
            await tx.audit.add(now, actor, "desk_user_activation_renewed", None,
                               {"user_id": user_id, "bank_id": bank_id})
            await tx.commit()
        return NewDeskUser(replace(user, activation_hash=hashed,
                                   activation_until=now + DESK_ACTIVATION_S * 1000), bank, code)

    async def deactivate_desk_user(self, bank_id: str, user_id: str, actor: str
                                   ) -> DeskUserRecord | Refusal:
        """The person at ``bank_id`` can no longer sign in or activate, and every session
        they have is ended at once (``Sessions.end_all``). Deactivating again changes
        nothing and answers the same; an unknown user and another bank's user answer
        ``not_found`` alike."""
        async with self.d.store.unit() as tx:
            user = await tx.desk_users.get(user_id)
            if user is None or user.bank_id != bank_id:
                return NO_DESK_USER
            if await tx.desk_users.deactivate(bank_id, user_id):
                await tx.audit.add(self.d.clock(), actor, "desk_user_deactivated", None,
                                   {"user_id": user_id, "bank_id": bank_id})
                await tx.commit()
        await Sessions(self.d).end_all("desk", user_id)
        async with self.d.store.read() as q:
            user = await q.desk_users.get(user_id)
        return user if user is not None else NO_DESK_USER

    async def _activation(self, email: object, activation_code: object,
                          kind: ActivatedKind = "desk"
                          ) -> DeskUserRecord | OperatorRecord | Refusal:
        """The desk user (or operator: ``kind``) whose unspent, unexpired activation code this
        is (the same work for an unknown e-mail)."""
        user: DeskUserRecord | OperatorRecord | None = None
        if isinstance(email, str) and len(email) <= MAX_EMAIL:
            async with self.d.store.read() as q:
                user = await (q.operators if kind == "operator" else q.desk_users
                              ).by_email(email.lower())
        good = await asyncio.to_thread(
            verify_secret, user.activation_hash if user is not None and user.activation_hash
            else _dummy_hash(), activation_code if isinstance(activation_code, str) else "")
        if user is None or not good or user.active or \
                (user.activation_until or 0) < self.d.clock():
            return Refusal("unauthorized", "wrong e-mail or activation code, or the code has "
                                           "expired or was used")
        return user

    async def start_desk_activation(self, email: object, activation_code: object,
                                    password: str) -> Registered | Refusal:
        """Step one: the password chosen and a new authenticator (its otpauth URI); the
        account stays inactive until step two proves the authenticator."""
        user = await self._activation(email, activation_code)
        if isinstance(user, Refusal):
            return user
        assert isinstance(user, DeskUserRecord)
        secret = pyotp.random_base32()
        async with self.d.store.unit() as tx:
            await tx.desk_users.set_credentials(
                user.id, await asyncio.to_thread(hash_secret, password), secret)
            await tx.commit()
        return Registered(user.id, pyotp.TOTP(secret).provisioning_uri(
            name=user.email, issuer_name=TOTP_ISSUER))

    async def finish_desk_activation(self, email: object, activation_code: object,
                                     code: object) -> str | Refusal:
        """Step two: a first one-time code of the new authenticator; the activation code is
        spent. Returns the user id."""
        user = await self._activation(email, activation_code)
        if isinstance(user, Refusal):
            return user
        assert isinstance(user, DeskUserRecord)
        step = self._code_step(user, code)
        if step is None or not await self.d.guards.use_code(user.id, step, CODE_MEMORY_S):
            return Refusal("totp_invalid", "wrong one-time code")
        async with self.d.store.unit() as tx:
            if not await tx.desk_users.activate(user.id):
                return Refusal("unauthorized", "the activation code was used")
            await tx.audit.add(self.d.clock(), f"desk:{user.id}", "desk_user_activated",
                               None, {"bank_id": user.bank_id})
            await tx.commit()
        return user.id

    async def desk_login(self, email: object, password: object, code: object
                         ) -> DeskUserRecord | Refusal:
        """The exporters' login rule (``_authenticate``: lockout, code replay, no existence
        oracle), for a person at a bank; its bank must be active."""
        user = await self._authenticate(email, code, password, for_login=True, kind="desk")
        if isinstance(user, Refusal):
            return user
        assert isinstance(user, DeskUserRecord)
        async with self.d.store.read() as q:
            bank = await q.banks.get(user.bank_id)
        if bank is None or not bank.active:
            return Refusal("unauthorized", "wrong e-mail, password or code")
        return user

    async def bank(self, bank_id: str) -> BankRecord | None:
        async with self.d.store.read() as q:
            return await q.banks.get(bank_id)

    # -- the live stream ------------------------------------------------------------------
    async def issue_ticket(self, who: Principal, session_key: str | None = None) -> Ticket:
        """A single-use ticket that carries the caller's identity to the WebSocket; a web
        page's is also bound to its browser session (``session_key``): the WebSocket lives
        only as long as the session."""
        t = secrets.token_urlsafe(24)
        ttl = self.d.policy.ticket_ttl_s
        holder = f"{who.kind}:{who.id}" + (f"|{session_key}" if session_key else "")
        await self.d.guards.issue_ticket(t, holder, ttl)
        return Ticket(t, ttl)

    async def redeem_ticket(self, ticket: str) -> Principal | None:
        got = await self.redeem(ticket)
        return None if got is None else got[0]

    async def redeem(self, ticket: str) -> tuple[Principal, str | None] | None:
        """The ticket's holder and the browser session it is bound to (None: an API
        client's); None when the ticket is unknown, used or expired."""
        if not ticket:
            return None
        holder = await self.d.guards.redeem_ticket(ticket)
        if holder is None:
            return None
        who, _, session = holder.partition("|")
        kind, _, ident = who.partition(":")
        return Principal(kind, ident), session or None
