"""Reading a request into a model: a fast path and an exact slow path.

Every field of a request model carries a ``Wire`` marker: the converter that defines what the
field accepts and what it becomes (``gateway.contract.fields``), its documented wire schema,
and how a missing or ``null`` value is treated. From that one declaration:

* the **fast path** is pydantic-core (``model_validate_json`` straight from the body bytes,
  or ``model_validate``) with the converters as before-validators: one pass, no error
  formatting. Any failure there only means "something is wrong";
* the **slow path** runs only then: it reads field by field with the same converters and
  lists every offending field with the codes and messages the gateway has always sent
  (``required``, ``invalid``, ``unknown_field`` ..., ``"<field>: <reason>"``), nested fields
  as ``company.tax_id`` or ``related_companies[0].tax_id``.

Both paths then run the model's ``check`` (cross-field checks such as ``currency_mismatch``)
on the values that parsed. The fast path never accepts what the slow path refuses: both call
the same converters, and tests/unit/test_contract_requests.py proves it on generated bodies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import core_schema

from gateway.contract.errors import (
    FieldError,
    FieldProblem,
    InvalidRequest,
    malformed_json,
    not_object,
    validation_failed,
)
from gateway.contract.fields import Converter

Schema = dict[str, Any]
M = TypeVar("M", bound="RequestModel")
#: a custom slow-path reader: (collector, key, body, context) -> (parsed?, value)
Reader = Callable[["Collector", str, Mapping[str, Any], Mapping[str, Any]], tuple[bool, Any]]

__all__ = ["MAX_JSON_DEPTH", "Collector", "Parsed", "RequestModel", "Wire", "decode_json",
           "parse", "read"]


@dataclass(frozen=True)
class Wire:
    """How one request field travels on the wire.

    ``conv``: the converter (slow path, and the fast path's before-validator).
    ``schema``: the documented wire schema (JSON Schema), e.g. ``{"$ref": ...MoneyInput}``.
    ``nested``: the field is an object read by the annotated request model (with a prefix).
    ``reader``: a hand-written slow-path reader for fields with their own error rules.
    ``raw``: no conversion at all: the JSON value as sent (``null`` included), or the default.
    ``empty_is_missing``: an empty string counts as absent (query strings).
    ``native``: a pydantic-core schema that accepts exactly what ``conv`` accepts and returns
    the same value (strict int, bool, bounded str): the fast path then makes no Python call.
    """

    conv: Converter | None = None
    schema: Schema = field(default_factory=dict)
    nested: bool = False
    reader: Reader | None = None
    raw: bool = False
    empty_is_missing: bool = False
    native: core_schema.CoreSchema | None = None

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        if self.native is not None:
            return self.native
        inner = handler(source)
        if self.conv is None or self.nested:
            return inner
        conv = self.conv
        if self.empty_is_missing:  # "" means absent: leave it to the slow path
            def conv(v: Any, _conv: Converter = self.conv) -> Any:
                if v == "":
                    raise ValueError("empty")
                return _conv(v)
        return core_schema.no_info_before_validator_function(conv, inner)


class Collector:
    """Field errors of one object, in the order they are found."""

    __slots__ = ("errors", "prefix")

    def __init__(self, prefix: str = "", errors: list[FieldError] | None = None) -> None:
        self.prefix = prefix
        self.errors: list[FieldError] = [] if errors is None else errors

    def error(self, name: str, code: str, message: str) -> None:
        self.errors.append(FieldError(self.prefix + name, code, message))

    def nested(self, prefix: str) -> Collector:
        """A collector for a nested object that appends to the same list."""
        return Collector(self.prefix + prefix, self.errors)


class RequestModel(BaseModel):
    """Base of every request model. Subclasses declare fields with a ``Wire`` marker."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: message of an ``unknown_field`` error (models with ``extra="forbid"``)
    UNKNOWN_FIELD: ClassVar[str] = "{} is not a known field"
    #: fields documented as required although reading does not refuse their absence
    #: (credentials: a missing one is refused later, as wrong credentials are)
    REQUIRED_ON_WIRE: ClassVar[tuple[str, ...]] = ()
    #: a JSON ``null`` is read as an absent optional field (the document says so); forms and
    #: query strings have no null
    NULL_IS_ABSENT: ClassVar[bool] = True

    @classmethod
    def check(cls, v: Mapping[str, Any], c: Collector, ctx: Mapping[str, Any]) -> None:
        """Cross-field checks over the values that parsed (``v`` lacks the others)."""

    @classmethod
    def refusal(cls, errors: list[FieldError]) -> InvalidRequest:
        """The problem for a request with these errors (422 validation_failed by default)."""
        return validation_failed(errors)


@dataclass(frozen=True)
class Parsed(Generic[M]):
    """The outcome of reading a request.

    ``model``: the request, when nothing is wrong with it. ``values``: every field that did
    parse, converted (absent optional fields with their defaults); ``errors``: every
    offending field. ``bad``: the fields named in ``errors``.
    """

    kind: type[M]
    model: M | None
    values: Mapping[str, Any]
    errors: list[FieldError]

    @property
    def bad(self) -> frozenset[str]:
        return frozenset(e.field for e in self.errors)

    def require(self) -> M:
        """The model, or the model kind's refusal (``InvalidRequest``) listing every error."""
        if self.model is None:
            raise self.kind.refusal(self.errors)
        return self.model

    def with_errors(self, more: list[FieldError]) -> Parsed[M]:
        """The same reading with more errors (e.g. from rules): no model once any exist."""
        if not more:
            return self
        return Parsed(self.kind, None, self.values, [*self.errors, *more])


# ----------------------------------------------------------------------------- metadata
@dataclass(frozen=True)
class _Field:
    name: str
    info: FieldInfo
    wire: Wire
    required: bool
    default: Any


_FIELDS: dict[type[RequestModel], tuple[_Field, ...]] = {}
_NESTED: dict[type[RequestModel], tuple[str, ...]] = {}


def wire_fields(model: type[RequestModel]) -> tuple[_Field, ...]:
    got = _FIELDS.get(model)
    if got is None:
        out = []
        for name, info in model.model_fields.items():
            wire = next((m for m in info.metadata if isinstance(m, Wire)), None)
            if wire is None:
                raise TypeError(f"{model.__name__}.{name} has no Wire marker")
            required = info.is_required()
            out.append(_Field(name, info, wire, required,
                              None if required else info.get_default(call_default_factory=True)))
        got = _FIELDS[model] = tuple(out)
    return got


def nested_model(f: _Field) -> type[RequestModel]:
    ann = f.info.annotation
    if not (isinstance(ann, type) and issubclass(ann, RequestModel)):
        raise TypeError(f"{f.name}: nested=True needs a RequestModel annotation")
    return ann


# ----------------------------------------------------------------------------- reading
_NO_CONTEXT: Mapping[str, Any] = {}


def read(model: type[M], raw: bytes | Mapping[str, Any] | Any,
         context: Mapping[str, Any] | None = None) -> Parsed[M]:
    """Read a request body (bytes as received, or an already decoded JSON value) or a query
    string / form (a ``Mapping[str, str]``) into ``model``.

    Raises ``InvalidRequest`` only when the body as a whole is unusable: 400
    ``malformed_json``, or 422 with ``{"field": "", "code": "not_object"}``. Field problems
    come back in ``Parsed.errors``. ``context`` feeds the model's cross-field checks (e.g.
    ``{"currency": "TRY"}`` for offers, ``{"consent_text_version": ...}`` for consents).
    """
    ctx = _NO_CONTEXT if context is None else context
    if isinstance(raw, (bytes, bytearray)):
        raw = decode_json(raw)  # strict: no duplicate keys, NaN or deep nesting
    try:
        if isinstance(raw, dict):
            m = model.model_validate(raw)
        elif isinstance(raw, Mapping):
            raw = dict(raw)
            m = model.model_validate(raw)
        else:
            raise not_object()
    except ValidationError:
        return _slow(model, _decode(raw), ctx)
    c = Collector()
    _fast_checks(model, m, c, ctx)
    if c.errors:
        return Parsed(model, None, m.__dict__, c.errors)
    return Parsed(model, m, m.__dict__, c.errors)


def parse(model: type[M], raw: bytes | Mapping[str, Any] | Any,
          context: Mapping[str, Any] | None = None) -> M:
    """``read``, then the model or ``InvalidRequest`` listing every offending field."""
    return read(model, raw, context).require()


#: how deeply a request body may nest objects and arrays (the deepest request is 3 levels)
MAX_JSON_DEPTH = 32


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _Duplicate(k)
            seen.add(k)
    return out


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(raw: bytes | bytearray) -> Any:
    """A request body as JSON, strictly: 400 ``malformed_json`` for what is not JSON
    (``NaN``, ``Infinity``), for a key given twice in one object (which value the client meant
    is unknowable) and for nesting deeper than ``MAX_JSON_DEPTH``. (Text fields refuse NUL
    characters themselves: ``gateway.contract.fields.text``.)"""
    try:
        obj = json.loads(raw or b"null", object_pairs_hook=_pairs, parse_constant=_constant)
    except _Duplicate as e:
        raise malformed_json(f"the key {str(e)[:60]!r} appears twice in one object") from None
    except RecursionError:
        raise malformed_json(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise malformed_json() from None
    if isinstance(obj, (dict, list)):
        _scan(obj)
    return obj


def _scan(obj: dict[str, Any] | list[Any]) -> None:
    """Raise past ``MAX_JSON_DEPTH`` levels, without recursion (a body is small: the gateway
    bounds it)."""
    todo: list[tuple[Any, int]] = [(obj, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_JSON_DEPTH:
            raise malformed_json(f"nested deeper than {MAX_JSON_DEPTH} levels")
        for v in (node.values() if isinstance(node, dict) else node):
            if isinstance(v, (dict, list)):
                todo.append((v, depth + 1))


def _decode(raw: Any) -> dict[str, Any]:
    if isinstance(raw, (bytes, bytearray)):
        raw = decode_json(raw)
    if not isinstance(raw, dict):
        raise not_object()
    return raw


def _fast_checks(model: type[RequestModel], m: RequestModel, c: Collector,
                 ctx: Mapping[str, Any]) -> None:
    nested = _NESTED.get(model)
    if nested is None:
        nested = _NESTED[model] = tuple(f.name for f in wire_fields(model) if f.wire.nested)
    for name in nested:
        sub = getattr(m, name)
        if isinstance(sub, RequestModel):
            _fast_checks(type(sub), sub, c.nested(name + "."), ctx)
    model.check(m.__dict__, c, ctx)


def _slow(model: type[M], body: dict[str, Any], ctx: Mapping[str, Any]) -> Parsed[M]:
    c = Collector()
    values = read_fields(model, body, c, ctx)
    if c.errors:
        return Parsed(model, None, values, c.errors)
    return Parsed(model, construct(model, values), values, c.errors)


def read_fields(model: type[RequestModel], body: Mapping[str, Any], c: Collector,
                ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The slow path over one object: every field in declaration order, then ``check``."""
    fields = wire_fields(model)
    if model.model_config.get("extra") == "forbid":
        known = {f.name for f in fields}
        for k in body:
            if k not in known:
                c.error(k, "unknown_field", model.UNKNOWN_FIELD.format(k))
    values: dict[str, Any] = {}
    for f in fields:
        w, key = f.wire, f.name
        if w.reader is not None:
            ok, value = w.reader(c, key, body, ctx)
            if ok:
                values[key] = value
            continue
        if w.raw:
            values[key] = body.get(key, f.default)
            continue
        raw = body.get(key)
        if raw is None or (w.empty_is_missing and raw == ""):
            if f.required:
                c.error(key, "required", f"{key} is required")
            else:
                values[key] = f.default
            continue
        try:
            value = w.conv(raw) if w.conv is not None else raw
        except FieldProblem as e:
            c.error(key, e.code, e.message)
            continue
        except (ValueError, TypeError) as e:
            c.error(key, "invalid", f"{key}: {e}")
            continue
        if w.nested:
            value = read_fields(nested_model(f), value, c.nested(key + "."), ctx)
        values[key] = value
    model.check(values, c, ctx)
    return values


def construct(model: type[M], values: Mapping[str, Any]) -> M:
    """The model from slow-path values that are all good (nested dicts become models)."""
    data = dict(values)
    for f in wire_fields(model):
        if f.wire.nested and isinstance(data.get(f.name), Mapping):
            data[f.name] = construct(nested_model(f), data[f.name])
    return model.model_construct(**data)
