"""Ids in paths: ``path("/v1/bank/rounds/{round_id}")`` is the route path
``/v1/bank/rounds/{round_id:id}``, whose ``{round_id}`` matches only what an id of ours can be
(letters, digits, ``_`` and ``-``, ``limits.PATH_ID_REGEX``, as the document's path parameters
say). Any other segment names nothing: it matches no route and is 404 ``not_found`` before a
database sees it (PostgreSQL refuses a NUL in text, which once made ``GET
/v1/admin/rounds/%00`` a 503).

The template a reader sees (``Route.path_format``: metrics, logs) is the plain one.
"""

from __future__ import annotations

import re

from starlette.convertors import CONVERTOR_TYPES, Convertor, register_url_convertor

from gateway.contract.limits import PATH_ID_REGEX

__all__ = ["IdConvertor", "path"]

NAME = "id"


class IdConvertor(Convertor[str]):
    regex = PATH_ID_REGEX

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def path(template: str) -> str:
    """The route path of a template whose parameters are ids."""
    if NAME not in CONVERTOR_TYPES:
        register_url_convertor(NAME, IdConvertor())
    return re.sub(r"{([a-z_]+)}", rf"{{\1:{NAME}}}", template)
