"""The machine-readable contract (OpenAPI 3.1, ``GET /v1/openapi.json``) and the human
documentation page rendered from it (``GET /docs``).

Both are built once per process. Names and shapes follow ../shared/spec/API.md; the status
codes and problem codes follow the handlers in gateway/app.py. The live stream (WebSocket) is
described in ``POST /v1/stream/tickets`` and in its ``x-websocket`` extension.
"""

from __future__ import annotations

import functools
import html
import json
import re
from typing import Any

from applications.model import RELATIONS
from auction.model import CURRENCIES, LOAN_TYPES, RoundState
from applications.package import PACKAGES
from auction.rules import MAX_CONDITIONS_LEN, REPAYMENT_PERIODS
from gateway.problems import TITLES, TYPE_BASE
from gateway.settings import Settings
from gateway.stream import MAX_CATCH_UP, SLOW_CLIENT_CLOSE, SUBPROTOCOLS

Schema = dict[str, Any]

_DEFAULTS = Settings()
LOAN_TYPE_RULES = PACKAGES[-1].loan_types
MAX_TENOR = max(r.max_tenor_months for r in LOAN_TYPE_RULES.values())
MIN_TENOR = min(r.min_tenor_months for r in LOAN_TYPE_RULES.values())
MAX_GRACE = max(r.max_grace_months for r in LOAN_TYPE_RULES.values())
ROUND_STATES = [s.value for s in RoundState]

PROBLEM_MEDIA = "application/problem+json"
JSON_MEDIA = "application/json"


# ----------------------------------------------------------------------------- schema helpers
def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Schema], required: list[str] | None = None, description: str = "",
        additional: bool | Schema = True, **extra: Any) -> Schema:
    out: Schema = {"type": "object"}
    if description:
        out["description"] = description
    out["properties"] = props
    if required:
        out["required"] = required
    if additional is not True:
        out["additionalProperties"] = additional
    out.update(extra)
    return out


def arr(items: Schema, description: str = "", **extra: Any) -> Schema:
    out: Schema = {"type": "array", "items": items}
    if description:
        out["description"] = description
    out.update(extra)
    return out


def d(schema: Schema, description: str, **extra: Any) -> Schema:
    """A schema (often a $ref) with its own description: 3.1 allows siblings next to $ref."""
    return {**schema, "description": description, **extra}


def integer(description: str, minimum: int | None = None, maximum: int | None = None,
            **extra: Any) -> Schema:
    out: Schema = {"type": "integer", "description": description}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    out.update(extra)
    return out


def string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def boolean(description: str, **extra: Any) -> Schema:
    return {"type": "boolean", "description": description, **extra}


# ----------------------------------------------------------------------------- schemas
def _offer_term_props(output: bool) -> dict[str, Schema]:
    money = ref("Money") if output else ref("MoneyInput")
    rate = ref("Rate") if output else ref("RateInput")
    return {
        "annual_rate": d(rate, "Nominal interest rate, percent per year."),
        "amount": d(money, "Loan amount offered, in the round's currency; at most the "
                           "requested loan_amount."),
        "tenor_months": integer(f"Loan tenor in months ({MIN_TENOR}..{MAX_TENOR}, limits "
                                "depend on loan_type: " + "; ".join(
                                    f"{k} {r.min_tenor_months}..{r.max_tenor_months}"
                                    for k, r in LOAN_TYPE_RULES.items()) + ").",
                                MIN_TENOR, MAX_TENOR),
        "grace_months": integer("Grace period in months, shorter than the tenor (at most "
                                + "; ".join(f"{r.max_grace_months} for {k}"
                                            for k, r in LOAN_TYPE_RULES.items()) + ").",
                                0, MAX_GRACE, **({} if output else {"default": 0})),
        "repayment_every_months": {
            "type": "integer", "enum": list(REPAYMENT_PERIODS),
            "description": "Months between repayments (interest is collected at least once "
                           "a year).", **({} if output else {"default": 1})},
        "upfront_fee": d(money, "One-off fee charged at disbursement, below amount.",
                         **({} if output else {"default": "0.00"})),
        "assumes_export_commitment": boolean(
            "The bank takes over the round's export commitment.",
            **({} if output else {"default": False})),
        "conditions": string("Free-text conditions of the offer.", maxLength=MAX_CONDITIONS_LEN,
                             **({} if output else {"default": ""})),
    }


TERM_NAMES = list(_offer_term_props(True))
TERMS_REQUIRED_OUT = TERM_NAMES


