"""The Lua scripts: one documented file per command in ``lua/``, each loaded with the shared
``_prelude.lua`` in front of it and registered once per client (EVALSHA, Redis 6.2 and 7.x;
no Redis Functions). The numbers they return are ``auction.model.Outcome``.

Each script exists in two variants that differ only in how it publishes a round's events:
``PUBLISH`` on a single Redis, ``SPUBLISH`` (sharded pub/sub, Redis 7) on a Redis Cluster. The
client decides which (``sharded``): a ``RedisCluster`` gets the sharded one."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from auction.ranking import KEY_WIDTH

NAMES = ("submit", "revise", "close", "book", "open", "due", "lease", "release", "crew",
         "retire")

#: a client of either kind (the composition root builds one or the other from REDIS_URL)
AnyRedis = Redis | RedisCluster


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


def _read(name: str) -> str:
    return resources.files("auction.redis").joinpath(f"lua/{name}.lua").read_text()


@cache
def prelude(sharded: bool = False) -> str:
    """What goes in front of every script: the rank key's width and the publishing command,
    then ``_prelude.lua``."""
    publish = "SPUBLISH" if sharded else "PUBLISH"
    return f"local KEY_WIDTH = {KEY_WIDTH}\nlocal PUBLISH = '{publish}'\n{_read('_prelude')}\n"


@cache
def source(name: str, sharded: bool = False) -> str:
    return prelude(sharded) + _read(name)


class Scripts:
    """Every script registered on one client."""

    def __init__(self, redis: AnyRedis) -> None:
        sharded = is_cluster(redis)

        def reg(name: str) -> AsyncScript:
            return redis.register_script(source(name, sharded))

        self.submit: AsyncScript = reg("submit")
        self.revise: AsyncScript = reg("revise")
        self.close: AsyncScript = reg("close")
        self.book: AsyncScript = reg("book")
        self.open: AsyncScript = reg("open")
        self.due: AsyncScript = reg("due")
        self.lease: AsyncScript = reg("lease")
        self.release: AsyncScript = reg("release")
        self.crew: AsyncScript = reg("crew")
        self.retire: AsyncScript = reg("retire")


Call = tuple[AsyncScript, Sequence[str], Sequence[str | int]]


async def run_many(redis: AnyRedis, calls: Sequence[Call]) -> list[Any]:
    """Scripts in one pipeline (one round trip per node), answers in order. A Redis Cluster's
    pipeline does not load a script its node lacks (a master promoted or added since, whose
    script cache is empty: ``NOSCRIPT``, so the script did not run): those calls are run again
    one by one, which loads it. Any other error is raised."""
    if not calls:
        return []
    pipe = redis.pipeline(transaction=False)
    cluster = is_cluster(redis)
    for script, k, a in calls:
        if cluster:  # its pipeline refuses evalsha() by name; the command itself goes
            pipe.execute_command("EVALSHA", script.sha, len(k), *k, *a)
        else:
            await script(keys=k, args=a, client=pipe)  # type: ignore[arg-type]
    got = list(await pipe.execute(raise_on_error=False))
    for res in got:
        if isinstance(res, Exception) and not isinstance(res, NoScriptError):
            raise res
    for i, res in enumerate(got):
        if isinstance(res, NoScriptError):
            script, k, a = calls[i]
            got[i] = await script(keys=k, args=a)
    return got
