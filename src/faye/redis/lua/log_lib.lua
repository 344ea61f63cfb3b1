-- Helpers prepended to every script of layout 2, the channel-log layout (see
-- docs/redis.md). Every key is built from the partition prefix passed as ARGV[1]:
--   seq          the partition's clock: the last sequence number given out
--   log:<name>   list of '<seq> <message>' published on a channel or matching a
--                subscribed pattern, kept while the name has subscribers
--   route:<name> hash: server id -> how many clients it holds are subscribed to name
--   servers_of   hash: name -> its servers, comma-separated (one HMGET per publish)
--   subs:<cid>   hash: name -> the sequence number current when the client subscribed
--   cursors      hash: client id -> '<acked>/<handed>/<server id>'
--   owner        hash: client id -> the server holding it
-- and a server's pub/sub channel w:<sid> carries messages and control lines to it.

-- How servers are told: PUBLISH, or SPUBLISH (sharded pub/sub) on a Redis Cluster.
local NOTIFY = 'PUBLISH'

-- The next `count` sequence numbers, returning the first: a hybrid clock in
-- microseconds, max(last + 1, Redis TIME), so that it only grows, also after a restart
-- without persistence or a failover to a replica that missed the last writes.
local function next_seq(p, count)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local first = math.max(tonumber(redis.call('GET', p .. 'seq') or '0') + 1, now)
  redis.call('SET', p .. 'seq', string.format('%d', first + count - 1))
  return first
end

local function current_seq(p)
  return tonumber(redis.call('GET', p .. 'seq') or '0')
end

-- servers_of's field for `name`, rewritten only when a server joins or leaves its route.
local function servers_changed(p, name, route)
  local sids = redis.call('HKEYS', route)
  if #sids > 0 then
    redis.call('HSET', p .. 'servers_of', name, table.concat(sids, ','))
  else
    redis.call('HDEL', p .. 'servers_of', name)
  end
end

-- One more (by = 1) or one fewer (by = -1) client held by `sid` subscribed to `name`.
local function route_add(p, name, sid, by)
  local route = p .. 'route:' .. name
  local count = redis.call('HINCRBY', route, sid, by)
  if count == by and by > 0 then
    servers_changed(p, name, route)
  elseif count <= 0 then
    redis.call('HDEL', route, sid)
    servers_changed(p, name, route)
    -- The last subscriber went: nobody reads the log any more.
    if redis.call('EXISTS', route) == 0 then redis.call('DEL', p .. 'log:' .. name) end
  end
end