def _schemas() -> dict[str, Schema]:
    s: dict[str, Schema] = {}
    s["Money"] = {
        "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["1500000.00"],
        "description": "Money: a decimal string with exactly 2 places, in the round's "
                       "currency (never a JSON number)."}
    s["MoneyInput"] = {
        "type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$", "examples": ["1500000.00"],
        "description": "Money sent by a client: a decimal string with at most 2 places "
                       "(\"1500000.00\"); numbers, exponents and signs are refused."}
    s["Rate"] = {
        "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2,4}$", "examples": ["31.25"],
        "description": "A rate: a decimal string, percent per year, 2 to 4 places."}
    s["RateInput"] = {
        "type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,4})?$", "examples": ["31.25"],
        "description": "A rate sent by a client: a decimal string, percent per year, at most "
                       "4 places, above 0 and at most 500."}
    s["Apr"] = {
        "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{4}$", "examples": ["36.8212"],
        "description": "All-in annual cost (rate, grace, repayment schedule, upfront fee and "
                       "the guarantee commission), percent per year, 4 places. Offers rank by "
                       "apr, then annual_rate, then earlier seq; rank 1 is best."}
    s["Timestamp"] = {
        "type": "string", "format": "date-time",
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$",
        "examples": ["2026-03-18T14:30:00Z"],
        "description": "ISO 8601 timestamp in UTC (`Z`), milliseconds only when present. "
                       "The server clock is the only clock."}
    s["Id"] = {"type": "string", "minLength": 1, "examples": ["rnd_3f9c2a7d41b0e8c5a2d1"],
               "description": "An opaque identifier."}
    s["RoundState"] = {
        "type": "string", "enum": ROUND_STATES,
        "description": "open: taking offers; closed: past the deadline, offers binding; "
                       "accepted: the exporter accepted an offer; lapsed: the binding period "
                       "ended without an acceptance."}
    s["Currency"] = {"type": "string", "enum": list(CURRENCIES)}
    s["LoanType"] = {"type": "string", "enum": list(LOAN_TYPES)}

    s["Problem"] = obj({
        "type": string("A URI naming the problem type.", format="uri",
                       examples=[TYPE_BASE + "round_closed"]),
        "title": string("A short human summary of the problem type."),
        "status": integer("The HTTP status code.", 400, 599),
        "code": string("The stable machine code; branch on this, never on title or detail. "
                       "Known codes: " + ", ".join(TITLES) + ".",
                       examples=["round_closed"]),
        "detail": string("A human explanation of this occurrence."),
        "instance": string("The request path this problem occurred on.", format="uri-reference"),
        "errors": arr(ref("FieldError"), "Every offending field (422 validation_failed)."),
    }, ["type", "title", "status", "code", "detail"],
        "An error (RFC 9457), sent as application/problem+json.")
    s["FieldError"] = obj({
        "field": string("The field (dotted path for nested fields, e.g. `company.tax_id`; "
                        "empty for the body itself)."),
        "code": string("A stable machine code such as required, invalid, not_positive, "
                       "above_requested, unknown_field, currency_mismatch.",
                       examples=["required"]),
        "message": string("A human message."),
    }, ["field", "code", "message"])

    s["Contact"] = obj({
        "name": string("Contact person."), "email": string("E-mail address."),
        "phone": string("Phone number."),
    }, description="Company contact; every field optional.")
    s["Company"] = obj({
        "name": string("Trade name."),
        "tax_id": string("Turkish tax id (VKN, 10 digits) or TCKN (11 digits)."),
        "is_sme": boolean("The company is an SME (KOBİ)."),
        "sector": {"type": ["string", "null"], "description": "Sector."},
        "contact": ref("Contact"),
    }, ["name", "tax_id", "is_sme", "sector", "contact"])
    s["Assessment"] = {
        "type": ["object", "null"],
        "description": "The scoring of the application (score, band, financials, risk, "
                       "exports); null for rounds opened by the operator without one.",
        "properties": {
            "score": {"type": "number", "description": "Credit score."},
            "band": string("Risk band."),
            "financials": {"type": "object", "description": "Financial ratios used."},
            "risk": {"type": "object", "description": "Risk findings."},
            "exports": {"type": "object", "description": "Export history used."},
        },
    }
    s["ROUND"] = obj({
        "round_id": ref("Id"),
        "state": ref("RoundState"),
        "opened_at": ref("Timestamp"),
        "closes_at": d(ref("Timestamp"), "Offers are accepted strictly before this time."),
        "currency": ref("Currency"),
        "loan_type": ref("LoanType"),
        "loan_amount": d(ref("Money"), "Requested loan amount."),
        "guarantee_amount": d(ref("Money"), "Amount guaranteed by the guarantee fund."),
        "guarantee_rate": d(ref("Rate"), "guarantee_amount / loan_amount, percent."),
        "tenor_months": integer("Requested tenor in months.", 1),
        "grace_months": integer("Requested grace period in months.", 0),
        "export_commitment": boolean("The loan carries an export commitment."),
        "company": ref("Company"),
        "assessment": ref("Assessment"),
        "has_my_offer": boolean("Bank views only: this bank has an offer in the round."),
        "closed_at": d(ref("Timestamp"), "Present once the round has closed."),
        "binding_until": d(ref("Timestamp"), "Present once the round has closed: offers "
                                             "stay binding until then."),
    }, ["round_id", "state", "opened_at", "closes_at", "currency", "loan_type", "loan_amount",
        "guarantee_amount", "guarantee_rate", "tenor_months", "grace_months",
        "export_commitment", "company", "assessment"],
        "An offer round (one approved application) as banks see it in the pool.")
    s["ROUND_DETAIL"] = {"allOf": [ref("ROUND"), obj({
        "my_offers": arr(ref("OFFER"), "This bank's own offers (latest version of each)."),
    }, ["my_offers"])], "description": "ROUND plus the caller's own offers."}
    s["ROUND_LIST"] = obj({
        "rounds": arr(ref("ROUND")),
        "next_cursor": {"type": ["string", "null"],
                        "description": "Pass as `cursor` for the next page; null at the end."},
    }, ["rounds", "next_cursor"])
    s["ADMIN_ROUND"] = {"allOf": [ref("ROUND"), obj({
        "application_id": {"type": ["string", "null"], "description": "The application, if "
                           "the round belongs to an exporter's application."},
        "exporter_user_id": {"type": ["string", "null"], "description": "The exporter who "
                             "may follow and accept the round."},
        "persisted_seq": integer("GET only: the last event seq copied to the database.", 0),
        "reference_number": string("GET only, after close: the round's reference number."),
    }, ["application_id", "exporter_user_id"])],
        "description": "ROUND as the operator sees it."}

    s["OFFER_TERMS"] = obj(
        _offer_term_props(False) | {"currency": d(ref("Currency"), "Optional; must equal the "
                                                                   "round's currency.")},
        ["annual_rate", "amount", "tenor_months"],
        "The terms a bank offers. Unknown fields are refused (422 unknown_field).",
        additional=False)
    s["OFFER"] = obj({
        "offer_id": ref("Id"),
        "round_id": ref("Id"),
        "version": integer("1 for a new offer, +1 on every revision; every version is kept.", 1),
        "seq": integer("The round event number of this version.", 1),
        "accepted_at": d(ref("Timestamp"), "When the server accepted this version."),
        "rank": {"type": ["integer", "null"], "minimum": 1,
                 "description": "Current rank in the round (1 is best); null when unknown."},
        "apr": ref("Apr"),
        "label": string("This bank's masked name in this round (e.g. \"Banka C\")."),
        **_offer_term_props(True),
    }, ["offer_id", "round_id", "version", "seq", "accepted_at", "rank", "apr", "label",
        *TERMS_REQUIRED_OUT], "An offer as the bank that made it sees it.")
    s["BOOK_ENTRY"] = {
        **obj({
            "ref": string("Opaque per-offer handle (carries no bank identity); matches "
                          "`ranks[].ref` in quote messages."),
            "label": string("Masked bank name, random per round, stable for one bank within "
                            "the round and unlinkable across rounds.", examples=["Banka C"]),
            "rank": integer("1 is best.", 1),
            "mine": boolean("The offer belongs to the caller."),
            "annual_rate": ref("Rate"),
            "apr": ref("Apr"),
            "amount": ref("Money"),
            "tenor_months": integer("Tenor in months.", 1),
            "grace_months": integer("Grace period in months.", 0),
            "repayment_every_months": {"type": "integer", "enum": list(REPAYMENT_PERIODS)},
            "upfront_fee": ref("Money"),
            "assumes_export_commitment": {"type": "boolean"},
            "version": integer("Version of this offer.", 1),
            "updated_at": d(ref("Timestamp"), "When this version was accepted."),
            "offer_id": d(ref("Id"), "Only when mine."),
            "conditions": string("Only when mine.", maxLength=MAX_CONDITIONS_LEN),
        }, ["ref", "label", "rank", "mine", "annual_rate", "apr", "amount", "tenor_months",
            "grace_months", "repayment_every_months", "upfront_fee",
            "assumes_export_commitment", "version", "updated_at"],
            "One offer in the masked book. No bank id, code, name or other bank's offer_id "
            "ever appears; offer_id and conditions are present only on the caller's own offers."),
        "if": {"properties": {"mine": {"const": True}}, "required": ["mine"]},
        "then": {"required": ["offer_id", "conditions"]},
        "else": {"not": {"anyOf": [{"required": ["offer_id"]}, {"required": ["conditions"]}]}},
    }
    s["BOOK"] = obj({
        "round_id": ref("Id"),
        "seq": integer("The round's last event number reflected here.", 0),
        "server_time": ref("Timestamp"),
        "closes_at": ref("Timestamp"),
        "state": ref("RoundState"),
        "my_label": string("The caller's masked name in this round."),
        "offers": arr(ref("BOOK_ENTRY"), "Every live offer, best first."),
    }, ["round_id", "seq", "server_time", "closes_at", "state", "offers"],
        "The masked order book of one round, for a bank that has bid in it.")
    s["RESULT_OFFER"] = {"allOf": [ref("OFFER"), obj({
        "final_rank": integer("Rank at the close.", 1),
        "binding": boolean("The offer binds the bank until binding_until."),
        "chosen": boolean("The exporter accepted this offer."),
    }, ["final_rank", "binding", "chosen"])]}
    s["RESULT"] = obj({
        "round_id": ref("Id"),
        "state": ref("RoundState"),
        "reference_number": string("The round's reference number."),
        "closed_at": ref("Timestamp"),
        "binding_until": ref("Timestamp"),
        "my_offers": arr(ref("RESULT_OFFER"), "This bank's offers at the close."),
    }, ["round_id", "state", "reference_number", "closed_at", "binding_until", "my_offers"],
        "A closed round's outcome for one bank.")
    s["EXPORTER_OFFER"] = obj({
        "offer_id": ref("Id"),
        "bank_code": {"type": ["string", "null"], "description": "The bank's code."},
        "bank_name": {"type": ["string", "null"], "description": "The bank's name (shown to "
                      "the exporter only after the close)."},
        "rank": integer("Final rank (1 is best).", 1),
        "version": integer("Final version of the offer.", 1),
        "apr": ref("Apr"),
        **_offer_term_props(True),
    }, ["offer_id", "bank_code", "bank_name", "rank", "version", "apr", *TERMS_REQUIRED_OUT])
    s["EXPORTER_RESULTS"] = obj({
        "application_id": {"type": ["string", "null"]},
        "round_id": ref("Id"),
        "state": ref("RoundState"),
        "reference_number": string("The round's reference number."),
        "closed_at": ref("Timestamp"),
        "binding_until": d(ref("Timestamp"), "Offers can be accepted until then."),
        "accepted_offer_id": {"type": ["string", "null"],
                              "description": "The accepted offer, once one is accepted."},
        "offers": arr(ref("EXPORTER_OFFER"), "The binding offers, best first."),
    }, ["round_id", "state", "reference_number", "closed_at", "binding_until",
        "accepted_offer_id", "offers"], "A closed round's offers, for the exporter.")
    s["APPLICATION"] = obj({
        "application_id": ref("Id"),
        "status": {"type": "string", "enum": ["approved", "rejected"]},
        "decision": {
            "type": ["object", "null"],
            "description": "The scoring decision (İDES): score 0..100, band A..E and every "
                           "reason; for a round opened by the operator, its assessment.",
            "properties": {
                "score": {"type": "number"}, "band": {"type": "string"},
                "pass_mark": {"type": "integer", "description": "The score needed to pass."},
                "reasons": arr(obj({
                    "code": {"type": "string", "description": "Stable reason code, e.g. "
                             "group_limit_exceeded, non_performing_loan, "
                             "score_below_pass_mark, score_passed."},
                    "text": {"type": "string"},
                    "kind": {"type": "string", "enum": ["intake", "hard_rule", "score", "note"],
                             "description": "intake: a guarantee rule; hard_rule: rejects "
                                            "whatever the score; score; note: no effect."},
                    "field": {"type": "string", "description": "The form field concerned."},
                }, ["code", "text"])),
                "factors": arr(obj({
                    "name": {"type": "string"}, "group": {"type": "string",
                                                          "enum": ["financials", "risk",
                                                                   "exports"]},
                    "value": {"type": ["string", "null"],
                              "description": "The measured value (decimal string)."},
                    "points": integer("Points of the factor.", 0, 100),
                    "weight": integer("Weight of the factor.", 0),
                }, ["name", "group", "value", "points", "weight"]),
                    "The scorecard: score = weighted mean of the points, rounded half up."),
                "package_version": {"type": "string"},
            },
        },
        "round": {
            "anyOf": [obj({
                "round_id": ref("Id"),
                "state": ref("RoundState"),
                "opened_at": ref("Timestamp"),
                "closes_at": ref("Timestamp"),
                "closed_at": ref("Timestamp"),
                "binding_until": ref("Timestamp"),
            }, ["round_id", "closes_at"]), {"type": "null"}],
            "description": "The offer round (null when rejected). No offer data is shown "
                           "while the round is open."},
        "created_at": d(ref("Timestamp"), "When the application was decided."),
        "company": obj({"company_id": ref("Id"), "tax_id": {"type": "string"},
                        "name": {"type": ["string", "null"]}}),
        "package_version": string("The guarantee package in force at the decision."),
        "request": ref("APPLICATION_REQUEST"),
    }, ["application_id", "status", "decision", "round"], "An exporter's loan application.")
    s["APPLICATION_REQUEST"] = obj({
        "loan_type": ref("LoanType"), "currency": ref("Currency"),
        "loan_amount": ref("Money"), "guarantee_amount": ref("Money"),
        "guarantee_rate": d(ref("Rate"), "guarantee_amount / loan_amount, percent."),
        "tenor_months": {"type": "integer"}, "grace_months": {"type": "integer"},
        "related_companies": arr(ref("RELATED_COMPANY")),
        "preferred_banks": arr({"type": "string"}),
        "export_commitment": {"type": "boolean"}, "purpose": {"type": "string"},
    }, description="The application form as received.")
    s["RELATED_COMPANY"] = obj({
        "tax_id": string("VKN (10 digits) or TCKN (11 digits)."),
        "relation": {"type": "string", "enum": list(RELATIONS)},
        "share_pct": string("The share the applicant and/or its partners hold in it, "
                            "percent (decimal string, 0..100). Insolvency of a company held "
                            "25 % or more rejects the application.",
                            pattern=r"^[0-9]+(\.[0-9]{1,2})?$"),
    }, ["tax_id", "relation", "share_pct"], "A partner or related company (the risk group).")
    s["APPLICATION_FORM"] = obj({
        "company_id": d(ref("Id"), "A company matched with POST /v1/exporter/companies."),
        "loan_type": ref("LoanType"),
        "currency": ref("Currency"),
        "loan_amount": ref("MoneyInput"),
        "guarantee_amount": d(ref("MoneyInput"), "At most loan_amount; the guarantee rate "
                              "cap of the package applies (exporters / FX-earning 100 %, other "
                              "SMEs 85 %, other non-SMEs 80 %)."),
        "tenor_months": integer("Within the loan type's limits (minimum 6).", MIN_TENOR,
                                MAX_TENOR),
        "grace_months": integer("Shorter than the tenor, within the loan type's limit.", 0,
                                MAX_GRACE, default=0),
        "related_companies": arr(ref("RELATED_COMPANY"), "Partners and related companies "
                                 "(the risk group); the registry's known affiliates are added.",
                                 maxItems=50, default=[]),
        "preferred_banks": arr({"type": "string"}, "Bank codes the exporter prefers: shown "
                               "to every bank as a flag, never used to hide the request.",
                               maxItems=30, default=[]),
        "export_commitment": boolean("The exporter commits to bring the export proceeds to "
                                     "the lending bank.", default=False),
        "purpose": string("What the loan is for.", maxLength=2000, default=""),
    }, ["company_id", "loan_type", "currency", "loan_amount", "guarantee_amount",
        "tenor_months"], "The application form (Kefalet Başvuru Formu). Unknown fields are "
       "refused (422 unknown_field).", additional=False)
    s["COMPANY"] = obj({
        "company_id": ref("Id"),
        "tax_id": string("VKN or TCKN."),
        "name": string("Trade name from the trade registry."),
        "sector": {"type": ["string", "null"]},
        "is_sme": boolean("SME (KOBİ) per the trade registry."),
        "active": boolean("Active in the trade registry at the last match."),
        "signatory": boolean("The caller is an authorised signatory (always true here)."),
        "matched_at": ref("Timestamp"),
        "consent": {"anyOf": [obj({
            "text_version": string("The consent text version accepted."),
            "accepted_at": ref("Timestamp"),
            "withdrawn_at": {"anyOf": [ref("Timestamp"), {"type": "null"}]},
            "active": boolean("The company has an active consent: it may apply and its data "
                              "is shown to banks."),
        }, ["text_version", "accepted_at", "withdrawn_at", "active"]), {"type": "null"}],
            "description": "The company's latest consent (muvafakatname)."},
        "open_rounds_hidden": integer("DELETE consent only: open rounds whose company data "
                                      "is now hidden from banks.", 0),
    }, ["company_id", "tax_id", "name", "sector", "is_sme", "active", "signatory",
        "matched_at", "consent"], "A company the caller is matched to.")

    s["TOKEN"] = obj({
        "access_token": string("Bearer token."),
        "token_type": {"type": "string", "const": "Bearer"},
        "expires_in": integer("Lifetime in seconds.", 1),
        "bank_code": string("The bank's code."),
    }, ["access_token", "token_type", "expires_in", "bank_code"])
    s["EXPORTER_TOKEN"] = obj({
        "access_token": string("Bearer token."),
        "token_type": {"type": "string", "const": "Bearer"},
        "expires_in": integer("Lifetime in seconds.", 1),
    }, ["access_token", "token_type", "expires_in"])
    s["BANK"] = obj({
        "bank_id": ref("Id"), "bank_code": string("Code."), "name": string("Name."),
        "client_id": string("OAuth2 client id."), "active": {"type": "boolean"},
    }, ["bank_id", "bank_code", "name", "client_id", "active"])
    s["BANK_CREDENTIALS"] = obj({
        "bank_id": ref("Id"), "bank_code": string("Code."), "name": string("Name."),
        "client_id": string("OAuth2 client id."),
        "client_secret": string("OAuth2 client secret; shown once, stored only as a hash."),
    }, ["bank_id", "bank_code", "name", "client_id", "client_secret"])
    s["AUDIT_ENTRY"] = obj({
        "id": integer("Monotonic entry id.", 1),
        "at": ref("Timestamp"),
        "actor": string("Who acted: admin, bank:<id>, exporter:<id>, system."),
        "action": string("What happened, e.g. bank_created, round_opened."),
        "round_id": {"type": ["string", "null"]},
        "detail": {"type": "object"},
    }, ["id", "at", "actor", "action", "round_id", "detail"])
    s.update(_stream_schemas())
    return s


