"""Banks, exporter accounts, desk users and the append-only audit trail (repositories of a unit
of work)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.records import AuditRecord, BankRecord, DeskUserRecord, ExporterRecord, from_row
from persistence.tables import audit_log, banks, desk_users, exporter_users


class Banks:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, bank: BankRecord) -> None:
        """A unique bank code and client id (a duplicate is a ``Conflict`` of the unit)."""
        await self.conn.execute(insert(banks).values(
            id=bank.id, code=bank.code, name=bank.name, client_id=bank.client_id,
            secret_hash=bank.secret_hash, active=bank.active, created_at=bank.created_at))

    async def by_client_id(self, client_id: str) -> BankRecord | None:
        row = (await self.conn.execute(
            select(banks).where(banks.c.client_id == client_id))).first()
        return None if row is None else from_row(BankRecord, row)

    async def all(self) -> list[BankRecord]:
        return [from_row(BankRecord, r)
                for r in await self.conn.execute(select(banks).order_by(banks.c.code))]

    async def get(self, bank_id: str) -> BankRecord | None:
        row = (await self.conn.execute(select(banks).where(banks.c.id == bank_id))).first()
        return None if row is None else from_row(BankRecord, row)

    async def set_secret(self, bank_id: str, secret_hash: str) -> bool:
        """The client's new secret (the old one stops working); False: no such bank."""
        res = await self.conn.execute(update(banks).where(banks.c.id == bank_id)
                                      .values(secret_hash=secret_hash))
        return bool(res.rowcount)


class Exporters:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, user: ExporterRecord) -> None:
        """A unique e-mail (a duplicate is a ``Conflict`` of the unit)."""
        await self.conn.execute(insert(exporter_users).values(
            id=user.id, email=user.email, full_name=user.full_name,
            national_id=user.national_id, mobile=user.mobile,
            password_hash=user.password_hash, totp_secret=user.totp_secret,
            active=user.active, failed_attempts=user.failed_attempts,
            created_at=user.created_at))

    async def get(self, user_id: str) -> ExporterRecord | None:
        row = (await self.conn.execute(
            select(exporter_users).where(exporter_users.c.id == user_id))).first()
        return None if row is None else from_row(ExporterRecord, row)

    async def by_email(self, email: str) -> ExporterRecord | None:
        row = (await self.conn.execute(
            select(exporter_users).where(exporter_users.c.email == email))).first()
        return None if row is None else from_row(ExporterRecord, row)

    async def failed(self, user_id: str) -> int:
        """One more failed attempt, counted in SQL (concurrent failures all count); returns
        the attempts failed so far."""
        res = await self.conn.execute(
            update(exporter_users).where(exporter_users.c.id == user_id)
            .values(failed_attempts=exporter_users.c.failed_attempts + 1)
            .returning(exporter_users.c.failed_attempts))
        return int(res.scalar_one())

    async def succeeded(self, user_id: str) -> None:
        await self.conn.execute(update(exporter_users).where(
            exporter_users.c.id == user_id, exporter_users.c.failed_attempts != 0)
            .values(failed_attempts=0))

    async def unlock(self, user_id: str) -> int | None:
        """No failed attempts any more; returns how many there were (None: no such user)."""
        row = (await self.conn.execute(select(exporter_users.c.failed_attempts).where(
            exporter_users.c.id == user_id))).first()
        if row is None:
            return None
        await self.conn.execute(update(exporter_users).where(exporter_users.c.id == user_id)
                                .values(failed_attempts=0))
        return int(row.failed_attempts)

    async def activate(self, user_id: str) -> None:
        await self.conn.execute(update(exporter_users).where(exporter_users.c.id == user_id)
                                .values(active=True))


class DeskUsers:
    """People at a bank (issue #8). ``by_email``, ``failed`` and ``succeeded`` are the login's,
    as for exporters (``usecases.accounts`` checks both kinds with one rule)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, user: DeskUserRecord) -> None:
        """A unique e-mail (a duplicate is a ``Conflict`` of the unit)."""
        await self.conn.execute(insert(desk_users).values(
            id=user.id, bank_id=user.bank_id, email=user.email, full_name=user.full_name,
            role=user.role, password_hash=user.password_hash, totp_secret=user.totp_secret,
            activation_hash=user.activation_hash, activation_until=user.activation_until,
            active=user.active, failed_attempts=user.failed_attempts,
            created_at=user.created_at))

    async def get(self, user_id: str) -> DeskUserRecord | None:
        row = (await self.conn.execute(
            select(desk_users).where(desk_users.c.id == user_id))).first()
        return None if row is None else from_row(DeskUserRecord, row)

    async def by_email(self, email: str) -> DeskUserRecord | None:
        row = (await self.conn.execute(
            select(desk_users).where(desk_users.c.email == email))).first()
        return None if row is None else from_row(DeskUserRecord, row)

    async def of_bank(self, bank_id: str) -> list[DeskUserRecord]:
        return [from_row(DeskUserRecord, r) for r in await self.conn.execute(
            select(desk_users).where(desk_users.c.bank_id == bank_id)
            .order_by(desk_users.c.email))]

    async def failed(self, user_id: str) -> int:
        res = await self.conn.execute(
            update(desk_users).where(desk_users.c.id == user_id)
            .values(failed_attempts=desk_users.c.failed_attempts + 1)
            .returning(desk_users.c.failed_attempts))
        return int(res.scalar_one())

    async def succeeded(self, user_id: str) -> None:
        await self.conn.execute(update(desk_users).where(
            desk_users.c.id == user_id, desk_users.c.failed_attempts != 0)
            .values(failed_attempts=0))

    async def set_credentials(self, user_id: str, password_hash: str, totp_secret: str) -> None:
        """The password and authenticator chosen at activation (not active until a first code
        proves the authenticator)."""
        await self.conn.execute(update(desk_users).where(desk_users.c.id == user_id)
                                .values(password_hash=password_hash, totp_secret=totp_secret))

    async def deactivate(self, bank_id: str, user_id: str) -> bool:
        """No login any more, and no activation either (an unspent code is void); False:
        no such user at this bank, or deactivated already."""
        res = await self.conn.execute(update(desk_users).where(
            desk_users.c.id == user_id, desk_users.c.bank_id == bank_id,
            (desk_users.c.active.is_(True)) | desk_users.c.activation_hash.is_not(None))
            .values(active=False, activation_hash=None, activation_until=None))
        return bool(res.rowcount)

    async def activate(self, user_id: str) -> bool:
        """Active, the activation code spent; False when it was spent already."""
        res = await self.conn.execute(update(desk_users).where(
            desk_users.c.id == user_id, desk_users.c.activation_hash.is_not(None))
            .values(active=True, activation_hash=None, activation_until=None))
        return bool(res.rowcount)


class Audit:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, at: int, actor: str, action: str, round_id: str | None,
                  detail: dict[str, Any]) -> None:
        await self.conn.execute(insert(audit_log).values(
            at=at, actor=actor, action=action, round_id=round_id, detail=detail))

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of ``at, actor, action, round_id, detail``, in order."""
        if rows:
            await self.conn.execute(insert(audit_log), list(rows))

    async def page(self, round_id: str | None, limit: int, after_id: int = 0
                   ) -> list[AuditRecord]:
        q = select(audit_log).where(audit_log.c.id > after_id).order_by(audit_log.c.id) \
            .limit(limit)
        if round_id:
            q = q.where(audit_log.c.round_id == round_id)
        return [from_row(AuditRecord, r) for r in await self.conn.execute(q)]
