"""OpenAPI document and the /docs page (being written)."""
from typing import Any


def spec() -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "IGE", "version": "1"}, "paths": {}}


def docs_html() -> str:
    return "<html><body>docs</body></html>"
