"""The demo's data (``ige demo``, ``make run``): five banks, a demo exporter, a desk trader at
each of two banks (the pages, ``/desk``), an operator of the console (``/operator``), and three
rounds open with a few offers, taken in by the operator for the demo exporter.

Every start makes the demo true: a demo round is open *with the rules in force* (the deadline
``IGE_ROUND_DURATION`` or the business-day rule gives a round opened when it was), or a fresh
one is opened. So ``IGE_ROUND_DURATION=PT2M make run`` after a first ``make run`` does open
rounds that close in two minutes; the ones opened before keep their deadlines and close then.
What was kept and what was opened is reported (``Seeded``), with every open round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyotp

from auction.calendar import round_closes_at
from auction.model import dt_to_ms, iso, ms_to_dt
from gateway import bootstrap, views
from gateway.logs import get_logger
from gateway.settings import Settings
from persistence.records import RoundRecord
from usecases.accounts import NewDeskUser, NewExporter, Registered
from usecases.bidding import OfferDraft
from usecases.outcomes import Refusal
from usecases.portal import Portal

log = get_logger("ige.demo")

DEMO_BANKS = [
    ("ZIRAAT", "T.C. Ziraat Bankası"), ("HALKB", "Türkiye Halk Bankası"),
    ("VAKIF", "Türkiye Vakıflar Bankası"), ("ISBANK", "Türkiye İş Bankası"),
    ("GARANTI", "Garanti BBVA"),
]
DEMO_ROUNDS: list[dict[str, Any]] = [
    dict(company={"name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
                  "sector": "textiles", "contact": {"name": "Ayşe Yılmaz",
                                                    "email": "ayse@anadolutekstil.example",
                                                    "phone": "+905321234567"}},
         loan_type="working_capital", currency="TRY", loan_amount=500_000_000,
         guarantee_amount=500_000_000, tenor_months=24, grace_months=6, export_commitment=True,
         assessment={"score": 72, "band": "B"}),
    dict(company={"name": "Ege Makina San. Ltd.", "tax_id": "9876543217", "is_sme": False,
                  "sector": "machinery", "contact": {"name": "Mehmet Demir",
                                                     "email": "mehmet@egemakina.example",
                                                     "phone": "+905339876543"}},
         loan_type="investment", currency="USD", loan_amount=250_000_000,
         guarantee_amount=200_000_000, tenor_months=60, grace_months=12, export_commitment=False,
         assessment={"score": 64, "band": "C"}),
    dict(company={"name": "Karadeniz Gıda A.Ş.", "tax_id": "1111111114", "is_sme": True,
                  "sector": "food", "contact": {"name": "Zeynep Kaya",
                                                "email": "zeynep@karadenizgida.example",
                                                "phone": "+905051112233"}},
         loan_type="working_capital", currency="EUR", loan_amount=80_000_000,
         guarantee_amount=68_000_000, tenor_months=12, grace_months=3, export_commitment=True,
         assessment={"score": 81, "band": "A"}),
]
DEMO_EXPORTER = {"email": "exporter@demo.example", "password": "demo-password-1",
                 "full_name": "Demo İhracatçı", "national_id": "10000000146",
                 "mobile": "+905551112233"}
BANNER_ROUNDS = 12  # open rounds listed at start-up
#: a desk trader at each of two banks: (bank code, e-mail, full name); their password
DEMO_DESK_USERS = [("ZIRAAT", "desk@ziraat.demo.example", "Deniz Ziraat"),
                   ("HALKB", "desk@halkbank.demo.example", "Hande Halk")]
DEMO_DESK_PASSWORD = "demo-desk-password-1"
#: the operator of the console (``/operator``)
DEMO_OPERATOR = {"email": "operator@demo.example", "full_name": "Olcay Operatör",
                 "password": "demo-operator-password-1"}


@dataclass
class Seeded:
    """What a start did to the demo's data, for the banner."""

    saved: dict[str, Any]  # the credentials file's content
    kept: list[str] = field(default_factory=list)  # demo rounds already open with these rules
    opened: list[RoundRecord] = field(default_factory=list)  # rounds opened now
    open_rounds: list[RoundRecord] = field(default_factory=list)
    exporters: dict[str, str] = field(default_factory=dict)  # user id -> e-mail, for the banner


