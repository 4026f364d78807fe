"""Every end-to-end HTTP response checked against the generated OpenAPI document.

``check(response)`` finds the response's operation (method + path template), asserts that its
status is documented for that operation (explicitly: ``default`` does not count), validates a
JSON body against the documented schema (JSON Schema 2020-12, ``$ref``s resolved in the
document) and, for a problem, that its ``code`` is listed for that status in the operation's
``x-problem-codes``. A request outside the document (unknown path, another method) must get the
framework's problem (404 ``not_found``, 405 ``method_not_allowed``).

Hooked into the test HTTP clients as an httpx response event hook (``hook``). Validators are
built once per documented schema, so a check costs a dict lookup and one validation.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.contract.openapi import spec

DOC_URI = "urn:ige:openapi"
JSON_TYPES = ("application/json", "application/problem+json")


class Drift(AssertionError):
    """A response the document does not describe."""


@cache
def _registry() -> Registry:
    return Registry().with_resource(DOC_URI, Resource.from_contents(
        spec(), default_specification=DRAFT202012))


@cache
def _routes() -> list[tuple[re.Pattern[str], str]]:
    """Path templates as patterns, literal ones first (as the app's router prefers them)."""
    out = []
    for path in spec()["paths"]:
        pattern = re.sub(r"\\{([^}]+)\\}", "[^/]+", re.escape(path))
        out.append((re.compile(pattern + "$"), path))
    return sorted(out, key=lambda r: r[1].count("{"))


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@cache
def _validator(*pointer: str) -> Draft202012Validator:
    """Formats are asserted too (``date-time``, ``uri-reference`` with rfc3986-validator,
    ``email``), as schema-driven clients and fuzzers such as schemathesis assert them."""
    return Draft202012Validator({"$ref": f"{DOC_URI}#/{_pointer(*pointer)}"},
                                registry=_registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def template_of(path: str) -> str | None:
    return next((t for p, t in _routes() if p.match(path)), None)


def _validate(body: Any, *pointer: str, where: str) -> None:
    errors = sorted(_validator(*pointer).iter_errors(body), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        raise Drift(f"{where}: body does not match {'/'.join(pointer)}: at "
                    f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}\n"
                    f"body: {json.dumps(body)[:2000]}")


def check(response: httpx.Response) -> None:
    request = response.request
    method, path = request.method.lower(), request.url.path
    status = str(response.status_code)
    where = f"{request.method} {path} -> {status}"
    media = response.headers.get("content-type", "").split(";")[0].strip()
    body = response.json() if media in JSON_TYPES and response.content else None
    template = template_of(path)
    doc = spec()
    op = doc["paths"][template].get(method) if template is not None else None
    if op is None:  # outside the document: the framework answers
        expected = "not_found" if template is None else "method_not_allowed"
        if media != "application/problem+json" or not isinstance(body, dict):
            raise Drift(f"{where}: not documented, and not a problem")
        _validate(body, "components", "schemas", "Problem", where=where)
        statuses = doc["x-problem-codes"][expected]["status"]
        if body["code"] != expected or int(status) not in statuses:
            raise Drift(f"{where}: undocumented request answered {body['code']}, "
                        f"expected {expected}")
        return
    documented = op["responses"].get(status)
    if documented is None:
        raise Drift(f"{where}: status {status} is not documented for {method.upper()} "
                    f"{template} (documented: {', '.join(op['responses'])}); body: "
                    f"{response.text[:500]}")
    content = documented.get("content", {})
    if content and media not in content:
        raise Drift(f"{where}: content type {media!r} is not documented "
                    f"(documented: {', '.join(content)})")
    if media in JSON_TYPES and media in content:
        _validate(body, "paths", template, method, "responses", status, "content", media,
                  "schema", where=where)
    if media == "application/problem+json":
        codes = op["x-problem-codes"].get(status, [])
        if body["code"] not in codes:
            raise Drift(f"{where}: problem code {body['code']!r} is not listed for {status} "
                        f"in x-problem-codes of {method.upper()} {template} ({codes}); "
                        f"detail: {body.get('detail')}")


def hook(response: httpx.Response) -> None:
    """httpx response event hook: reads the body, then ``check``s it."""
    response.read()
    check(response)


def check_message(msg: Any) -> Any:
    """A live-stream message (server -> client) against ``StreamServerMessage``; returns it."""
    _validate(msg, "components", "schemas", "StreamServerMessage",
              where=f"stream {msg.get('type') if isinstance(msg, dict) else msg!r}")
    return msg