def _msg(type_: str, props: dict[str, Schema], required: list[str], description: str,
         topic: Schema | None = None) -> Schema:
    return obj({"type": {"const": type_},
                "topic": topic or {"type": ["string", "null"]}, **props},
               ["type", "topic", *required], description)


def _stream_schemas() -> dict[str, Schema]:
    topic = {"type": "string", "pattern": r"^(pool|round:.+|application:.+)$",
             "examples": ["round:rnd_3f9c2a7d41b0e8c5a2d1", "pool", "application:app_91a0"]}
    s: dict[str, Schema] = {}
    s["StreamTopic"] = d(topic, "round:<id> (banks that bid in it, operator), pool (banks, "
                                "operator), application:<id> (its exporter).")
    s["StreamSubscribe"] = obj({
        "op": {"const": "subscribe"}, "topic": ref("StreamTopic"),
        "since_seq": integer("Round topics: the last seq the client has; the server sends "
                             "the events after it, or a snapshot when it is more than "
                             f"{MAX_CATCH_UP} events behind. Omit for a snapshot.", 0),
    }, ["op", "topic"])
    s["StreamUnsubscribe"] = obj({"op": {"const": "unsubscribe"}, "topic": ref("StreamTopic")},
                                 ["op", "topic"])
    s["StreamPing"] = obj({"op": {"const": "ping"}}, ["op"])
    s["StreamClientMessage"] = {
        "oneOf": [ref("StreamSubscribe"), ref("StreamUnsubscribe"), ref("StreamPing")],
        "discriminator": {"propertyName": "op", "mapping": {
            "subscribe": "#/components/schemas/StreamSubscribe",
            "unsubscribe": "#/components/schemas/StreamUnsubscribe",
            "ping": "#/components/schemas/StreamPing"}},
        "description": "A message from the client."}
    seq = integer("Rises by exactly 1 per event of the round.", 1)
    s["StreamSnapshot"] = {"allOf": [
        _msg("snapshot", {}, [], "The round's BOOK: on subscribe, after a too-old since_seq, "
             "after a resync, and for a bank that subscribed before bidding once it bids. The "
             "stream continues with seq + 1.", topic=ref("StreamTopic")),
        ref("BOOK")]}
    s["StreamQuote"] = _msg("quote", {
        "seq": seq,
        "offer": d(ref("BOOK_ENTRY"), "The offer added or revised, masked as in BOOK."),
        "ranks": arr(obj({"ref": {"type": "string"}, "rank": integer("1 is best.", 1)},
                         ["ref", "rank"]), "The new rank of every live offer, best first."),
    }, ["seq", "offer", "ranks"], "One offer added or revised in the round.",
        topic=ref("StreamTopic"))
    s["StreamRoundOpened"] = _msg("round_opened", {"round": ref("ROUND")}, ["round"],
                                  "Topic pool: a new round is open for offers.",
                                  topic={"const": "pool"})
    s["StreamRoundClosed"] = _msg("round_closed", {
        "seq": seq,
        "closed_at": ref("Timestamp"),
        "results": d(ref("EXPORTER_RESULTS"), "Application topics: the offers, after close."),
    }, [], "The round closed. Round topics carry seq and closed_at; application topics carry "
           "the results.", topic=ref("StreamTopic"))
    s["StreamHeartbeat"] = _msg("heartbeat", {"server_time": ref("Timestamp")}, ["server_time"],
                                f"Every {_DEFAULTS.heartbeat_s:g} s on every connection.",
                                topic={"type": "null"})
    s["StreamPong"] = _msg("pong", {"server_time": ref("Timestamp")}, ["server_time"],
                           "The answer to ping.", topic={"type": "null"})
    s["StreamError"] = _msg("error", {
        "code": {"type": "string",
                 "enum": ["offer_required", "not_found", "validation_failed", "bad_command"],
                 "description": "offer_required: a bank subscribed to a round before its first "
                                "offer (the snapshot follows that offer automatically); "
                                "not_found: no such topic for this caller; validation_failed: "
                                "since_seq is not an integer; bad_command: not a "
                                "subscribe/unsubscribe/ping message."},
        "detail": string("A human explanation."),
    }, ["code"], "A refused command; the connection stays open.")
    names = {"snapshot": "StreamSnapshot", "quote": "StreamQuote",
             "round_opened": "StreamRoundOpened", "round_closed": "StreamRoundClosed",
             "heartbeat": "StreamHeartbeat", "pong": "StreamPong", "error": "StreamError"}
    s["StreamServerMessage"] = {
        "oneOf": [ref(n) for n in names.values()],
        "discriminator": {"propertyName": "type", "mapping": {
            k: f"#/components/schemas/{v}" for k, v in names.items()}},
        "description": "A message from the server. Every message has type and topic; round "
                       "topics also carry seq."}
    return s


