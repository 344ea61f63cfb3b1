#!lua name=proto_inbox
-- Candidate A: one stream per server (its inbox). `route:<name>` counts, per server, the
-- clients it holds subscribed to a channel or pattern; a publish appends once to the
-- inbox of each server with recipients and wakes it with the message; the server fans
-- out in memory. A client's progress is '<server>|<seq>': the inbox it follows and the
-- publish sequence it has been written up to, written per connect cycle or in batches.
-- Every key is built from the prefix ARGV[1] (one partition); KEYS[1] = <prefix>seq.

-- Whether Faye pattern `sub` (or an exact name) matches the published channel `name`.
local function matches(sub, name)
  if sub == name or sub == '/**' then return true end
  local parent, star = string.match(sub, '^(.*)/(%*%*?)$')
  if not parent then return false end
  if star == '**' then return string.sub(name, 1, #parent + 1) == parent .. '/' end
  local dir = string.match(name, '^(.*)/[^/]+$')
  return dir == parent
end

-- ARGV: prefix, now (ms), inbox maxlen, then per message: name count, message, channel,
-- names (the expansion). Returns the number of servers woken per message.
local function publish(keys, args)
  local p, now, maxlen = args[1], args[2], args[3]
  local out, i = {}, 4
  while i <= #args do
    local n, msg, channel = tonumber(args[i]), args[i + 1], args[i + 2]
    local names = {unpack(args, i + 3, i + 2 + n)}
    i = i + 3 + n
    local servers, seen = {}, {}
    for _, name in ipairs(names) do
      for _, sid in ipairs(redis.call('HKEYS', p .. 'route:' .. name)) do
        if not seen[sid] then
          seen[sid] = true
          servers[#servers + 1] = sid
        end
      end
    end
    if #servers > 0 then
      local id = redis.call('INCR', keys[1]) .. '-' .. now
      for _, sid in ipairs(servers) do
        redis.call('XADD', p .. 'inbox:' .. sid, 'MAXLEN', '~', maxlen, id, 'c', channel, 'm', msg)
        redis.call('PUBLISH', p .. 'w:' .. sid, id .. ' ' .. channel .. ' ' .. msg)
      end
    end
    out[#out + 1] = #servers
  end
  return out
end

local function route_add(p, name, sid, by)
  local key = p .. 'route:' .. name
  if redis.call('HINCRBY', key, sid, by) <= 0 then redis.call('HDEL', key, sid) end
end

local function holder(p, cid)
  local record = redis.call('HGET', p .. 'cursors', cid)
  if not record then return nil, 0, 0 end
  local sid, acked, handed = string.match(record, '^(.-)|(%d+)/(%d+)$')
  return sid, tonumber(acked), tonumber(handed)
end

-- Handshake: the client follows the handshaking server's inbox from now.
-- ARGV: prefix, server id, client id, now.
local function create(keys, args)
  local p, me, cid, now = args[1], args[2], args[3], args[4]
  if redis.call('ZADD', p .. 'clients', 'NX', now, cid) == 0 then return 0 end
  local seq = redis.call('GET', keys[1]) or '0'
  redis.call('HSET', p .. 'cursors', cid, me .. '|' .. seq .. '/' .. seq)
  return 1
end

-- ARGV: prefix, server id, client id, name, ttl (ms).
local function subscribe(keys, args)
  local p, me, cid, name, ttl = args[1], args[2], args[3], args[4], args[5]
  if not redis.call('ZSCORE', p .. 'clients', cid) then return -1 end
  local subs = p .. 'subs:' .. cid
  if redis.call('SADD', subs, name) == 0 then return 0 end
  redis.call('PEXPIRE', subs, ttl)
  local sid = holder(p, cid)
  if sid then
    route_add(p, name, sid, 1)
    if sid ~= me then redis.call('PUBLISH', p .. 'ctl:' .. sid, 's ' .. cid .. ' ' .. name) end
  end
  return 1
end

-- ARGV: prefix, server id, client id.
local function destroy(keys, args)
  local p, me, cid = args[1], args[2], args[3]
  if redis.call('ZREM', p .. 'clients', cid) == 0 then return false end
  local subs = p .. 'subs:' .. cid
  local names = redis.call('SMEMBERS', subs)
  local sid = holder(p, cid)
  if sid then for _, name in ipairs(names) do route_add(p, name, sid, -1) end end
  redis.call('DEL', subs)
  redis.call('HDEL', p .. 'cursors', cid)
  redis.call('PUBLISH', p .. 'close', me .. ' ' .. cid)
  return names
end

-- Connects, in one call for a batch of clients: ping; if another server holds the client,
-- move its routes here and read what it has not been written from that server's inbox
-- (every entry since its cursor is scanned and matched against its subscriptions), the
-- newest max_queue, handed out here.
-- ARGV: prefix, server id, now, max_queue, ttl cutoff (ms), then per client: id, mode
-- ('w' warm, 'c' cold, 'd' cold and its holder died). Returns per client
-- {status, previous holder, seq, message, ...}.
local function claim_one(p, me, now, maxq, cutoff, seqkey, cid, mode)
  local clients = p .. 'clients'
  if not redis.call('ZSCORE', clients, cid) then return {0, false} end
  redis.call('ZADD', clients, 'XX', now, cid)
  local sid, acked, handed = holder(p, cid)
  if sid == me and mode == 'w' then return {1, sid} end
  local cursor = handed
  if mode == 'd' then cursor = acked end
  local out = {1, sid or false}
  if sid and sid ~= me then
    local subs = redis.call('SMEMBERS', p .. 'subs:' .. cid)
    for _, name in ipairs(subs) do
      route_add(p, name, sid, -1)
      route_add(p, name, me, 1)
    end
    local got = {}
    for _, e in ipairs(redis.call('XRANGE', p .. 'inbox:' .. sid, (cursor + 1) .. '-0', '+')) do
      local seq, ms = string.match(e[1], '^(%d+)-(%d+)$')
      if tonumber(ms) >= cutoff then
        local channel = e[2][2]
        for _, name in ipairs(subs) do
          if matches(name, channel) then
            got[#got + 1] = {seq, e[2][4]}
            break
          end
        end
      end
    end
    for k = math.max(1, #got - maxq + 1), #got do
      out[#out + 1] = got[k][1]
      out[#out + 1] = got[k][2]
    end
    redis.call('PUBLISH', p .. 'ctl:' .. sid, 'm ' .. cid)
  end
  local seq = redis.call('GET', seqkey) or '0'
  redis.call('HSET', p .. 'cursors', cid, me .. '|' .. cursor .. '/' .. seq)
  return out
end

local function claim(keys, args)
  local p, me, now = args[1], args[2], args[3]
  local maxq, cutoff = tonumber(args[4]), tonumber(args[5])
  local out = {}
  for i = 6, #args, 2 do
    out[#out + 1] = claim_one(p, me, now, maxq, cutoff, keys[1], args[i], args[i + 1])
  end
  return out
end

-- Progress of a server's clients: ARGV prefix, then client id, record pairs.
local function cursors(keys, args)
  redis.call('HSET', args[1] .. 'cursors', unpack(args, 2))
  return 1
end

redis.register_function('inbox_publish', publish)
redis.register_function('inbox_create', create)
redis.register_function('inbox_subscribe', subscribe)
redis.register_function('inbox_destroy', destroy)
redis.register_function('inbox_claim', claim)
redis.register_function('inbox_cursors', cursors)
