"""Where the pages live (the bounds read forms there: ``gateway/bounds.py``)."""

from __future__ import annotations

PAGE_PREFIXES = ("/desk", "/exporter", "/operator", "/lang")
STATIC_PREFIX = "/static/"


def is_page(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PAGE_PREFIXES)
