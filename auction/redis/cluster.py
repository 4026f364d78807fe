"""redis-py's asyncio Redis Cluster client, made to wait for a free connection.

On a single Redis the commands take a connection from a blocking pool: past its size they wait
their turn (``IGE_REDIS_TIMEOUT`` at most). redis-py's cluster client has no such pool: past
``max_connections`` on a node a command fails at once with ``MaxConnectionsError``. 2,000
WebSockets subscribing together each read their round's book, and on a cluster the benchmark's
subscriptions were answered 503 (``make bench``'s cluster part). Here at most
``max_in_flight`` commands and pipelines of the process are in flight at once (no node can
then need more connections than that); the others wait, at most ``wait_s``, then fail as
before (``MaxConnectionsError``: 503 ``unavailable`` with ``Retry-After``). Its connections
are reset-aware, as the single Redis's are (``auction/redis/conn.py``): under uvloop a write on
a connection the peer had reset raised ``RuntimeError`` (a 500 on the stream route, found by
the benchmark's cluster part).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import MaxConnectionsError

from auction.redis.conn import reset_aware


class WaitingCluster(RedisCluster):
    def __init__(self, *, max_in_flight: int, wait_s: float, **kwargs: Any) -> None:
        kwargs["max_connections"] = max_in_flight  # so no node needs more than that
        super().__init__(**kwargs)
        # a connection the peer reset is lost, not a 500 (uvloop; auction/redis/conn.py): for
        # the nodes known now and those the slot map brings later
        made = self.nodes_manager.connection_kwargs
        made["connection_class"] = reset_aware(made["connection_class"])
        for node in self.nodes_manager.startup_nodes.values():
            node.connection_class = reset_aware(node.connection_class)
        self._gate = asyncio.Semaphore(max_in_flight)
        self._wait_s = wait_s

    async def _enter(self) -> None:
        try:
            async with asyncio.timeout(self._wait_s):
                await self._gate.acquire()
        except TimeoutError:
            raise MaxConnectionsError("every connection of the cluster client stayed busy"
                                      ) from None

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self._enter()
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._gate.release()

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None
                 ) -> ClusterPipeline:
        pipe = super().pipeline(transaction, shard_hint)
        run = pipe.execute

        async def execute(raise_on_error: bool = True, allow_redirections: bool = True
                          ) -> list[Any]:
            await self._enter()
            try:
                return await run(raise_on_error, allow_redirections)
            finally:
                self._gate.release()

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe
