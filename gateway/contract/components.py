"""The document's components: JSON Schemas derived from the request models (``requests.py``)
and the response declarations (``responses.py``), under the component names of the first
hand-written document (``COMPONENTS``), so that clients generated from it keep their type
names; plus the wire scalars (Money, Rate, Timestamp ...) and the stream's message unions."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

from auction.feed import catch_up_limit
from auction.model import CURRENCIES, LOAN_TYPES
from gateway.contract import fields as F
from gateway.contract import limits as L
from gateway.contract import requests as rq
from gateway.contract import responses as rs
from gateway.contract.reading import RequestModel, wire_fields
from gateway.contract.schema import Doc, Schema, arr, obj, ref
from gateway.problems import TITLES, TYPE_BASE
from gateway.settings import Settings

__all__ = ["COMPONENTS", "EXTRA_CODES", "components", "model_schema", "schema_of"]

_DEFAULTS = Settings()
#: problem codes outside gateway.problems.TITLES that the gateway sends (bad_request: a form
#: Starlette cannot parse, e.g. a broken multipart body, answered by the HTTPException handler)
EXTRA_CODES = ("unsupported_grant_type", "bad_request")

#: component name -> declaration (a TypedDict or a request model)
COMPONENTS: dict[str, type] = {
    "Problem": rs.Problem, "FieldError": rs.FieldErrorOut,
    "Contact": rs.Contact, "Company": rs.Company, "Assessment": rs.Assessment,
    "ROUND": rs.Round, "ROUND_DETAIL": rs.RoundDetail, "ROUND_LIST": rs.RoundList,
    "ADMIN_ROUND": rs.AdminRound, "OFFER_TERMS": rq.OfferTermsBody, "OFFER": rs.Offer,
    "BOOK_ENTRY": rs.BookEntry, "BOOK": rs.Book, "RESULT_OFFER": rs.ResultOffer,
    "RESULT": rs.Result, "EXPORTER_OFFER": rs.ExporterOffer,
    "EXPORTER_RESULTS": rs.ExporterResults, "APPLICATION": rs.Application,
    "APPLICATION_REQUEST": rs.ApplicationRequestOut, "RELATED_COMPANY": rq.RelatedCompanyIn,
    "APPLICATION_FORM": rq.ApplicationForm, "COMPANY": rs.CompanyOut, "TOKEN": rs.Token,
    "EXPORTER_TOKEN": rs.ExporterToken, "BANK": rs.Bank, "BANK_CREDENTIALS": rs.BankCredentials,
    "DESK_USER": rs.DeskUser, "DESK_USER_CREATED": rs.DeskUserCreated,
    "OPERATOR_CREATED": rs.OperatorCreated,
    "AUDIT_ENTRY": rs.AuditEntry, "EXPORTER_ACCOUNT": rs.ExporterAccount,
    "StreamSubscribe": rs.StreamSubscribe, "StreamUnsubscribe": rs.StreamUnsubscribe,
    "StreamPing": rs.StreamPing, "StreamSnapshot": rs.StreamSnapshot,
    "StreamQuote": rs.StreamQuote, "StreamRoundOpened": rs.StreamRoundOpened,
    "StreamRoundClosed": rs.StreamRoundClosed, "StreamHeartbeat": rs.StreamHeartbeat,
    "StreamPong": rs.StreamPong, "StreamError": rs.StreamError,
}
NAMES = {t: n for n, t in COMPONENTS.items()}

#: what a declaration cannot say: schema keywords added to a component
COMPONENT_EXTRA: dict[str, Schema] = {"BOOK_ENTRY": rs.BOOK_ENTRY_MASKING}


def _scalars() -> dict[str, Schema]:
    """Wire formats: strings with a meaning (money, rates, timestamps) and enumerations."""
    return {
        "Money": {
            "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["1500000.00"],
            "description": "Money: a decimal string with exactly 2 places, in the round's "
                           "currency (never a JSON number)."},
        "MoneyInput": {
            "type": "string", "pattern": F.MONEY_PATTERN,
            "examples": ["1500000.00", "0.00"],
            "description": f"Money sent by a client, 0 or more: a decimal string with at most "
                           f"{L.MONEY_PLACES} places (\"1500000.00\") and at most "
                           f"{L.MONEY_MAX_INTEGER_DIGITS} digits before the point; numbers, "
                           "exponents and signs are refused."},
        "PositiveMoneyInput": {
            "type": "string", "pattern": F.POSITIVE_MONEY_PATTERN,
            "examples": ["1500000.00"],
            "description": "Money sent by a client, above 0 (`\"0.00\"` is refused): "
                           f"a decimal string with at most {L.MONEY_PLACES} places and at "
                           f"most {L.MONEY_MAX_INTEGER_DIGITS} digits before the point; "
                           "numbers, exponents and signs are refused."},
        "Rate": {
            "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2,4}$", "examples": ["31.25"],
            "description": "A rate: a decimal string, percent per year, 2 to 4 places."},
        "RateInput": {
            "type": "string", "pattern": F.RATE_PATTERN,
            "examples": ["31.25"],
            "description": f"A rate sent by a client: a decimal string, percent per year, at "
                           f"most {L.RATE_PLACES} places, above 0 and at most "
                           f"{L.ANNUAL_RATE_MAX_PCT}."},
        "Apr": {
            "type": "string", "pattern": r"^-?[0-9]+\.[0-9]{4}$", "examples": ["36.8212"],
            "description": "All-in annual cost (rate, grace, repayment schedule, upfront fee "
                           "and the guarantee commission), percent per year, 4 places. Offers "
                           "rank by apr, then annual_rate, then earlier seq; rank 1 is best."},
        "Timestamp": {
            "type": "string", "format": "date-time",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$",
            "examples": ["2026-03-18T14:30:00Z"],
            "description": "ISO 8601 timestamp in UTC (`Z`), milliseconds only when present. "
                           "The server clock is the only clock."},
        "TaxId": {
            "type": "string", "format": "tr-tax-id", "pattern": r"^[0-9]{10,11}$",
            "examples": ["1234567890"],
            "description": "A Turkish tax id: a VKN (10 digits, the last a check digit) or, "
                           "for sole proprietors, a TCKN (11 digits, the last two check "
                           "digits, not starting with 0). Format `tr-tax-id`: a number whose "
                           "check digits do not match is refused (422 `invalid`)."},
        "NationalId": {
            "type": "string", "format": "tr-national-id",
            "pattern": rf"^[1-9][0-9]{{{L.NATIONAL_ID_DIGITS - 1}}}$",
            "examples": ["10000000146"],
            "description": "A Turkish national id (TCKN): 11 digits, not starting with 0, the "
                           "last two check digits. Format `tr-national-id`: a number whose "
                           "check digits do not match is refused (422 `invalid`)."},
        "TurkishMobile": {
            "type": "string", "format": "tr-mobile", "maxLength": L.MOBILE_MAX,
            "examples": ["+905321234567", "0532 123 45 67"],
            "description": "A Turkish mobile number as libphonenumber reads it (+905XXXXXXXXX, "
                           "also with blanks or a leading 0); stored as E.164. Format "
                           "`tr-mobile`: another number is refused (422 `invalid`)."},
        "PlainText": {
            "type": "string", "pattern": F.PLAIN_TEXT_PATTERN,
            "description": "Text without control characters other than tab and line breaks."},
        "Id": {"type": "string", "minLength": 1, "pattern": f"^[{L.ID_CHARS}]+$",
               "examples": ["rnd_3f9c2a7d41b0e8c5a2d1"],
               "description": "An opaque identifier."},
        "RoundState": {
            "type": "string", "enum": list(L.ROUND_LIST_STATES),
            "description": "open: taking offers; closed: past the deadline, offers binding; "
                           "accepted: the exporter accepted an offer; lapsed: the binding "
                           "period ended without an acceptance."},
        "Currency": {"type": "string", "enum": list(CURRENCIES)},
        "LoanType": {"type": "string", "enum": list(LOAN_TYPES)},
        "StreamTopic": {
            "type": "string", "pattern": r"^(pool|round:.+|application:.+)$",
            "examples": ["round:rnd_3f9c2a7d41b0e8c5a2d1", "pool", "application:app_91a0"],
            "description": "round:<id> (banks that bid in it, operator), pool (banks, "
                           "operator), application:<id> (its exporter)."},
    }


def _doc_text(text: str) -> str:
    return (text.replace("{max_catch_up}", str(L.STREAM_MAX_CATCH_UP))
            .replace("{catch_up}", str(catch_up_limit(_DEFAULTS.queue_size)))
            .replace("{heartbeat}", f"{_DEFAULTS.heartbeat_s:g}"))


def _description(t: type) -> str:
    """A declaration's docstring; request models only document themselves as components."""
    doc = t.__doc__ or ""
    if doc.startswith(t.__name__ + "(") or (issubclass(t, RequestModel) and t not in NAMES):
        return ""
    return _doc_text(inspect.cleandoc(doc).replace("\n", " "))


