"""The human documentation page (``GET /docs``), rendered from the generated OpenAPI document.

Self-contained: one HTML page with inline CSS, no script and nothing loaded from elsewhere.
Built once per process (``docs_html()``).
"""

from __future__ import annotations

import functools
import html
import json
import re
from typing import Any

from gateway.contract.openapi import AUTH_TEXT, STREAM_DESCRIPTION, spec
from gateway.contract.operations import JSON_MEDIA
from gateway.contract.schema import Schema

__all__ = ["docs_html"]

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
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
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


def _described(param: dict[str, Any]) -> Schema:
    """A parameter's schema with the parameter's own description."""
    return {**param.get("schema", {}), "description": param.get("description", "")}


def _describe(doc: dict[str, Any], schema: Schema) -> str:
    desc = schema.get("description")
    if desc is None and "$ref" in schema:
        desc = _resolve(doc, schema).get("description", "")
    extra = []
    inner = schema["anyOf"][0] if "anyOf" in schema else schema  # an optional, nullable field
    if "default" in schema:
        extra.append(f"default {json.dumps(schema['default'], ensure_ascii=False)}")
    if "minimum" in inner or "maximum" in inner:
        extra.append(f"range {inner.get('minimum', '')}..{inner.get('maximum', '')}")
    if "maxLength" in inner:
        extra.append(f"max {inner['maxLength']} chars")
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
             (f'<h3><span class="m {_e(method)}">{_e(method.upper())}</span>'
              f'<span class="path">{_e(path)}</span></h3>'),
             f"<p><strong>{_e(o.get('summary', ''))}</strong></p>"]
    desc, sep, auth_note = o.get("description", "").rpartition("\n\n**Auth:**")
    if not sep:
        desc, auth_note = auth_note, " " + AUTH_TEXT[o.get("x-auth", "public")] + "."
    parts.append(f'<p class="auth"><strong>Auth:</strong>{_md_inline(auth_note)}</p>')
    parts.append(_md(desc))
    params = [doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p
              for p in o.get("parameters", [])]
    if params:
        param_rows = "".join(
            f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
            f"<td>{_e(_type_text(doc, p.get('schema', {})))}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td>"
            f"<td>{_md_inline(_describe(doc, _described(p)))}</td></tr>"
            for p in params)
        parts.append("<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th>"
                     f"<th>Required</th><th>Description</th></tr></thead><tbody>{param_rows}</tbody>"
                     "</table>")
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
           "<h5>Handshake refused</h5>",
           dl({f"HTTP {ws['handshake_refused']['status']}": ws["handshake_refused"]["when"]}),
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
        (f"<header><h1>{_e(info['title'])}</h1><p>Version {_e(info['version'])} · OpenAPI "
         f'{_e(doc["openapi"])}: <a href="/v1/openapi.json"><code>/v1/openapi.json</code></a>'
         "</p></header><main>"),
        '<section id="intro"><h2>Overview</h2>', _md(info["description"]), "</section>",
        ('<section id="auth"><h2>Authentication</h2><table><thead><tr><th>Scheme</th>'
         f"<th>Type</th><th>How</th></tr></thead><tbody>{schemes}</tbody></table></section>"),
        ('<section id="problems"><h2>Problem codes</h2><p>Errors are '
         "<code>application/problem+json</code> with fields <code>type</code>, "
         "<code>title</code>, <code>status</code>, <code>code</code>, <code>detail</code>, "
         "<code>instance</code> and, for 422, <code>errors</code> "
         "[{field, code, message}]. Branch on <code>code</code>.</p>"
         "<table><thead><tr><th>Code</th><th>Status</th><th>Title</th></tr></thead>"
         f"<tbody>{problems}</tbody></table></section>"),
        '<section id="stream"><h2>Live stream</h2>',
        _md(STREAM_DESCRIPTION), "</section>",
        f'<nav><h2>Endpoints</h2><ul>{nav}</ul></nav>',
        '<section id="endpoints"><h2>Reference</h2>',
        *(_operation_html(doc, p, m, o) for p, m, o in ops),
        "</section></main></body></html>",
    ]
    return "\n".join(body)
