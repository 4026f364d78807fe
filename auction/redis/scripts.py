"""The Lua scripts: one documented file per command in ``lua/``, each loaded with the shared
``_prelude.lua`` in front of it and registered once per client (EVALSHA, Redis 6.2 and 7.x;
no Redis Functions). The numbers they return are ``auction.model.Outcome``."""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from auction.ranking import KEY_WIDTH

NAMES = ("submit", "revise", "close", "book", "open", "due", "lease", "release", "crew",
         "retire")


def _read(name: str) -> str:
    return resources.files("auction.redis").joinpath(f"lua/{name}.lua").read_text()


@cache
def prelude() -> str:
    """What goes in front of every script: the rank key's width, then ``_prelude.lua``."""
    return f"local KEY_WIDTH = {KEY_WIDTH}\n{_read('_prelude')}\n"


@cache
def source(name: str) -> str:
    return prelude() + _read(name)


class Scripts:
    """Every script registered on one client."""

    def __init__(self, redis: Redis) -> None:
        self.submit: AsyncScript = redis.register_script(source("submit"))
        self.revise: AsyncScript = redis.register_script(source("revise"))
        self.close: AsyncScript = redis.register_script(source("close"))
        self.book: AsyncScript = redis.register_script(source("book"))
        self.open: AsyncScript = redis.register_script(source("open"))
        self.due: AsyncScript = redis.register_script(source("due"))
        self.lease: AsyncScript = redis.register_script(source("lease"))
        self.release: AsyncScript = redis.register_script(source("release"))
        self.crew: AsyncScript = redis.register_script(source("crew"))
        self.retire: AsyncScript = redis.register_script(source("retire"))