def with_current_rules(row: RoundRecord, settings: Settings) -> bool:
    """The round's deadline is the one the rules in force give a round opened when it was."""
    due = round_closes_at(ms_to_dt(row.opened_at), settings.calendar)
    return dt_to_ms(due) == row.closes_at


async def _exporter(portal: Portal, saved: dict[str, Any]) -> str | None:
    """The demo exporter's user id: the saved account when the database still has it, else a
    new one (an activated account, as the operator vouches for it)."""
    known = saved.get("exporter", {})
    found = await portal.accounts.exporter(email=DEMO_EXPORTER["email"])
    if not isinstance(found, Refusal) and known.get("user_id") == found.id:
        return found.id
    if isinstance(found, Refusal):
        reg = await portal.accounts.register(NewExporter(
            DEMO_EXPORTER["email"], DEMO_EXPORTER["full_name"], DEMO_EXPORTER["national_id"],
            DEMO_EXPORTER["mobile"], DEMO_EXPORTER["password"]), activated=True)
        if isinstance(reg, Registered):
            saved["exporter"] = {**DEMO_EXPORTER, "user_id": reg.user_id,
                                 "totp_uri": reg.totp_uri}
            return reg.user_id
        return None
    return found.id  # an account made elsewhere with the demo's e-mail: use it as it is


async def _desk_users(portal: Portal, saved: dict[str, Any]) -> None:
    """A trader at each of two demo banks, activated through the real two steps (the
    activation code, a password and an authenticator, a first one-time code); kept when the
    saved one is still in the database."""
    desk = saved.setdefault("desk_users", {})
    banks = {b.code: b for b in await portal.accounts.banks()}
    for code, email, name in DEMO_DESK_USERS:
        bank = banks.get(code)
        if bank is None:
            continue
        users = await portal.accounts.desk_users(bank.id)
        if not isinstance(users, Refusal) and any(u.email == email and u.active
                                                  for u in users) and email in desk:
            continue
        made = await portal.accounts.create_desk_user(bank.id, email, name, "trader", "demo")
        if not isinstance(made, NewDeskUser):
            continue  # an account made elsewhere with the demo's e-mail: left as it is
        started = await portal.accounts.start_desk_activation(email, made.activation_code,
                                                              DEMO_DESK_PASSWORD)
        assert isinstance(started, Registered), started
        code_now = pyotp.TOTP(pyotp.parse_uri(started.totp_uri).secret).now()
        done = await portal.accounts.finish_desk_activation(email, made.activation_code,
                                                            code_now)
        assert not isinstance(done, Refusal), done
        desk[email] = {"bank": code, "email": email, "password": DEMO_DESK_PASSWORD,
                       "role": "trader", "totp_uri": started.totp_uri}


async def _operator(portal: Portal, saved: dict[str, Any]) -> None:
    """The console's operator, activated through the real two steps (as the desk traders);
    kept when the saved one is still in the database."""
    known = saved.get("operator")
    if known is not None:
        found = await portal.operators.get(known.get("user_id", ""))
        if found is not None and found.active:
            return
    made = await portal.operators.create(DEMO_OPERATOR["email"], DEMO_OPERATOR["full_name"],
                                         "demo")
    if isinstance(made, Refusal):
        return  # an operator made elsewhere with the demo's e-mail: left as it is
    email, code = DEMO_OPERATOR["email"], made.activation_code
    started = await portal.operators.start_activation(email, code, DEMO_OPERATOR["password"])
    assert isinstance(started, Registered), started
    done = await portal.operators.finish_activation(
        email, code, pyotp.TOTP(pyotp.parse_uri(started.totp_uri).secret).now())
    assert not isinstance(done, Refusal), done
    saved["operator"] = {**DEMO_OPERATOR, "user_id": made.user.id,
                         "totp_uri": started.totp_uri}


