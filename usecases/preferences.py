"""The exporter's bank preferences as a bank may see them: whether it is itself preferred,
never which other banks are. A preference list names banks, and no bank learns another
bank's identity in a round (the masking rule), so every round a bank reads passes through
``for_bank``: ``assessment.preferred_banks`` holds at most the bank's own code. The operator
and the exporter see the list whole."""

from __future__ import annotations

from dataclasses import replace

from persistence.records import RoundRecord
from usecases.context import Deps

MAX_CODES = 10_000  # banks are a few dozen; the cache can never grow past this


def for_bank(row: RoundRecord, code: str | None) -> RoundRecord:
    """The round with its preference list cut to ``code`` (None: to nobody)."""
    a = row.assessment
    if not a or not a.get("preferred_banks"):
        return row
    mine = [code] if code is not None and code in a["preferred_banks"] else []
    return replace(row, assessment={**a, "preferred_banks": mine})


class BankCodes:
    """A bank's code by its id, read once per process (a bank's code never changes)."""

    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._codes: dict[str, str | None] = {}

    async def of(self, bank_id: str) -> str | None:
        if bank_id not in self._codes:
            async with self.d.store.read() as q:
                bank = await q.banks.get(bank_id)
            if len(self._codes) >= MAX_CODES:
                self._codes.clear()
            if bank is None:
                return None  # not kept: a bank may be created later under this id
            self._codes[bank_id] = bank.code
        return self._codes[bank_id]

    async def mask(self, row: RoundRecord, bank_id: str) -> RoundRecord:
        return for_bank(row, await self.of(bank_id))
