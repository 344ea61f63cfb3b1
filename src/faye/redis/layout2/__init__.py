"""Layout 2 of the Redis engine: channel logs, with the fan-out done by the servers.

Selected by the engine option ``layout: 2`` (see docs/redis.md). A publish appends the
message once to the log of each subscribed name it matches and sends it once to each
server holding recipients; that server hands it to the clients it holds, in memory.
Redis work per publish therefore does not grow with the audience.

* :mod:`.keys`: the names of keys and pub/sub channels, defined once.
* :mod:`.functions`: one typed Python call per Lua function, with result types.
* :mod:`.lines`: what arrives on a server's channel, parsed.
* :mod:`.ledger`: the clients a server holds, in memory: subscriptions, messages not
  handed out yet, handed out but not written, and the cursors recorded in Redis.
* :mod:`.engine`: the engine itself, on the lifecycle, heartbeat, listener and GC of
  :class:`faye.redis.engine.RedisEngine`.
"""