# ----------------------------------------------------------------------------- operations
AUTH_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "bank": [{"bankToken": []}],
    "exporter": [{"exporterToken": []}],
    "operator": [{"operatorToken": []}],
    "any": [{"bankToken": []}, {"exporterToken": []}, {"operatorToken": []}],
}
AUTH_TEXT = {
    "public": "none (public)",
    "bank": "bank token (OAuth2 client credentials, `POST /v1/oauth/token`)",
    "exporter": "exporter token (`POST /v1/exporter/login`)",
    "operator": "operator token (`IGE_ADMIN_TOKEN`)",
    "any": "any token: bank, exporter or operator",
}


def _example(code: str, status: int) -> dict[str, Any]:
    return {"summary": TITLES.get(code, code.replace("_", " ")), "value": {
        "type": TYPE_BASE + code, "title": TITLES.get(code, code.replace("_", " ")),
        "status": status, "code": code, "detail": TITLES.get(code, "")}}


def _problem_response(status: int, codes: list[str], what: str = "") -> dict[str, Any]:
    desc = (what + " " if what else "") + "Problem codes: " + ", ".join(f"`{c}`" for c in codes) + "."
    out: dict[str, Any] = {"description": desc.strip(), "content": {PROBLEM_MEDIA: {
        "schema": ref("Problem"),
        "examples": {c: _example(c, status) for c in codes}}}}
    if status == 401:
        out["headers"] = {"WWW-Authenticate": {"description": "`Bearer`",
                                               "schema": {"type": "string"}}}
    return out


def _json(schema: Schema) -> dict[str, Any]:
    return {JSON_MEDIA: {"schema": schema}}


