"""The operator's console in SQL, on real SQLite and PostgreSQL: the operators' accounts (a
unique e-mail, failures counted in SQL, an activation spent once) and the console's reads
(rounds counted and listed by state, the audit filtered by round, actor, action and time in
both orders, applications newest first), each paged by a keyset without gaps or repeats."""

from __future__ import annotations

import pytest

from auction.model import RoundState
from auction.rules import label_pool
from persistence.operators import AuditFilter
from persistence.records import ApplicationRecord, OperatorRecord
from persistence.store import Conflict
from tests.integration.conftest import COMPANY, T0, Sql
from tests.integration.test_store import HOUR, round_terms


def operator(email: str = "olcay@kgf.example", ident: str = "opr_1") -> OperatorRecord:
    return OperatorRecord(ident, email, "Olcay", None, None, "hash", T0 + HOUR, False, 0, T0)


async def test_an_operator_has_a_unique_email_counted_failures_and_one_activation(sql: Sql):
    async with sql.store.unit() as tx:
        await tx.operators.add(operator())
        await tx.commit()
    with pytest.raises(Conflict):
        async with sql.store.unit() as tx:
            await tx.operators.add(operator(ident="opr_2"))
            await tx.commit()
    async with sql.store.unit() as tx:
        await tx.operators.set_credentials("opr_1", "pw-hash", "SECRET")
        assert await tx.operators.failed("opr_1") == 1
        assert await tx.operators.failed("opr_1") == 2
        assert await tx.operators.activate("opr_1") is True
        assert await tx.operators.activate("opr_1") is False  # the code is spent
        await tx.commit()
    async with sql.store.read() as q:
        got = await q.operators.by_email("olcay@kgf.example")
        assert got is not None and got == await q.operators.get("opr_1")
    assert (got.active, got.failed_attempts, got.activation_hash, got.password_hash,
            got.totp_secret) == (True, 2, None, "pw-hash", "SECRET")
    async with sql.store.unit() as tx:
        await tx.operators.succeeded("opr_1")
        await tx.commit()
    async with sql.store.read() as q:
        again = await q.operators.get("opr_1")
    assert again is not None and again.failed_attempts == 0


async def test_rounds_are_counted_by_state_and_listed_latest_deadline_first(sql: Sql):
    made = []
    for i in range(5):
        t = round_terms(closes_at_ms=T0 + HOUR * (1 + i % 2))
        async with sql.store.unit() as tx:
            await tx.rounds.add(t, COMPANY, None, None, None, label_pool())
            await tx.commit()
        made.append(t)
    async with sql.store.unit() as tx:
        await tx.rounds.record_close(made[0].round_id, T0 + HOUR, T0 + 2 * HOUR, 0, [], 2026)
        await tx.commit()
    async with sql.store.read() as q:
        assert await q.console.round_counts() == {"open": 4, "closed": 1}
        want = sorted(made[1:], key=lambda t: (t.closes_at_ms, t.round_id), reverse=True)
        seen: list[str] = []
        before = None
        while True:
            page = await q.console.rounds(RoundState.OPEN.value, 3, before)
            if not page:
                break
            seen += [r.id for r in page]
            before = (page[-1].closes_at, page[-1].id)
        assert seen == [t.round_id for t in want]
        assert [r.id for r in await q.console.rounds("closed", 10, None)] == \
            [made[0].round_id]


async def test_the_audit_is_filtered_and_paged_in_both_orders(sql: Sql):
    rows = []
    for i in range(12):
        rows.append({"at": T0 + i * 1000, "actor": ["admin", "bank:bnk_a", "system"][i % 3],
                     "action": ["round_opened", "offer_submitted"][i % 2],
                     "round_id": ["rnd_a", "rnd_b", None][i % 3], "detail": {"i": i}})
    async with sql.store.unit() as tx:
        await tx.audit.add_many(rows)
        await tx.commit()
    async with sql.store.read() as q:
        everything = await q.console.audit(AuditFilter(), 100)
        assert [e.detail["i"] for e in everything] == list(range(11, -1, -1))
        paged, before = [], None
        while True:
            page = await q.console.audit(AuditFilter(), 5, before_id=before)
            if not page:
                break
            paged += page
            before = page[-1].id
        assert paged == everything
        f = AuditFilter(actor="bank:bnk_a", action="offer_submitted")
        assert [e.detail["i"] for e in await q.console.audit(f, 100)] == [7, 1]
        assert [e.detail["i"] for e in await q.console.audit(AuditFilter(round_id="rnd_b"),
                                                             100)] == [10, 7, 4, 1]
        window = AuditFilter(since=T0 + 3000, until=T0 + 6000)
        assert [e.detail["i"] for e in await q.console.audit(window, 100)] == [5, 4, 3]
        oldest = await q.console.audit(AuditFilter(action="round_opened"), 2,
                                       after_id=everything[-1].id, newest_first=False)
        assert [e.detail["i"] for e in oldest] == [2, 4]
        events = await q.console.round_events("rnd_a", 3)
        assert [e.detail["i"] for e in events] == [0, 3, 6]


def application(ident: str, created_at: int) -> ApplicationRecord:
    return ApplicationRecord(ident, None, "1234567890", None, "approved", "KGF-1", "TRY",
                             500_000_000, 400_000_000, 400_000_000, None, None, {}, {},
                             {"decided_by": "operator"}, {}, None, created_at)


async def test_applications_are_listed_newest_first_by_a_keyset(sql: Sql):
    made = [application(f"app_{i:02d}", T0 + (i // 2) * 1000) for i in range(7)]
    async with sql.store.unit() as tx:
        for a in made:
            await tx.applications.add(a)
        await tx.commit()
    want = [a.id for a in sorted(made, key=lambda a: (a.created_at, a.id), reverse=True)]
    async with sql.store.read() as q:
        seen: list[str] = []
        before = None
        while True:
            page = await q.console.applications(3, before)
            if not page:
                break
            seen += [a.id for a in page]
            before = (page[-1].created_at, page[-1].id)
        assert seen == want
        assert await q.console.banks_of([]) == {}
