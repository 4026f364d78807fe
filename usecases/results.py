"""The exporter after the close: the results (bank names shown only now) and the acceptance
of one binding offer inside the binding window, booked in the guarantee-exposure ledger in the
same unit of work."""

from __future__ import annotations

import time
from dataclasses import dataclass

from applications.package import package_by_version, package_in_force, to_tl
from applications.rules import booked_guarantee
from auction.model import OfferVersion, RoundState, ms_to_dt
from auction.rules import refuse_acceptance
from persistence.records import (
    AcceptanceRecord,
    BankRecord,
    ClosingRecord,
    ExposureRecord,
    RoundRecord,
)
from persistence.store import Conflict, Tx
from usecases.context import Deps
from usecases.outcomes import Refusal

BANKS_FRESH_S = 30  # how long a process trusts its list of banks (names on the results)

NO_APPLICATION = Refusal("not_found", "no such application")
ACCEPT_REFUSALS = {
    "binding_expired": "the offers were binding until the end of the binding period",
    "already_accepted": "an offer was already accepted in this round",
    "round_open": "the offer round is still open",
}


@dataclass(frozen=True)
class ExporterResults:
    round: RoundRecord
    closing: ClosingRecord
    acceptance: AcceptanceRecord | None
    offers: list[tuple[int, OfferVersion, BankRecord | None]]  # (final rank, version, bank)


class Results:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._banks: dict[str, BankRecord] = {}
        self._banks_at = 0.0

    async def _bank(self, bank_id: str) -> BankRecord | None:
        if bank_id not in self._banks or time.monotonic() - self._banks_at > BANKS_FRESH_S:
            async with self.d.store.read() as q:
                self._banks = {b.id: b for b in await q.banks.all()}
            self._banks_at = time.monotonic()
        return self._banks.get(bank_id)

    async def own_round(self, user_id: str, application_id: str) -> RoundRecord | Refusal:
        """The round of an application of this exporter."""
        async with self.d.store.read() as q:
            row = await q.rounds.by_application(application_id)
        if row is None or row.exporter_user_id != user_id:
            return NO_APPLICATION
        return row

    async def of_round(self, row: RoundRecord) -> ExporterResults | None:
        """Every binding offer, best first, with the bank's code and name; None before the
        closing record exists."""
        async with self.d.store.read() as q:
            closing = await q.rounds.closing(row.id)
            acceptance = await q.rounds.acceptance(row.id)
            binding = await q.rounds.binding(row.id)
        if closing is None:
            return None
        return ExporterResults(row, closing, acceptance,
                               [(rank, v, await self._bank(v.bank_id)) for rank, v in binding])

    async def results(self, user_id: str, application_id: str) -> ExporterResults | Refusal:
        row = await self.own_round(user_id, application_id)
        if isinstance(row, Refusal):
            return row
        out = None if row.state == RoundState.OPEN.value else await self.of_round(row)
        if out is None:
            return Refusal("round_open", "results are shown when the offer round has closed")
        return out

    async def accept(self, user_id: str, application_id: str, offer_id: str
                     ) -> ExporterResults | Refusal:
        row = await self.own_round(user_id, application_id)
        if isinstance(row, Refusal):
            return row
        code = await self.accept_in(row.id, offer_id, user_id)
        if code is not None:
            if code == "not_found":
                return Refusal("not_found", "no such offer in this round")
            return Refusal(code, ACCEPT_REFUSALS[code])
        async with self.d.store.read() as q:
            fresh = await q.rounds.get(row.id)
        assert fresh is not None
        out = await self.of_round(fresh)
        assert out is not None
        return out

    async def accept_in(self, round_id: str, offer_id: str, user_id: str) -> str | None:
        """Accept one binding offer of a round now, in one unit with its ledger entry and
        audit row; None when done, else why not (a refusal code, "not_found" included)."""
        now = self.d.clock()
        try:
            async with self.d.store.unit() as tx:
                code = await self._accept(tx, round_id, offer_id, user_id, now)
                if code is None:
                    await tx.commit()
        except Conflict:
            code = "already_accepted"
        return code

    async def _accept(self, tx: Tx, round_id: str, offer_id: str, user_id: str,
                      now: int) -> str | None:
        """Accept inside the unit; None when done, else the refusal's code."""
        r = await tx.rounds.get(round_id)
        if r is None:
            return "not_found"
        refused = refuse_acceptance(RoundState(r.state), r.binding_until, now)
        if refused is not None:
            return refused
        binding = await tx.rounds.binding_offer(round_id, offer_id)
        if binding is None:
            return "not_found"
        if not await tx.rounds.accept(round_id, offer_id, user_id, now):
            return "already_accepted"
        bank_id, version = binding
        # the accepted guarantee joins the exposure ledger in the same unit of work
        await self._book_guarantee(tx, r, offer_id, bank_id, version, now)
        await tx.audit.add(now, f"exporter:{user_id}", "offer_accepted", round_id,
                           {"offer_id": offer_id, "bank_id": bank_id, "version": version})
        return None

    @staticmethod
    async def _book_guarantee(tx: Tx, r: RoundRecord, offer_id: str, bank_id: str,
                              version: int, now: int) -> bool:
        """Add an accepted offer's guarantee to the exposure ledger, in TL at the rate of the
        package the application was decided under (the package in force for a round opened
        by the operator). False when the round carries no tax id to book it under."""
        app = await tx.applications.of_round(r.id)
        guarantee = booked_guarantee(r.loan_amount, r.guarantee_amount,
                                     await tx.offers.amount(offer_id, version))
        if app is not None:
            tax_id: str | None = app.tax_id
            pkg_version = app.package_version
            rate = int((app.package or {}).get("fx_rates_e4", {}).get(r.currency, 0))
            if not rate:
                known = package_by_version(pkg_version)
                rate = known.fx_rates_e4[r.currency] if known else 0
        else:
            tax_id = (r.company or {}).get("tax_id")
            pkg = package_in_force(ms_to_dt(now))
            pkg_version, rate = pkg.version, pkg.fx_rates_e4.get(r.currency, 0)
        if not tax_id or not rate:
            return False
        tl = to_tl(guarantee, rate)
        app_id = app.id if app is not None else None
        await tx.ledger.add(ExposureRecord(0, tax_id, r.id, app_id, offer_id, bank_id,
                                           r.currency, guarantee, tl, rate, pkg_version, now))
        await tx.audit.add(now, "system", "guarantee_recorded", r.id, {
            "tax_id": tax_id, "application_id": app_id, "offer_id": offer_id,
            "guarantee_amount": guarantee, "currency": r.currency, "guarantee_tl": tl,
            "fx_rate_e4": rate, "package_version": pkg_version})
        return True