async def seed(settings: Settings, saved: dict[str, Any]) -> Seeded:
    """Banks, the demo exporter, and a demo round open with the rules in force for each of
    ``DEMO_ROUNDS`` (a fresh one, with a few offers, where there is none). Idempotent."""
    rt = bootstrap.build(settings)
    portal = rt.portal
    out = Seeded(saved)
    try:
        await portal.durability.ensure_book()
        banks = saved.setdefault("banks", {})
        existing = {b.code for b in await portal.accounts.banks()}
        for code, name in DEMO_BANKS:
            if code not in existing:
                created = await portal.accounts.create_bank(code, name, "demo")
                if created:
                    banks[code] = views.bank_credentials(created)
        exporter_id = await _exporter(portal, saved)
        await _desk_users(portal, saved)
        await _operator(portal, saved)
        open_now = await portal.operator.rounds("open", 1000)
        current = {(r.company or {}).get("tax_id") for r in open_now
                   if with_current_rules(r, settings)}
        all_banks = await portal.accounts.banks()
        for i, spec in enumerate(DEMO_ROUNDS):
            name = spec["company"]["name"]
            if spec["company"]["tax_id"] in current:
                out.kept.append(name)
                continue
            row = await portal.operator.intake({**spec, "exporter_user_id": exporter_id}, [],
                                               "demo")
            assert isinstance(row, RoundRecord), row
            log.info("round_opened", round_id=row.id, application_id=row.application_id,
                     source="demo")
            out.opened.append(row)
            for j, bank in enumerate(all_banks[: 2 + i]):
                await portal.bidding.submit(bank.id, row.id, OfferDraft({
                    "annual_rate": 38_0000 + 2500 * j - 5000 * i,
                    "amount": row.loan_amount, "tenor_months": row.tenor_months,
                    "grace_months": row.grace_months, "repayment_every_months": 3,
                    "upfront_fee": 0, "assumes_export_commitment": row.export_commitment,
                    "conditions": "demo offer"}), None)
        out.open_rounds = sorted(await portal.operator.rounds("open", 1000),
                                 key=lambda r: (r.closes_at, r.id))
        for uid in {r.exporter_user_id for r in out.open_rounds if r.exporter_user_id}:
            who = await portal.accounts.exporter(user_id=uid)
            if not isinstance(who, Refusal):
                out.exporters[uid] = who.email
        return out
    finally:
        await rt.aclose()


def rules_text(settings: Settings) -> str:
    cal = settings.calendar
    if cal.round_duration is not None:
        rounds = f"rounds last {_duration(cal.round_duration.total_seconds())} " \
                 "(IGE_ROUND_DURATION)"
    else:
        rounds = (f"rounds close at {cal.close_time:%H:%M} Istanbul, "
                  f"{cal.round_business_days} business days after they open (set "
                  "IGE_ROUND_DURATION=PT2M for short ones)")
    if cal.binding_duration is not None:
        binding = f"offers bind {_duration(cal.binding_duration.total_seconds())} " \
                  "(IGE_BINDING_DURATION)"
    else:
        binding = f"offers bind {cal.binding_business_days} business days"
    return f"{rounds}; {binding}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s % 86400 == 0:
        return f"{s // 86400} d"
    if s % 3600 == 0:
        return f"{s // 3600} h"
    if s % 60 == 0:
        return f"{s // 60} min"
    return f"{s} s"


def banner_lines(seeded: Seeded, settings: Settings) -> list[str]:
    """The rounds part of the start-up banner: the rules in force, what this start did, and
    every open round with its deadline, its application and its exporter."""
    lines = [f"Rules      {rules_text(settings)}"]
    if seeded.opened:
        lines.append(f"Demo       opened {len(seeded.opened)} fresh demo round(s) with these "
                     "rules" + (f"; kept {len(seeded.kept)} open with them"
                                if seeded.kept else "")
                     + (" (the open ones had other deadlines)"
                        if not seeded.kept and len(seeded.open_rounds) > len(seeded.opened)
                        else ""))
    else:
        lines.append(f"Demo       {len(seeded.kept)} demo rounds already open with these rules: "
                     "kept (make reset starts over)")
    fresh = {r.id for r in seeded.opened}
    lines.append(f"Open       {len(seeded.open_rounds)} round(s), soonest deadline first:")
    for r in seeded.open_rounds[:BANNER_ROUNDS]:
        who = seeded.exporters.get(r.exporter_user_id or "", r.exporter_user_id or "-")
        lines.append(f"  {r.id}  closes {iso(ms_to_dt(r.closes_at))}  "
                     f"application {r.application_id or '-'}  exporter {who}"
                     + ("  (new)" if r.id in fresh else ""))
    if len(seeded.open_rounds) > BANNER_ROUNDS:
        lines.append(f"  ... and {len(seeded.open_rounds) - BANNER_ROUNDS} more "
                     "(GET /v1/bank/rounds)")
    return lines