def op(op_id: str, tag: str, summary: str, description: str, auth: str, *,
       ok: tuple[int, str, Schema | None] | None = None,
       ok_content: dict[str, Any] | None = None,
       params: list[dict[str, Any]] | None = None,
       body: Schema | None = None, form: bool = False, idempotent: bool = False,
       problems: dict[int, list[str]] | None = None,
       extra_responses: dict[str, Any] | None = None,
       **ext: Any) -> dict[str, Any]:
    codes: dict[int, list[str]] = {}

    def add(status: int, *names: str) -> None:
        for n in names:
            if n not in codes.setdefault(status, []):
                codes[status].append(n)

    if body is not None and not form:
        add(400, "malformed_json")
        add(422, "validation_failed")
    for status, names in (problems or {}).items():
        add(status, *names)
    if auth != "public":
        add(401, "unauthorized")
        if auth != "any":
            add(404, "not_found")  # a token of another kind: that object space does not exist
    if idempotent:
        add(422, "idempotency_mismatch")
    add(503, "unavailable")

    auth_line = f"**Auth:** {AUTH_TEXT[auth]}."
    if auth not in ("public", "any"):
        auth_line += " A token of another kind gets 404 `not_found`."
    if idempotent:
        auth_line += (" **Idempotency:** send an `Idempotency-Key`; the same key and body from "
                      "the same caller returns the first response again, the same key with "
                      "another body is 422 `idempotency_mismatch`.")
    o: dict[str, Any] = {
        "operationId": op_id, "tags": [tag], "summary": summary,
        "description": (description + "\n\n" + auth_line).strip(),
        "security": AUTH_SECURITY[auth],
        "x-auth": auth,
    }
    ps = list(params or [])
    if idempotent:
        ps.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if ps:
        o["parameters"] = ps
    if body is not None:
        media = "application/x-www-form-urlencoded" if form else JSON_MEDIA
        o["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
    responses: dict[str, Any] = {}
    if ok is not None:
        status, desc, schema = ok
        r: dict[str, Any] = {"description": desc}
        if ok_content is not None:
            r["content"] = ok_content
        elif schema is not None:
            r["content"] = _json(schema)
        responses[str(status)] = r
    responses.update(extra_responses or {})
    for status in sorted(codes):
        responses[str(status)] = _problem_response(status, codes[status])
    responses["default"] = {
        "description": "Any other error, e.g. 405 `method_not_allowed`, 500 `internal_error`.",
        "content": {PROBLEM_MEDIA: {"schema": ref("Problem")}}}
    o["responses"] = responses
    o["x-problem-codes"] = {str(k): v for k, v in sorted(codes.items())}
    o.update(ext)
    return o


def path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def query(name: str, description: str, schema: Schema, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


ROUND_ID = path_param("round_id", "The round.")
OFFER_ID = path_param("offer_id", "The bank's own offer.")
APPLICATION_ID = path_param("application_id", "The caller's own application.")


STREAM_DESCRIPTION = f"""\
Returns a single-use ticket (valid {_DEFAULTS.ticket_ttl_s} s) for the live stream.

**Live stream (WebSocket) `GET /v1/stream?ticket=<ticket>`.** Connect with the subprotocol
`ige.v1.json` (text frames, JSON) or `ige.v1.msgpack` (binary frames, MessagePack; the same
objects). A missing or used ticket, no supported subprotocol or a foreign browser `Origin`
closes the socket with 1008. The ticket carries the identity of the token that asked for it.

Client → server (schema `StreamClientMessage`):
`{{"op": "subscribe", "topic": "round:<id>" | "pool" | "application:<id>", "since_seq": n?}}`,
`{{"op": "unsubscribe", "topic": ...}}`, `{{"op": "ping"}}`.
Topics: `round:<id>` for banks (after their first offer in the round) and the operator;
`pool` (new rounds) for banks and the operator; `application:<id>` for the exporter who owns it.

Server → client (schema `StreamServerMessage`): every message has `type` and `topic`; for
round topics `seq` rises by exactly 1 per event of the round.
`snapshot` (the BOOK: on subscribe and whenever `since_seq` is too old, more than
{MAX_CATCH_UP} events behind); `quote` (one offer added or revised, masked as in BOOK, as
`offer` with the new `ranks` [{{ref, rank}}]); `round_opened` (pool, with the `round`);
`round_closed` (round topics with `seq` and `closed_at`; application topics with the
exporter's `results`); `heartbeat` (`server_time`, every {_DEFAULTS.heartbeat_s:g} s);
`pong` (answer to ping, `server_time`); `error` with `code` `offer_required` (a bank subscribed
before bidding: it gets the snapshot automatically once it bids), `not_found`,
`validation_failed` or `bad_command`; the connection stays open after an error.

A client that falls behind (its queue of {_DEFAULTS.queue_size} frames is full) is closed
with code {SLOW_CLIENT_CLOSE}, never allowed to slow others down: reconnect with a new ticket
and resubscribe with `since_seq` set to the last seq received."""

X_WEBSOCKET: dict[str, Any] = {
    "path": "/v1/stream",
    "query": {"ticket": "The single-use ticket from POST /v1/stream/tickets."},
    "subprotocols": {
        SUBPROTOCOLS[0]: "JSON objects in text frames",
        SUBPROTOCOLS[1]: "the same objects as MessagePack in binary frames",
    },
    "topics": {
        "round:<id>": "a round's book events (banks that bid in it, operator)",
        "pool": "new rounds (banks, operator)",
        "application:<id>": "the exporter's own application: round_closed with results",
    },
    "client_messages": {
        "subscribe": {"fields": {"topic": "round:<id> | pool | application:<id>",
                                 "since_seq": "optional integer (round topics)"},
                      "schema": ref("StreamSubscribe")},
        "unsubscribe": {"fields": {"topic": "a subscribed topic"},
                        "schema": ref("StreamUnsubscribe")},
        "ping": {"fields": {}, "schema": ref("StreamPing")},
    },
    "server_messages": {
        "snapshot": {"fields": "type, topic, round_id, seq, server_time, closes_at, state, "
                               "my_label, offers[BOOK_ENTRY]",
                     "schema": ref("StreamSnapshot")},
        "quote": {"fields": "type, topic, seq, offer (BOOK_ENTRY), ranks [{ref, rank}]",
                  "schema": ref("StreamQuote")},
        "round_opened": {"fields": "type, topic (pool), round (ROUND)",
                         "schema": ref("StreamRoundOpened")},
        "round_closed": {"fields": "type, topic, seq and closed_at (round topics) or results "
                                   "(application topics)",
                         "schema": ref("StreamRoundClosed")},
        "heartbeat": {"fields": "type, topic (null), server_time",
                      "schema": ref("StreamHeartbeat")},
        "pong": {"fields": "type, topic (null), server_time", "schema": ref("StreamPong")},
        "error": {"fields": "type, topic, code, detail", "schema": ref("StreamError")},
    },
    "error_codes": {
        "offer_required": "subscribed to a round before this bank's first offer in it; the "
                          "snapshot follows the first offer",
        "not_found": "no such topic for this caller",
        "validation_failed": "since_seq is not an integer",
        "bad_command": "not a subscribe/unsubscribe/ping message",
    },
    "close_codes": {
        "1008": "handshake refused: missing or used ticket, no supported subprotocol, or a "
                "browser Origin that is not allowed",
        str(SLOW_CLIENT_CLOSE): "slow consumer: reconnect and resubscribe with since_seq",
    },
    "heartbeat_seconds": _DEFAULTS.heartbeat_s,
    "ticket_ttl_seconds": _DEFAULTS.ticket_ttl_s,
    "max_catch_up_events": MAX_CATCH_UP,
    "queue_frames": _DEFAULTS.queue_size,
}


def _paths() -> dict[str, Any]:
    p: dict[str, dict[str, Any]] = {}
    p["/healthz"] = {"get": op(
        "healthz", "public", "Liveness", "The process is up.", "public",
        ok=(200, "Alive.", obj({"status": {"const": "ok"}}, ["status"])))}
    readiness = obj({
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": obj({"redis": string("ok or error: <kind>"),
                       "database": string("ok or error: <kind>")}, ["redis", "database"]),
    }, ["status", "checks"])
    p["/readyz"] = {"get": op(
        "readyz", "public", "Readiness", "Redis and the database are reachable.", "public",
        ok=(200, "Ready.", readiness),
        extra_responses={"503": {"description": "Not ready: the same body with status "
                                                "unavailable (not a problem document).",
                                 "content": _json(readiness)}})}
    p["/v1/openapi.json"] = {"get": op(
        "openapi", "public", "This OpenAPI document", "The machine-readable contract.",
        "public", ok=(200, "OpenAPI 3.1 document.", {"type": "object"}))}
    p["/docs"] = {"get": op(
        "docs", "public", "Human documentation", "This document rendered as HTML.", "public",
        ok=(200, "HTML page.", None),
        ok_content={"text/html": {"schema": {"type": "string"}}})}
    p["/v1/calendar/deadline"] = {"get": op(
        "calendarDeadline", "public", "Business-day deadline",
        "The deadline `business_days` Turkish business days strictly after the day of "
        "`start`, at the round close time, by the same rules as the rounds.", "public",
        params=[query("start", "A timestamp with an offset.",
                      {"type": "string", "format": "date-time"}, True),
                query("business_days", "Business days to add.",
                      {"type": "integer", "minimum": 0, "maximum": 366, "default": 7})],
        ok=(200, "The deadline.", obj({
            "start": ref("Timestamp"), "business_days": {"type": "integer"},
            "deadline": ref("Timestamp")}, ["start", "business_days", "deadline"])),
        problems={422: ["validation_failed"]})}
    p["/v1/calendar/holidays"] = {"get": op(
        "calendarHolidays", "public", "Turkish public holidays",
        "The holidays of a year as the business-day rules see them.", "public",
        params=[query("year", "2000..2100; the current year by default.",
                      {"type": "integer", "minimum": 2000, "maximum": 2100})],
        ok=(200, "The holidays.", obj({
            "year": {"type": "integer"},
            "half_days_off": boolean("Half-day eves (arife) count as holidays."),
            "holidays": arr(obj({"date": {"type": "string", "format": "date"},
                                 "name": {"type": "string"}}, ["date", "name"])),
        }, ["year", "half_days_off", "holidays"])),
        problems={422: ["validation_failed"]})}

    # -- banks
    p["/v1/oauth/token"] = {"post": op(
        "oauthToken", "bank", "Bank access token",
        "OAuth2 client credentials (form-encoded). Use the `access_token` as "
        "`Authorization: Bearer <token>` on `/v1/bank/...` until it expires.", "public",
        body=obj({
            "grant_type": {"type": "string", "const": "client_credentials"},
            "client_id": string("From the operator."),
            "client_secret": string("From the operator."),
        }, ["grant_type", "client_id", "client_secret"]), form=True,
        ok=(200, "A bank token.", ref("TOKEN")),
        problems={400: ["unsupported_grant_type", "validation_failed"],
                  401: ["invalid_client"]})}
    p["/v1/bank/rounds"] = {"get": op(
        "bankRounds", "bank", "The pool of rounds",
        "Open rounds (the pool), or with another `state` the finished rounds this bank "
        "bid in, soonest deadline first.", "bank",
        params=[query("state", "Which rounds.", {**ref("RoundState"), "default": "open"}),
                query("limit", "Page size.",
                      {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                query("cursor", "`next_cursor` of the previous page.", {"type": "string"})],
        ok=(200, "A page of rounds.", ref("ROUND_LIST")),
        problems={422: ["validation_failed"]})}
    p["/v1/bank/rounds/{round_id}"] = {"get": op(
        "bankRound", "bank", "One round",
        "An open round, or a finished one this bank bid in, with this bank's own offers.",
        "bank", params=[ROUND_ID], ok=(200, "The round.", ref("ROUND_DETAIL")))}
    p["/v1/bank/rounds/{round_id}/offers"] = {"post": op(
        "postOffer", "bank", "Send an offer",
        "A new offer in an open round; a bank may hold several offers in a round. Ranked by "
        "apr, then annual_rate, then earlier seq.", "bank",
        params=[ROUND_ID], body=ref("OFFER_TERMS"), idempotent=True,
        ok=(201, "The offer as accepted, with its current rank.", ref("OFFER")),
        problems={409: ["round_closed"]})}
    p["/v1/bank/rounds/{round_id}/offers/{offer_id}"] = {"put": op(
        "putOffer", "bank", "Revise an offer",
        "Replaces the terms of one of this bank's offers: `version` + 1. Offers are revised, "
        "never deleted; every version is kept. Another bank's offer is 404.", "bank",
        params=[ROUND_ID, OFFER_ID], body=ref("OFFER_TERMS"), idempotent=True,
        ok=(200, "The new version.", ref("OFFER")),
        problems={409: ["round_closed"]})}
    p["/v1/bank/rounds/{round_id}/book"] = {"get": op(
        "bankBook", "bank", "The masked book",
        "Every offer of the round, masked: other banks appear only under a random label.",
        "bank", params=[ROUND_ID], ok=(200, "The book.", ref("BOOK")),
        problems={403: ["offer_required"]})}
    p["/v1/bank/rounds/{round_id}/result"] = {"get": op(
        "bankResult", "bank", "This bank's result",
        "After the close: the reference number, the binding period and this bank's offers "
        "with their final ranks and whether the exporter chose one.", "bank",
        params=[ROUND_ID], ok=(200, "The result.", ref("RESULT")),
        problems={409: ["round_open"]})}

    # -- exporters
    p["/v1/exporter/register"] = {"post": op(
        "exporterRegister", "exporter", "Register an exporter",
        "Creates an inactive account and returns an otpauth URI for an authenticator app; "
        "activate it with a first code.", "public",
        body=obj({
            "full_name": string("Full name.", maxLength=200),
            "national_id": string("Turkish national id (TCKN, 11 digits).",
                                  pattern=r"^[0-9]{11}$"),
            "email": string("E-mail address.", format="email", maxLength=254),
            "mobile": string("Turkish mobile number (+905XXXXXXXXX).",
                             examples=["+905321234567"]),
            "password": string("10..200 characters.", minLength=10, maxLength=200),
        }, ["full_name", "national_id", "email", "mobile", "password"]),
        idempotent=True,
        ok=(201, "The account.", obj({
            "user_id": ref("Id"),
            "totp_uri": string("otpauth:// URI for an authenticator app (RFC 6238)."),
        }, ["user_id", "totp_uri"])),
        problems={409: ["conflict"]})}
    p["/v1/exporter/activate"] = {"post": op(
        "exporterActivate", "exporter", "Activate an account",
        "Proves the authenticator app works with a first one-time code.", "public",
        body=obj({"email": string("E-mail address."),
                  "code": string("6-digit one-time code.", pattern=r"^[0-9]{6}$")},
                 ["email", "code"]),
        ok=(200, "Activated.", obj({"user_id": ref("Id"), "active": {"const": True}},
                                   ["user_id", "active"])),
        problems={401: ["totp_invalid"], 423: ["locked"]})}
    p["/v1/exporter/login"] = {"post": op(
        "exporterLogin", "exporter", "Exporter login",
        "E-mail, password and a one-time code; a code is never accepted twice. Five failures "
        "lock the account.", "public",
        body=obj({"email": string("E-mail address."), "password": string("Password."),
                  "code": string("6-digit one-time code.", pattern=r"^[0-9]{6}$")},
                 ["email", "password", "code"]),
        ok=(200, "An exporter token.", ref("EXPORTER_TOKEN")),
        problems={401: ["unauthorized"], 403: ["not_activated"], 423: ["locked"]})}
    p["/v1/exporter/applications/{application_id}"] = {"get": op(
        "exporterApplication", "exporter", "One application",
        "The application with its round's state; no offer data while the round is open.",
        "exporter", params=[APPLICATION_ID], ok=(200, "The application.", ref("APPLICATION")))}
    p["/v1/exporter/applications/{application_id}/results"] = {"get": op(
        "exporterResults", "exporter", "The offers after close",
        "Every binding offer with the bank's code and name (shown only here, after the "
        "close), best first.", "exporter", params=[APPLICATION_ID],
        ok=(200, "The results.", ref("EXPORTER_RESULTS")),
        problems={409: ["round_open"]})}
    p["/v1/exporter/applications/{application_id}/accept"] = {"post": op(
        "exporterAccept", "exporter", "Accept an offer",
        "Accepts one binding offer inside the binding window; one acceptance per round.",
        "exporter", params=[APPLICATION_ID],
        body=obj({"offer_id": d(ref("Id"), "An offer from the results.", maxLength=60)},
                 ["offer_id"]),
        idempotent=True,
        ok=(200, "The results with accepted_offer_id set.", ref("EXPORTER_RESULTS")),
        problems={409: ["binding_expired", "already_accepted", "round_open", "conflict"]})}

    p["/v1/exporter/guarantee-package"] = {"get": op(
        "exporterGuaranteePackage", "exporter", "The guarantee package in force",
        "The versioned rules applications are decided under: group limits (TL), guarantee "
        "rate caps, tenor and grace caps per loan type, the conversion rates for "
        "foreign-currency requests, the re-application rule, the scorecard's weights, bands "
        "and pass mark, and the consent text (muvafakatname) with its version.", "exporter",
        ok=(200, "The package and the consent text.", obj({
            "package": {"type": "object"},
            "consent": obj({"text_version": {"type": "string"}, "text": {"type": "string"}},
                           ["text_version", "text"]),
        }, ["package", "consent"])))}
    p["/v1/exporter/companies"] = {
        "post": op(
            "exporterMatchCompany", "exporter", "Match a company and give consent",
            "Checks the trade registry (MERSİS): the company exists, is active and the caller "
            "(by national id) is an authorised signatory; then records the consent "
            "(muvafakatname) with its text version and time (once per text version: matching "
            "again while that consent is active records nothing new).", "exporter",
            body=obj({
                "tax_id": string("VKN (10 digits) or TCKN (11 digits)."),
                "consent": obj({
                    "text_version": string("The version of GET "
                                           "/v1/exporter/guarantee-package's consent text."),
                    "accepted": {"const": True},
                }, ["text_version", "accepted"]),
            }, ["tax_id", "consent"]),
            idempotent=True,
            ok=(201, "The company.", ref("COMPANY")),
            problems={403: ["not_signatory"], 422: ["company_not_found", "company_inactive"]}),
        "get": op(
            "exporterCompanies", "exporter", "My companies",
            "The companies the caller is matched to, with their consent state.", "exporter",
            ok=(200, "The companies.", obj({"companies": arr(ref("COMPANY"))},
                                           ["companies"]))),
    }
    p["/v1/exporter/companies/{company_id}/consent"] = {"delete": op(
        "exporterWithdrawConsent", "exporter", "Withdraw the consent",
        "Withdraws the company's consent (any authorised signatory may): new applications are "
        "refused (409 `consent_withdrawn`) and the company's data is hidden in the pool: its "
        "open rounds show no name, tax id, contact or assessment from now on. Give the "
        "consent again with POST /v1/exporter/companies.", "exporter",
        params=[path_param("company_id", "A company the caller is matched to.")],
        ok=(200, "The company with the withdrawn consent.", ref("COMPANY")))}
    p["/v1/exporter/applications"] = {
        "post": op(
            "exporterApply", "exporter", "Apply for a guaranteed loan",
            "Checks the form against the guarantee package (422 with stable codes such as "
            "`tenor_below_minimum`, `grace_above_maximum`, `guarantee_above_loan`), gathers "
            "the trade registry, financial statements, risk centre and export performance of "
            "the company and its risk group, applies the intake and hard rules and the "
            "scorecard, and stores the decision with every input and reason. Approved: the "
            "offer round opens and is announced on the `pool` topic. Rejected: the process "
            "ends with the reasons. Both are 201. Refused without a decision: 409 "
            "`consent_withdrawn`; 409 `reapplication_blocked` (rejected twice within 3 months; "
            "the problem carries `not_before`); 409 `conflict` (another application of the "
            "same risk group is being assessed).", "exporter",
            body=ref("APPLICATION_FORM"), idempotent=True,
            ok=(201, "The decided application.", ref("APPLICATION")),
            problems={403: ["not_signatory"], 409: ["consent_withdrawn",
                                                    "reapplication_blocked", "conflict"],
                      422: ["company_not_found"]}),
        "get": op(
            "exporterApplications", "exporter", "My applications",
            "The caller's applications decided in the portal, newest first (at most 100).",
            "exporter",
            ok=(200, "The applications.", obj({"applications": arr(ref("APPLICATION"))},
                                              ["applications"]))),
    }

    # -- stream
    p["/v1/stream/tickets"] = {"post": op(
        "streamTicket", "stream", "Live stream ticket", STREAM_DESCRIPTION, "any",
        ok=(201, "A ticket.", obj({
            "ticket": string("Single use; pass as `?ticket=` to /v1/stream."),
            "expires_in": integer("Seconds.", 1)}, ["ticket", "expires_in"])),
        **{"x-websocket": X_WEBSOCKET})}

    # -- operator
    p["/v1/admin/banks"] = {
        "post": op(
            "adminCreateBank", "operator", "Register a bank",
            "Creates a bank and its OAuth2 client credentials (also `ige` CLI).", "operator",
            body=obj({
                "bank_code": string("2..20 characters A-Z, 0-9, _.",
                                    pattern=r"^[A-Z0-9_]{2,20}$"),
                "name": string("Bank name.", maxLength=200),
            }, ["bank_code", "name"]),
            idempotent=True,
            ok=(201, "The credentials (the secret is shown once).", ref("BANK_CREDENTIALS")),
            problems={409: ["conflict"]}),
        "get": op(
            "adminBanks", "operator", "List banks", "Every bank.", "operator",
            ok=(200, "The banks.", obj({"banks": arr(ref("BANK"))}, ["banks"]))),
    }
    p["/v1/admin/rounds"] = {"post": op(
        "adminCreateRound", "operator", "Open a round (manual intake)",
        "An application approved outside the portal or after a manual review; the round "
        "runs exactly like one opened by scoring.", "operator",
        body=obj({
            "company": obj({
                "name": string("Trade name.", maxLength=200),
                "tax_id": string("VKN (10 digits) or TCKN (11 digits)."),
                "is_sme": {"type": "boolean"},
                "sector": string("Sector.", maxLength=100),
                "contact": ref("Contact"),
            }, ["name", "tax_id", "is_sme"]),
            "loan_type": ref("LoanType"),
            "currency": ref("Currency"),
            "loan_amount": ref("MoneyInput"),
            "guarantee_amount": d(ref("MoneyInput"), "At most loan_amount."),
            "tenor_months": integer("Within the loan type's limits.", MIN_TENOR, MAX_TENOR),
            "grace_months": integer("Shorter than the tenor.", 0, MAX_GRACE, default=0),
            "export_commitment": {"type": "boolean", "default": False},
            "exporter_user_id": string("The exporter who may follow and accept the round; "
                                       "an application id is created for it.", maxLength=40),
            "assessment": {"type": "object", "description": "Optional scoring to show banks."},
        }, ["company", "loan_type", "currency", "loan_amount", "guarantee_amount",
            "tenor_months"]),
        idempotent=True,
        ok=(201, "The round, open.", ref("ADMIN_ROUND")),
        problems={409: ["conflict"]})}
    p["/v1/admin/rounds/{round_id}"] = {"get": op(
        "adminRound", "operator", "One round", "Any round, with its persistence state.",
        "operator", params=[ROUND_ID], ok=(200, "The round.", ref("ADMIN_ROUND")))}
    p["/v1/admin/applications/{application_id}"] = {"get": op(
        "adminApplication", "operator", "One application, explained",
        "The application with every input the decision read (registry records of the "
        "company and its risk group, financial statements, risk-centre reports, export "
        "performance, the exposures counted towards the group limit) and every number of "
        "the guarantee package it was decided under.", "operator",
        params=[path_param("application_id", "Any application.")],
        ok=(200, "The application.", {"allOf": [ref("APPLICATION"), obj({
            "user_id": ref("Id"), "inputs": {"type": "object"},
            "package": {"type": "object"}}, ["user_id", "inputs", "package"])]}))}
    p["/v1/admin/audit"] = {"get": op(
        "adminAudit", "operator", "Audit trail",
        "The append-only audit trail, oldest first, 1000 entries a page.", "operator",
        params=[query("round_id", "Only this round.", {"type": "string"}),
                query("after_id", "Entries after this id.",
                      {"type": "integer", "minimum": 0, "default": 0})],
        ok=(200, "A page of entries.", obj({
            "entries": arr(ref("AUDIT_ENTRY")),
            "next_after_id": {"type": ["integer", "null"],
                              "description": "Pass as after_id for the next page."},
        }, ["entries", "next_after_id"])),
        problems={422: ["validation_failed"]})}
    return p


INTRO = """\
Real-time bidding for guaranteed export loans: banks bid on approved applications in
time-boxed rounds, see a masked order book live, and the exporter picks a binding offer after
the close.

**Conventions.** JSON bodies in `snake_case`. Money is a decimal **string** with 2 places
(`"1500000.00"`); rates are decimal strings in percent per year (`"31.25"`); never floats on
the wire. Timestamps are ISO 8601 in UTC (`2026-03-18T14:30:00Z`); the server clock is the only
clock. Ids are opaque strings.

**Errors** are `application/problem+json` (RFC 9457) with a stable machine `code`. Malformed
input is 422 `validation_failed` listing every offending field in `errors`; an unknown or
foreign object is 404 `not_found` (never 403: another tenant's object is never confirmed).

**Idempotency.** Every creating `POST` and the offer `PUT` accept an `Idempotency-Key`
header: the same key and body from the same caller returns the first response again; the same
key with another body is 422 `idempotency_mismatch`.

**Auth.** `Authorization: Bearer <token>` on everything but registration, activation, login,
token, health and public calendar calls. Banks get a token by OAuth2 client credentials at
`POST /v1/oauth/token`; exporters at `POST /v1/exporter/login`; the operator uses the
`IGE_ADMIN_TOKEN` secret. A token of the wrong kind gets 404.

**Time rules.** A round opens when an application is approved and closes at
`IGE_ROUND_CLOSE_TIME` (default 17:30 Europe/Istanbul) on the 7th Turkish business day
strictly after the day it opened; half-day eves (arife) count as business days unless
`IGE_HALF_DAYS_OFF=1`. Offers stay binding until the same time on the 2nd business day after
the close. `IGE_ROUND_DURATION` / `IGE_BINDING_DURATION` (ISO 8601 durations such as `PT20S`)
replace the business-day rules when set.

**Ranking and masking.** Offers rank by `apr` (all-in annual cost), then `annual_rate`, then
earlier `seq`; rank 1 is best. A bank sees other banks only under a masked label drawn at
random per round; no other bank identity, id or count leaks into a bank's view.

**Live stream.** See `POST /v1/stream/tickets` (WebSocket `/v1/stream`)."""


def _problem_index(paths: dict[str, Any]) -> dict[str, Any]:
    statuses: dict[str, set[int]] = {c: set() for c in TITLES}
    statuses.setdefault("unsupported_grant_type", set())
    for item in paths.values():
        for o in item.values():
            for st, codes in o["x-problem-codes"].items():
                for c in codes:
                    statuses.setdefault(c, set()).add(int(st))
    statuses["method_not_allowed"].add(405)
    statuses["internal_error"].add(500)
    statuses["unsupported_media_type"].add(415)
    statuses["forbidden"].add(403)
    return {c: {"title": TITLES.get(c, c.replace("_", " ")), "status": sorted(s)}
            for c, s in statuses.items()}


@functools.lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    paths = _paths()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "IGE Kefalet Portalı bidding API",
            "version": "1",
            "summary": "Real-time bidding for guaranteed export loans.",
            "description": INTRO,
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "public", "description": "Health, calendar and this documentation."},
            {"name": "bank", "description": "Banks: the pool, offers, the masked book, results."},
            {"name": "exporter", "description": "Exporters: account, applications, results, "
                                                "acceptance."},
            {"name": "stream", "description": "The live stream (WebSocket)."},
            {"name": "operator", "description": "The guarantee institution's operator."},
        ],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "parameters": {"IdempotencyKey": {
                "name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Makes the request safe to retry: the same key and body from "
                               "the same caller returns the first response again; the same "
                               "key with another body is 422 idempotency_mismatch. Keys are "
                               "kept 24 h.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}},
            "securitySchemes": {
                "bankToken": {
                    "type": "oauth2",
                    "description": "Banks: OAuth2 client credentials. POST form "
                                   "grant_type=client_credentials, client_id, client_secret to "
                                   "/v1/oauth/token and send the access_token as "
                                   "`Authorization: Bearer <token>` (valid "
                                   f"{_DEFAULTS.token_ttl_s} s by default). Needed on "
                                   "/v1/bank/... .",
                    "flows": {"clientCredentials": {"tokenUrl": "/v1/oauth/token",
                                                    "scopes": {}}}},
                "exporterToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "Exporters: the access_token from POST /v1/exporter/login "
                                   "(e-mail, password, one-time code). Needed on "
                                   "/v1/exporter/companies... and "
                                   "/v1/exporter/applications... ."},
                "operatorToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "Operator: the IGE_ADMIN_TOKEN secret as a bearer token. "
                                   "Needed on /v1/admin/... ."},
            },
        },
        "x-problem-codes": _problem_index(paths),
    }


