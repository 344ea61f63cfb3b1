"""Layout 1 of the Redis engine: a queue per client, filled by the publish script.

Selected by ``layout: 1`` (the default on a Cluster, where a namespace spreads over
partitions; see docs/redis.md). Redis work per publish grows with the recipients; in
return a client's messages wait in Redis, and any server drains them.

* :mod:`.functions`: one typed Python call per Lua function, the delivery lane's
  operation codes.
* :mod:`.inflight`: what this server handed out and has not yet trimmed.
* :mod:`.deliveries`: the delivery lane (drains, acknowledgements, requeues).
* :mod:`.engine`: the engine itself, on the lifecycle, heartbeat, listener and GC of
  :class:`faye.redis.engine.RedisEngine`.
"""
