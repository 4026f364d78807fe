"""What a use case answers when it will not do what was asked: a ``Refusal`` with a stable
code (the codes of the public contract: ``round_closed``, ``not_found``, ``offer_required``...).

Refusals are return values, never HTTP: the gateway maps each code to its RFC 9457 problem in
one table (``gateway/problems.py``). A use case returns ``T | Refusal``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auction.rules import FieldError


@dataclass(frozen=True)
class Refusal:
    code: str
    detail: str = ""
    errors: Sequence[FieldError] | None = None  # validation_failed: every offending field
    extra: Mapping[str, Any] = field(default_factory=dict)  # more members of the problem



@dataclass(frozen=True)
class Draft:
    """A request as far as it parsed: the values of the fields that did (wire names,
    converted: money in minor units, rates x 10^4) and the errors of those that did not.
    The use case runs its rules over the values and refuses once, listing both."""

    values: Mapping[str, Any]
    errors: Sequence[FieldError] = ()


def invalid(errors: Sequence[FieldError]) -> Refusal:
    """Malformed or rule-breaking input: every offending field, in one refusal."""
    fields = ", ".join(sorted({e.field for e in errors}))
    return Refusal("validation_failed", f"invalid fields: {fields}", tuple(errors))


NOT_FOUND_ROUND = Refusal("not_found", "no such round")
