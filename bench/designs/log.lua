#!lua name=proto_log
-- Candidate B: one bounded log (stream) per channel or pattern with subscribers, written
-- once per publish; servers SUBSCRIBE to `n:<name>` for the names their clients hold and
-- fan out in memory; a client's progress is one number per partition (the global publish
-- sequence it has been written up to), written per connect cycle or in periodic batches.
-- Every key is built from the prefix ARGV[1] (one partition); KEYS[1] = <prefix>seq.
--
-- Entry ids are '<seq>-<ms>': <seq> from one INCR per publish, shared by every log the
-- publish is written to (overlapping subscriptions are told apart by it: exactly once),
-- <ms> the publish time (message_ttl is checked on read).

local function names_with_subscribers(p, names)
  return redis.call('HMGET', p .. 'names', unpack(names))
end

-- ARGV: prefix, now (ms), ttl (ms), max_queue, then per message: name count, message,
-- names (the expansion of the published channel). Returns the id per message (false if
-- nobody was subscribed).
local function publish(keys, args)
  local p, now, ttl, maxlen = args[1], args[2], args[3], args[4]
  local out, i = {}, 5
  while i <= #args do
    local n, msg = tonumber(args[i]), args[i + 1]
    local names = {unpack(args, i + 2, i + 1 + n)}
    i = i + 2 + n
    local counts = names_with_subscribers(p, names)
    local id = false
    for k, name in ipairs(names) do
      if counts[k] then
        if not id then id = redis.call('INCR', keys[1]) .. '-' .. now end
        local log = p .. 'log:' .. name
        redis.call('XADD', log, 'MAXLEN', '~', maxlen, id, 'm', msg)
        redis.call('PEXPIRE', log, ttl)
        redis.call('PUBLISH', p .. 'n:' .. name, id .. ' ' .. msg)
      end
    end
    out[#out + 1] = id
  end
  return out
end

-- ARGV: prefix, server id, client id, name, ttl (ms). The subscription starts after the
-- current sequence. Returns {1 new / 0 existed / -1 unknown client, owner or false, start}.
local function subscribe(keys, args)
  local p, me, cid, name, ttl = args[1], args[2], args[3], args[4], args[5]
  if not redis.call('ZSCORE', p .. 'clients', cid) then return {-1, false, 0} end
  local start = redis.call('GET', keys[1]) or '0'
  local subs = p .. 'subs:' .. cid
  local added = redis.call('HSETNX', subs, name, start)
  if added == 1 then redis.call('HINCRBY', p .. 'names', name, 1) end
  redis.call('PEXPIRE', subs, ttl)
  local owner = redis.call('HGET', p .. 'owner', cid)
  if owner and owner ~= me then
    redis.call('PUBLISH', p .. 'ctl:' .. owner, 's ' .. cid .. ' ' .. name .. ' ' .. start)
  end
  return {added, owner, start}
end

local function drop_name(p, name)
  if redis.call('HINCRBY', p .. 'names', name, -1) <= 0 then redis.call('HDEL', p .. 'names', name) end
end

-- ARGV: prefix, server id, client id, name.
local function unsubscribe(keys, args)
  local p, cid, name = args[1], args[3], args[4]
  if redis.call('HDEL', p .. 'subs:' .. cid, name) == 0 then return 0 end
  drop_name(p, name)
  return 1
end

-- ARGV: prefix, server id, client id.
local function destroy(keys, args)
  local p, me, cid = args[1], args[2], args[3]
  if redis.call('ZREM', p .. 'clients', cid) == 0 then return false end
  local subs = p .. 'subs:' .. cid
  local names = redis.call('HKEYS', subs)
  for _, name in ipairs(names) do drop_name(p, name) end
  redis.call('DEL', subs)
  redis.call('HDEL', p .. 'owner', cid)
  redis.call('HDEL', p .. 'cursors', cid)
  redis.call('PUBLISH', p .. 'close', me .. ' ' .. cid)
  return names
end

-- Connects, in one call for a batch of clients (the delivery lane): ping, take ownership
-- and, when this server has no warm state for the client (first connect, the client
-- moved, its server died), read what it has not been written from each subscribed log:
-- ids above max(cursor, subscription start), newer than the ttl cutoff, each publish
-- once, the newest max_queue; they count as handed out here (the record's handed mark).
-- ARGV: prefix, server id, now (ms), max_queue, ttl cutoff (ms), then per client: id,
-- mode ('w' warm: this server holds it in memory; 'c' cold; 'd' cold, its holder died).
-- Returns per client {status, previous owner or false, cursor, seq, message, ...}.
local function claim_one(p, me, now, maxq, cutoff, cid, mode)
  local clients = p .. 'clients'
  if not redis.call('ZSCORE', clients, cid) then return {0, false, 0} end
  redis.call('ZADD', clients, 'XX', now, cid)
  local prev = redis.call('HGET', p .. 'owner', cid)
  if prev == me and mode == 'w' then return {1, prev, 0} end
  if prev ~= me then redis.call('HSET', p .. 'owner', cid, me) end
  local record = redis.call('HGET', p .. 'cursors', cid)
  -- '<acked>/<handed>/<server>': a live holder's handed-out batch counts as written
  -- (the client polled again); a dead holder's does not (at-least-once).
  local cursor = 0
  if record then
    local acked, handed = string.match(record, '^(%d+)/(%d+)/')
    cursor = tonumber(handed) or 0
    if mode == 'd' then cursor = tonumber(acked) or 0 end
  end
  local subs = redis.call('HGETALL', p .. 'subs:' .. cid)
  local got, seen = {}, {}
  for k = 1, #subs, 2 do
    local from = math.max(cursor, tonumber(subs[k + 1]))
    local entries = redis.call('XREVRANGE', p .. 'log:' .. subs[k], '+', (from + 1) .. '-0', 'COUNT', maxq)
    for _, e in ipairs(entries) do
      local seq, ms = string.match(e[1], '^(%d+)-(%d+)$')
      seq = tonumber(seq)
      if not seen[seq] and tonumber(ms) >= cutoff then
        seen[seq] = true
        got[#got + 1] = {seq, e[2][2]}
      end
    end
  end
  table.sort(got, function(a, b) return a[1] < b[1] end)
  local out = {1, prev or false, cursor}
  local last = cursor
  for k = math.max(1, #got - maxq + 1), #got do
    out[#out + 1] = got[k][1]
    out[#out + 1] = got[k][2]
    last = got[k][1]
  end
  redis.call('HSET', p .. 'cursors', cid, cursor .. '/' .. last .. '/' .. me)
  return out
end

local function claim(keys, args)
  local p, me, now = args[1], args[2], args[3]
  local maxq, cutoff = tonumber(args[4]), tonumber(args[5])
  local out = {}
  for i = 6, #args, 2 do
    out[#out + 1] = claim_one(p, me, now, maxq, cutoff, args[i], args[i + 1])
  end
  return out
end

-- Progress of a server's clients: ARGV prefix, then client id, record pairs (see claim).
local function cursors(keys, args)
  redis.call('HSET', args[1] .. 'cursors', unpack(args, 2))
  return 1
end

redis.register_function('log_publish', publish)
redis.register_function('log_subscribe', subscribe)
redis.register_function('log_unsubscribe', unsubscribe)
redis.register_function('log_destroy', destroy)
redis.register_function('log_claim', claim)
redis.register_function('log_cursors', cursors)
