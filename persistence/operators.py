"""The operator's console in SQL (issue #8): the operators' accounts (``Operators``: the login's
``by_email``, ``failed`` and ``succeeded`` as for exporters and desk users, the activation as
for desk users) and the console's reads (``Console``): rounds counted by state, rounds of a
state newest first, the audit trail filtered, applications newest first. Every read is bounded:
a LIMIT, a keyset to page on, an index behind each filter (migration 0005)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.records import (
    ApplicationRecord,
    AuditRecord,
    OperatorRecord,
    RoundRecord,
    from_row,
)
from persistence.tables import applications, audit_log, banks, operators, rounds


class Operators:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, user: OperatorRecord) -> None:
        """A unique e-mail (a duplicate is a ``Conflict`` of the unit)."""
        await self.conn.execute(insert(operators).values(
            id=user.id, email=user.email, full_name=user.full_name,
            password_hash=user.password_hash, totp_secret=user.totp_secret,
            activation_hash=user.activation_hash, activation_until=user.activation_until,
            active=user.active, failed_attempts=user.failed_attempts,
            created_at=user.created_at))

    async def get(self, user_id: str) -> OperatorRecord | None:
        row = (await self.conn.execute(
            select(operators).where(operators.c.id == user_id))).first()
        return None if row is None else from_row(OperatorRecord, row)

    async def by_email(self, email: str) -> OperatorRecord | None:
        row = (await self.conn.execute(
            select(operators).where(operators.c.email == email))).first()
        return None if row is None else from_row(OperatorRecord, row)

    async def failed(self, user_id: str) -> int:
        res = await self.conn.execute(
            update(operators).where(operators.c.id == user_id)
            .values(failed_attempts=operators.c.failed_attempts + 1)
            .returning(operators.c.failed_attempts))
        return int(res.scalar_one())

    async def succeeded(self, user_id: str) -> None:
        await self.conn.execute(update(operators).where(
            operators.c.id == user_id, operators.c.failed_attempts != 0)
            .values(failed_attempts=0))

    async def set_credentials(self, user_id: str, password_hash: str, totp_secret: str) -> None:
        await self.conn.execute(update(operators).where(operators.c.id == user_id)
                                .values(password_hash=password_hash, totp_secret=totp_secret))

    async def activate(self, user_id: str) -> bool:
        """Active, the activation code spent; False when it was spent already."""
        res = await self.conn.execute(update(operators).where(
            operators.c.id == user_id, operators.c.activation_hash.is_not(None))
            .values(active=True, activation_hash=None, activation_until=None))
        return bool(res.rowcount)


@dataclass(frozen=True)
class AuditFilter:
    """What the console's audit view asks for (every part optional): one round, one actor,
    one action, entries at or after ``since`` and before ``until`` (epoch ms)."""

    round_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: int | None = None
    until: int | None = None


class Console:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def round_counts(self) -> dict[str, int]:
        """How many rounds are in each state (the index on ``state``)."""
        q = select(rounds.c.state, func.count()).group_by(rounds.c.state)
        return {str(r[0]): int(r[1]) for r in await self.conn.execute(q)}

    async def rounds(self, state: str, limit: int, before: tuple[int, str] | None
                     ) -> list[RoundRecord]:
        """Rounds in ``state``, the latest deadline first (keyset: (closes_at, id) below
        ``before``)."""
        q = select(rounds).where(rounds.c.state == state)
        if before is not None:
            q = q.where(or_(rounds.c.closes_at < before[0],
                            and_(rounds.c.closes_at == before[0], rounds.c.id < before[1])))
        q = q.order_by(rounds.c.closes_at.desc(), rounds.c.id.desc()).limit(limit)
        return [from_row(RoundRecord, r) for r in await self.conn.execute(q)]

    async def audit(self, f: AuditFilter, limit: int, before_id: int | None = None,
                    after_id: int = 0, newest_first: bool = True) -> list[AuditRecord]:
        """Entries matching ``f``: newest first below ``before_id``, or oldest first above
        ``after_id`` (``newest_first=False``, the API's order)."""
        q = select(audit_log)
        conds = []
        if f.round_id:
            conds.append(audit_log.c.round_id == f.round_id)
        if f.actor:
            conds.append(audit_log.c.actor == f.actor)
        if f.action:
            conds.append(audit_log.c.action == f.action)
        if f.since is not None:
            conds.append(audit_log.c.at >= f.since)
        if f.until is not None:
            conds.append(audit_log.c.at < f.until)
        if newest_first:
            if before_id is not None:
                conds.append(audit_log.c.id < before_id)
            q = q.order_by(audit_log.c.id.desc())
        else:
            conds.append(audit_log.c.id > after_id)
            q = q.order_by(audit_log.c.id)
        if conds:
            q = q.where(and_(*conds))
        return [from_row(AuditRecord, r) for r in await self.conn.execute(q.limit(limit))]

    async def round_events(self, round_id: str, limit: int) -> list[AuditRecord]:
        """A round's audit entries, oldest first (the index on ``round_id``)."""
        q = select(audit_log).where(audit_log.c.round_id == round_id) \
            .order_by(audit_log.c.id).limit(limit)
        return [from_row(AuditRecord, r) for r in await self.conn.execute(q)]

    async def applications(self, limit: int, before: tuple[int, str] | None
                           ) -> list[ApplicationRecord]:
        """Applications, newest first (keyset: (created_at, id) below ``before``)."""
        q = select(applications)
        if before is not None:
            q = q.where(or_(applications.c.created_at < before[0],
                            and_(applications.c.created_at == before[0],
                                 applications.c.id < before[1])))
        q = q.order_by(applications.c.created_at.desc(), applications.c.id.desc()).limit(limit)
        return [from_row(ApplicationRecord, r) for r in await self.conn.execute(q)]

    async def banks_of(self, bank_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """bank id -> (code, name) of these banks."""
        if not bank_ids:
            return {}
        q = select(banks.c.id, banks.c.code, banks.c.name).where(banks.c.id.in_(list(bank_ids)))
        return {r.id: (r.code, r.name) for r in await self.conn.execute(q)}
