"""JSON Schema (2020-12, as OpenAPI 3.1 uses it) fragments and the markers that attach them to
type declarations.

``Doc`` is the marker of response fields (``Annotated[str, Doc("...", ref="Money")]``); the
generator (``openapi.py``) turns a ``TypedDict`` or a request model into a schema from its
type hints and these markers. The small builders below are shared by both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]

__all__ = ["Doc", "Schema", "arr", "boolean", "described", "integer", "obj", "ref", "string"]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def described(schema: Schema, description: str, **extra: Any) -> Schema:
    """A schema (often a $ref) with its own description: 3.1 allows siblings next to $ref."""
    return {**schema, "description": description, **extra}


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


@dataclass(frozen=True)
class Doc:
    """Documentation of one response field.

    ``description`` and ``extra`` keywords are added to the schema derived from the type;
    ``ref`` names a component to use instead of the derived schema (``Money``, ``Timestamp``);
    ``schema`` replaces the derived schema altogether (for shapes a type cannot say).
    """

    description: str = ""
    ref: str | None = None
    schema: Schema | None = None
    extra: Schema = field(default_factory=dict)

    def __init__(self, description: str = "", *, ref: str | None = None,
                 schema: Schema | None = None, **extra: Any) -> None:
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "ref", ref)
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "extra", extra)
