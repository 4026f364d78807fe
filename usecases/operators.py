"""The guarantee institution's people with a login for the console (issue #8): created with the
admin token (a one-time activation code, stored as an Argon2 hash, good for 7 days), activated
in the desk users' two steps (a password, then a first code of a new authenticator), signed in
by the exporters' and desk users' rule (``Accounts._authenticate``: password and a fresh
one-time code, a code accepted once, five failures by the authenticator's holder lock the
account, no existence oracle). What an operator does in the console is audited as
``operator:<user id>``."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import pyotp

from persistence.records import OperatorRecord
from persistence.store import Conflict
from usecases.accounts import (
    CODE_MEMORY_S,
    DESK_ACTIVATION_S,
    TOTP_ISSUER,
    Accounts,
    Registered,
)
from usecases.context import Deps
from usecases.outcomes import Refusal
from usecases.security import hash_secret, new_id

OPERATOR_ACTIVATION_S = DESK_ACTIVATION_S  # 7 days, as a desk user's
ACTIVATION_URL = "/operator/activate"


@dataclass(frozen=True)
class NewOperator:
    """An operator just created: the activation code is shown once."""

    user: OperatorRecord
    activation_code: str


class OperatorAccounts:
    def __init__(self, deps: Deps, accounts: Accounts) -> None:
        self.d = deps
        self.accounts = accounts

    async def create(self, email: str, full_name: str, actor: str) -> NewOperator | Refusal:
        """An operator, not active yet: a one-time activation code (shown once, stored as a
        hash) lets the person choose a password and an authenticator."""
        code = secrets.token_urlsafe(24)
        now = self.d.clock()
        user = OperatorRecord(new_id("opr"), email.lower(), full_name, None, None,
                              await asyncio.to_thread(hash_secret, code),
                              now + OPERATOR_ACTIVATION_S * 1000, False, 0, now)
        try:
            async with self.d.store.unit() as tx:
                await tx.operators.add(user)
                await tx.audit.add(now, actor, "operator_created", None,
                                   {"user_id": user.id})
                await tx.commit()
        except Conflict:
            return Refusal("conflict", "an operator with this e-mail exists")
        return NewOperator(user, code)

    async def get(self, user_id: str) -> OperatorRecord | None:
        async with self.d.store.read() as q:
            return await q.operators.get(user_id)

    async def start_activation(self, email: object, activation_code: object, password: str
                               ) -> Registered | Refusal:
        """Step one: the password chosen and a new authenticator (its otpauth URI); inactive
        until step two proves the authenticator."""
        user = await self.accounts._activation(email, activation_code, kind="operator")
        if isinstance(user, Refusal):
            return user
        secret = pyotp.random_base32()
        async with self.d.store.unit() as tx:
            await tx.operators.set_credentials(
                user.id, await asyncio.to_thread(hash_secret, password), secret)
            await tx.commit()
        return Registered(user.id, pyotp.TOTP(secret).provisioning_uri(
            name=user.email, issuer_name=TOTP_ISSUER))

    async def finish_activation(self, email: object, activation_code: object, code: object
                                ) -> str | Refusal:
        """Step two: a first one-time code of the new authenticator; the activation code is
        spent. Returns the user id."""
        user = await self.accounts._activation(email, activation_code, kind="operator")
        if isinstance(user, Refusal):
            return user
        step = self.accounts._code_step(user, code)
        if step is None or not await self.d.guards.use_code(user.id, step, CODE_MEMORY_S):
            return Refusal("totp_invalid", "wrong one-time code")
        async with self.d.store.unit() as tx:
            if not await tx.operators.activate(user.id):
                return Refusal("unauthorized", "the activation code was used")
            await tx.audit.add(self.d.clock(), f"operator:{user.id}", "operator_activated",
                               None, {})
            await tx.commit()
        return user.id

    async def login(self, email: object, password: object, code: object
                    ) -> OperatorRecord | Refusal:
        """The login rule of every person here (``Accounts._authenticate``)."""
        user = await self.accounts._authenticate(email, code, password, for_login=True,
                                                 kind="operator")
        if isinstance(user, Refusal):
            return user
        assert isinstance(user, OperatorRecord)
        return user