# ----------------------------------------------------------------------------- HTML
CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:70rem;
margin:0 auto;padding:1rem 1.5rem 4rem;color:#1b1f24;background:#fff}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin:0;font-size:1.05rem}code,.path{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:.9em}code{background:#f3f4f6;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}section.op{border:1px solid #d0d7de;border-radius:6px;
padding:.75rem 1rem;margin:1rem 0}.m{display:inline-block;min-width:3.5rem;font-weight:700;
color:#fff;border-radius:4px;padding:0 .4rem;margin-right:.5rem;text-align:center}
.get{background:#1f6feb}.post{background:#1a7f37}.put{background:#9a6700}
.delete{background:#cf222e}.auth{color:#57606a}nav ul{columns:2}dd{margin-bottom:.5rem}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


_CODE_RE = re.compile(r"`([^`]+)`")
_BOLD_RE = re.compile(r"\*\*([^*]+)\*\*")


def _md(text: str) -> str:
    """Escaped text with `code`, **bold** and blank-line paragraphs."""
    out = []
    for para in text.split("\n\n"):
        t = _e(para.strip())
        t = _CODE_RE.sub(r"<code>\1</code>", t)
        t = _BOLD_RE.sub(r"<strong>\1</strong>", t)
        out.append(f"<p>{t}</p>")
    return "\n".join(out)


def _resolve(doc: dict[str, Any], schema: Schema) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 20:
        name = schema["$ref"].rsplit("/", 1)[-1]
        base = doc["components"]["schemas"][name]
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**base, **extra}
        seen += 1
    return schema


def _type_text(doc: dict[str, Any], schema: Schema) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        base = doc["components"]["schemas"][name]
        if base.get("type") == "object" or "allOf" in base or "oneOf" in base:
            return name
        return f"{name} ({_type_text(doc, base)})"
    if "const" in schema:
        return f"const {schema['const']!r}"
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type_text(doc, s) for s in schema["anyOf"])
    t = schema.get("type", "any")
    if isinstance(t, list):
        t = " | ".join(t)
    if t == "array":
        return "array of " + _type_text(doc, schema.get("items", {}))
    bits = [str(t)]
    if "format" in schema:
        bits.append(schema["format"])
    if "pattern" in schema:
        bits.append(f"pattern {schema['pattern']}")
    return ", ".join(bits)


def _fields(doc: dict[str, Any], schema: Schema) -> tuple[dict[str, Schema], set[str]]:
    s = _resolve(doc, schema)
    props: dict[str, Schema] = {}
    req: set[str] = set()
    for part in s.get("allOf", []):
        p, r = _fields(doc, part)
        props.update(p)
        req |= r
    props.update(s.get("properties", {}))
    req |= set(s.get("required", []))
    return props, req


def _describe(doc: dict[str, Any], schema: Schema) -> str:
    desc = schema.get("description")
    if desc is None and "$ref" in schema:
        desc = _resolve(doc, schema).get("description", "")
    extra = []
    if "default" in schema:
        extra.append(f"default {json.dumps(schema['default'], ensure_ascii=False)}")
    if "minimum" in schema or "maximum" in schema:
        extra.append(f"range {schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if "maxLength" in schema:
        extra.append(f"max {schema['maxLength']} chars")
    return (desc or "") + (f" ({'; '.join(extra)})" if extra else "")


def _field_table(doc: dict[str, Any], schema: Schema) -> str:
    props, req = _fields(doc, schema)
    if not props:
        return f"<p>{_e(_type_text(doc, schema))}</p>"
    rows = "".join(
        f"<tr><td><code>{_e(n)}</code></td><td>{_e(_type_text(doc, s))}</td>"
        f"<td>{'yes' if n in req else 'no'}</td><td>{_md_inline(_describe(doc, s))}</td></tr>"
        for n, s in props.items())
    return ("<table><thead><tr><th>Field</th><th>Type</th><th>Required</th>"
            f"<th>Description</th></tr></thead><tbody>{rows}</tbody></table>")


def _md_inline(text: str) -> str:
    t = _CODE_RE.sub(r"<code>\1</code>", _e(text))
    return _BOLD_RE.sub(r"<strong>\1</strong>", t)


def _anchor(method: str, path: str) -> str:
    return "op-" + method + "-" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")


def _operation_html(doc: dict[str, Any], path: str, method: str, o: dict[str, Any]) -> str:
    parts = [f'<section class="op" id="{_e(_anchor(method, path))}">',
             f'<h3><span class="m {_e(method)}">{_e(method.upper())}</span>'
             f'<span class="path">{_e(path)}</span></h3>',
             f"<p><strong>{_e(o.get('summary', ''))}</strong></p>"]
    desc, sep, auth_note = o.get("description", "").rpartition("\n\n**Auth:**")
    if not sep:
        desc, auth_note = auth_note, " " + AUTH_TEXT[o.get("x-auth", "public")] + "."
    parts.append(f'<p class="auth"><strong>Auth:</strong>{_md_inline(auth_note)}</p>')
    parts.append(_md(desc))
    params = [doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p
              for p in o.get("parameters", [])]
    if params:
        rows = "".join(
            f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
            f"<td>{_e(_type_text(doc, p.get('schema', {})))}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td>"
            f"<td>{_md_inline(_describe(doc, {**p.get('schema', {}), 'description': p.get('description', '')}))}</td></tr>"
            for p in params)
        parts.append("<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th>"
                     f"<th>Required</th><th>Description</th></tr></thead><tbody>{rows}</tbody></table>")
    rb = o.get("requestBody")
    if rb:
        for media, m in rb["content"].items():
            parts.append(f"<h4>Request body <code>{_e(media)}</code></h4>")
            parts.append(_field_table(doc, m["schema"]))
    rows = []
    for status, r in o["responses"].items():
        content = r.get("content", {})
        bodies = []
        for media, m in content.items():
            sch = m.get("schema", {})
            name = sch["$ref"].rsplit("/", 1)[-1] if "$ref" in sch else _type_text(doc, sch)
            bodies.append(f"<code>{_e(media)}</code> {_e(name)}")
        rows.append(f"<tr><td>{_e(status)}</td><td>{_md_inline(r.get('description', ''))}</td>"
                    f"<td>{'<br>'.join(bodies)}</td></tr>")
    parts.append("<h4>Responses</h4><table><thead><tr><th>Status</th><th>Meaning</th>"
                 f"<th>Body</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    ok = next((r for s, r in o["responses"].items() if s.startswith("2")), None)
    if ok:
        sch = ok.get("content", {}).get(JSON_MEDIA, {}).get("schema")
        if sch and _fields(doc, sch)[0]:
            parts.append("<details><summary>Success body fields</summary>"
                         f"{_field_table(doc, sch)}</details>")
    ws = o.get("x-websocket")
    if ws:
        parts.append(_websocket_html(doc, ws))
    parts.append("</section>")
    return "\n".join(parts)


def _websocket_html(doc: dict[str, Any], ws: dict[str, Any]) -> str:
    def dl(items: dict[str, Any]) -> str:
        return "<dl>" + "".join(f"<dt><code>{_e(k)}</code></dt><dd>{_e(v)}</dd>"
                                for k, v in items.items()) + "</dl>"

    out = [f"<h4>WebSocket <code>{_e(ws['path'])}?ticket=…</code></h4>",
           "<h5>Subprotocols</h5>", dl(ws["subprotocols"]),
           "<h5>Topics</h5>", dl(ws["topics"]),
           "<h5>Client → server</h5>",
           dl({k: ", ".join(f"{f}: {t}" for f, t in v["fields"].items()) or "(no fields)"
               for k, v in ws["client_messages"].items()}),
           "<h5>Server → client</h5>",
           dl({k: v["fields"] for k, v in ws["server_messages"].items()}),
           "<h5>Error codes</h5>", dl(ws["error_codes"]),
           "<h5>Close codes</h5>", dl(ws["close_codes"])]
    return "\n".join(out)


@functools.lru_cache(maxsize=1)
def docs_html() -> str:
    doc = spec()
    info = doc["info"]
    ops = [(path, method, o) for path, item in doc["paths"].items() for method, o in item.items()]
    nav = "".join(f'<li><a href="#{_e(_anchor(m, p))}"><code>{_e(m.upper())} {_e(p)}</code></a>'
                  f" {_e(o.get('summary', ''))}</li>" for p, m, o in ops)
    schemes = "".join(f"<tr><td><code>{_e(n)}</code></td><td>{_e(s['type'])}"
                      f"{(' ' + _e(s['scheme'])) if 'scheme' in s else ''}</td>"
                      f"<td>{_md_inline(s.get('description', ''))}</td></tr>"
                      for n, s in doc["components"]["securitySchemes"].items())
    problems = "".join(f"<tr><td><code>{_e(c)}</code></td>"
                       f"<td>{_e(', '.join(str(x) for x in v['status']) or '—')}</td>"
                       f"<td>{_e(v['title'])}</td></tr>"
                       for c, v in sorted(doc["x-problem-codes"].items()))
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(info['title'])}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(info['title'])}</h1><p>Version {_e(info['version'])} · OpenAPI "
        f'{_e(doc["openapi"])}: <a href="/v1/openapi.json"><code>/v1/openapi.json</code></a></p>'
        "</header><main>",
        '<section id="intro"><h2>Overview</h2>', _md(info["description"]), "</section>",
        '<section id="auth"><h2>Authentication</h2><table><thead><tr><th>Scheme</th>'
        f"<th>Type</th><th>How</th></tr></thead><tbody>{schemes}</tbody></table></section>",
        '<section id="problems"><h2>Problem codes</h2><p>Errors are '
        "<code>application/problem+json</code> with fields <code>type</code>, "
        "<code>title</code>, <code>status</code>, <code>code</code>, <code>detail</code>, "
        "<code>instance</code> and, for 422, <code>errors</code> "
        "[{field, code, message}]. Branch on <code>code</code>.</p>"
        "<table><thead><tr><th>Code</th><th>Status</th><th>Title</th></tr></thead>"
        f"<tbody>{problems}</tbody></table></section>",
        '<section id="stream"><h2>Live stream</h2>',
        _md(STREAM_DESCRIPTION), "</section>",
        f'<nav><h2>Endpoints</h2><ul>{nav}</ul></nav>',
        '<section id="endpoints"><h2>Reference</h2>',
        *(_operation_html(doc, p, m, o) for p, m, o in ops),
        "</section></main></body></html>",
    ]
    return "\n".join(body)