def _is_typeddict(t: Any) -> bool:
    return isinstance(t, type) and typing.is_typeddict(t)


def schema_of(tp: Any) -> Schema:
    """The schema of a type hint: components by $ref, everything else inline."""
    extras: list[Doc] = []
    while get_origin(tp) in (typing.Annotated, NotRequired, Required):
        if get_origin(tp) is typing.Annotated:
            extras += [m for m in tp.__metadata__ if isinstance(m, Doc)]
            tp = tp.__origin__
        else:
            tp = get_args(tp)[0]
    base = next((d.schema for d in extras if d.schema is not None), None)
    if base is None:
        name = next((d.ref for d in extras if d.ref is not None), None)
        base = ref(name) if name else _derive(tp)
        if name and _nullable(tp):
            base = {"anyOf": [base, {"type": "null"}]}
    out = dict(base)
    for d in extras:
        if d.description:
            out["description"] = _doc_text(d.description)
        out.update(d.extra)
    return out


def _nullable(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


_PLAIN: dict[Any, Schema] = {str: {"type": "string"}, int: {"type": "integer"},
                             bool: {"type": "boolean"}, float: {"type": "number"},
                             type(None): {"type": "null"}, None: {"type": "null"}, Any: {}}


def _derive(tp: Any) -> Schema:
    if tp in _PLAIN:
        return dict(_PLAIN[tp])
    if tp in NAMES:
        return ref(NAMES[tp])
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        inner = schema_of(args[0]) if len(args) == 1 else {"anyOf": [schema_of(a) for a in args]}
        if set(inner) == {"type"} and isinstance(inner["type"], str):
            return {"type": [inner["type"], "null"]}
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is list:
        return arr(schema_of(get_args(tp)[0]))
    if origin is dict or tp is dict:
        return {"type": "object"}
    if origin is Literal:
        values = list(get_args(tp))
        return {"const": values[0]} if len(values) == 1 else {"type": "string", "enum": values}
    if _is_typeddict(tp):
        return _typeddict(tp)
    if isinstance(tp, type) and issubclass(tp, RequestModel):
        return model_schema(tp)
    raise TypeError(f"no schema for {tp!r}")


def _typeddict(t: type) -> Schema:
    hints = typing.get_type_hints(t, include_extras=True)
    required: frozenset[str] = t.__required_keys__  # type: ignore[attr-defined]
    bases = [b for b in (rs.EXTENDS.get(t),) if b is not None and b in NAMES]
    inherited: set[str] = set()
    for b in bases:
        inherited |= set(typing.get_type_hints(b))
    props = {k: schema_of(v) for k, v in hints.items() if k not in inherited}
    own = obj(props, [k for k in props if k in required] or None)
    desc = _description(t)
    if bases:
        out: Schema = {"allOf": [*(ref(NAMES[b]) for b in bases), own]}
        if desc:
            out["description"] = desc
        return out
    if desc:
        own = {"type": "object", "description": desc, **{k: v for k, v in own.items()
                                                          if k != "type"}}
    return own


#: what stays beside ``anyOf`` when an optional field becomes nullable
_OUTER = ("description", "default", "examples")


def _nullable_schema(s: Schema) -> Schema:
    """An optional field of a JSON body: ``null`` is read as the field left out."""
    inner = {k: v for k, v in s.items() if k not in _OUTER}
    out: Schema = {"anyOf": [inner, {"type": "null"}]}
    out.update({k: s[k] for k in _OUTER if k in s})
    desc = out.get("description", "")
    out["description"] = (desc + " " if desc else "") + "`null` is the same as leaving it out."
    return out


def model_schema(model: type[RequestModel]) -> Schema:
    """A request model's wire schema (what a client sends)."""
    props: dict[str, Schema] = {}
    required = []
    for f in wire_fields(model):
        if f.wire.nested:
            sub = f.info.annotation
            assert isinstance(sub, type) and issubclass(sub, RequestModel)
            s = ref(NAMES[sub]) if sub in NAMES else model_schema(sub)
        else:
            s = dict(f.wire.schema)
        if f.required or f.name in model.REQUIRED_ON_WIRE:
            required.append(f.name)
        elif model.NULL_IS_ABSENT and not f.wire.raw:
            s = _nullable_schema(s)
        props[f.name] = s
    extra = {"additionalProperties": False} if model.model_config.get("extra") == "forbid" else {}
    out = obj(props, required or None, _description(model))
    out.update(extra)
    return out


def components() -> dict[str, Schema]:
    out = _scalars()
    for name, t in COMPONENTS.items():
        s = model_schema(t) if issubclass(t, RequestModel) else _typeddict(t)
        out[name] = {**s, **COMPONENT_EXTRA.get(name, {})}
    out["Problem"]["properties"]["code"]["description"] += (
        " Known codes: " + ", ".join([*TITLES, *EXTRA_CODES]) + ".")
    out["Problem"]["properties"]["type"]["examples"] = [TYPE_BASE + "round_closed"]
    out["StreamClientMessage"] = {
        "oneOf": [ref("StreamSubscribe"), ref("StreamUnsubscribe"), ref("StreamPing")],
        "discriminator": {"propertyName": "op", "mapping": {
            "subscribe": "#/components/schemas/StreamSubscribe",
            "unsubscribe": "#/components/schemas/StreamUnsubscribe",
            "ping": "#/components/schemas/StreamPing"}},
        "description": "A message from the client."}
    messages = {"snapshot": "StreamSnapshot", "quote": "StreamQuote",
                "round_opened": "StreamRoundOpened", "round_closed": "StreamRoundClosed",
                "heartbeat": "StreamHeartbeat", "pong": "StreamPong", "error": "StreamError"}
    out["StreamServerMessage"] = {
        "oneOf": [ref(n) for n in messages.values()],
        "discriminator": {"propertyName": "type", "mapping": {
            k: f"#/components/schemas/{v}" for k, v in messages.items()}},
        "description": "A message from the server. Every message has type and topic; round "
                       "topics also carry seq."}
    return out


