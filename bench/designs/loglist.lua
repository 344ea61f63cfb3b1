#!lua name=proto_loglist
-- Candidate C with lists for logs (C'): each log is a list of '<seq> <message>' entries,
-- appended with RPUSH and cut back to max_queue (LTRIM) once it is an eighth longer; a
-- claim reads it from the tail back to the cursor. Otherwise as logroute.lua: candidate
-- B's logs, with candidate A's routing: `route:<name>` counts, per
-- server, the clients it holds subscribed to the name; a publish writes each log once and
-- wakes each server holding recipients once, on its own channel `w:<sid>`, with the
-- message; servers fan out in memory (no per-name SUBSCRIBE). A client's progress is one
-- number per partition (the publish sequence it has been written up to), written per
-- connect cycle or in periodic batches. Every key is built from the prefix ARGV[1] (one
-- partition); KEYS[1] = <prefix>seq.
--
-- Entry ids are '<seq>-0', <seq> shared by every log one publish is written to
-- (overlapping subscriptions are told apart by it: exactly once); it is a time in
-- microseconds, so message_ttl is checked on read.

-- Sequence numbers: a hybrid logical clock in microseconds, max(last + 1, Redis TIME), so
-- that a sequence restarted by a Redis restart without persistence, or continued by a
-- replica that missed the last writes, still only grows (while a partition publishes
-- fewer than 1 message per microsecond on average). Returns the first of `count`.
local function next_seqs(key, count)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local first = math.max(tonumber(redis.call('GET', key) or '0') + 1, now)
  redis.call('SET', key, string.format('%d', first + count - 1))
  return first
end

-- Whether Faye pattern `sub` matches the published channel `name` (`/a/*`: one more
-- segment; `/a/**`: any more segments).
local function matches(sub, name)
  if sub == '/**' then return true end
  local parent, star = string.match(sub, '^(.*)/(%*%*?)$')
  if not parent then return false end
  if star == '**' then return string.sub(name, 1, #parent + 1) == parent .. '/' end
  return string.match(name, '^(.*)/[^/]+$') == parent
end

-- ARGV: prefix, max_queue, then message, channel pairs. Each message goes once into the
-- log of each name that matches its channel and has subscribers (the channel itself,
-- and the wildcard patterns subscribed in this partition: few, read once per call), with
-- XADD trimmed to about max_queue (no expiry to re-arm: a log goes with its last
-- subscriber). Each server holding recipients gets one PUBLISH for the whole call: lines
-- '<seq> <channel> <message>'. Returns the seq per message (false: nobody subscribed).
local function publish(keys, args)
  local p, maxlen = args[1], args[2]
  local count = (#args - 2) / 2
  local seq = next_seqs(keys[1], count) - 1
  local patterns = redis.call('SMEMBERS', p .. 'patterns')
  -- The names of each message, and the routes of every name of the call, each read once.
  local names, wanted, index = {}, {}, {}
  for k = 1, count do
    local channel = args[2 + 2 * k]
    local mine = {channel}
    for _, pattern in ipairs(patterns) do
      if matches(pattern, channel) then mine[#mine + 1] = pattern end
    end
    names[k] = mine
    for _, name in ipairs(mine) do
      if not index[name] then
        wanted[#wanted + 1] = name
        index[name] = #wanted
      end
    end
  end
  local routes = redis.call('HMGET', p .. 'servers_of', unpack(wanted))
  local out, lines, servers = {}, {}, {}
  for k = 1, count do
    local msg, id = args[1 + 2 * k], false
    for _, name in ipairs(names[k]) do
      local route = routes[index[name]]
      if route then
        if not id then
          seq = seq + 1
          id = string.format('%d', seq)
        end
        local log = p .. 'log:' .. name
        if redis.call('RPUSH', log, id .. ' ' .. msg) > maxlen + math.floor(maxlen / 8) then
          redis.call('LTRIM', log, -maxlen, -1)
        end
        for sid in string.gmatch(route, '[^,]+') do
          local mine = lines[sid]
          if not mine then
            mine = {}
            lines[sid] = mine
            servers[#servers + 1] = sid
          end
          if mine[#mine] ~= k then mine[#mine + 1] = k end
        end
      end
    end
    out[k] = id
  end
  for _, sid in ipairs(servers) do
    local text = {}
    for _, k in ipairs(lines[sid]) do
      text[#text + 1] = out[k] .. ' ' .. args[2 + 2 * k] .. ' ' .. args[1 + 2 * k]
    end
    redis.call('PUBLISH', p .. 'w:' .. sid, table.concat(text, '\n'))
  end
  return out
end

-- `route:<name>`: server id -> how many of the clients it holds are subscribed to the name;
-- `servers_of` field <name>: those servers, comma-separated, rewritten only when one
-- joins or leaves, so that a publish reads the servers of all its names in one HMGET.
local function servers_changed(p, name, key)
  local sids = redis.call('HKEYS', key)
  if #sids > 0 then
    redis.call('HSET', p .. 'servers_of', name, table.concat(sids, ','))
  else
    redis.call('HDEL', p .. 'servers_of', name)
  end
end

local function route_add(p, name, sid, by)
  local key = p .. 'route:' .. name
  local count = redis.call('HINCRBY', key, sid, by)
  if count == by and by > 0 then
    servers_changed(p, name, key)
    if string.find(name, '*', 1, true) then redis.call('SADD', p .. 'patterns', name) end
  elseif count <= 0 then
    redis.call('HDEL', key, sid)
    servers_changed(p, name, key)
    -- The last subscriber went: nobody will read the log again.
    if redis.call('EXISTS', key) == 0 then
      redis.call('DEL', p .. 'log:' .. name)
      redis.call('SREM', p .. 'patterns', name)
    end
  end
end

-- ARGV: prefix, server id, client id, name, ttl (ms). The subscription starts after the
-- current sequence. Returns {1 new / 0 existed / -1 unknown client, owner or false, start}.
local function subscribe(keys, args)
  local p, me, cid, name, ttl = args[1], args[2], args[3], args[4], args[5]
  if not redis.call('ZSCORE', p .. 'clients', cid) then return {-1, false, 0} end
  local start = redis.call('GET', keys[1]) or '0'
  local subs = p .. 'subs:' .. cid
  local added = redis.call('HSETNX', subs, name, start)
  redis.call('PEXPIRE', subs, ttl)
  local owner = redis.call('HGET', p .. 'owner', cid)
  if not owner then
    owner = me
    redis.call('HSET', p .. 'owner', cid, me)
  end
  if added == 1 then route_add(p, name, owner, 1) end
  if owner ~= me then
    redis.call('PUBLISH', p .. 'ctl:' .. owner, 's ' .. cid .. ' ' .. name .. ' ' .. start)
  end
  return {added, owner, start}
end

-- ARGV: prefix, server id, client id, name.
local function unsubscribe(keys, args)
  local p, cid, name = args[1], args[3], args[4]
  if redis.call('HDEL', p .. 'subs:' .. cid, name) == 0 then return 0 end
  local owner = redis.call('HGET', p .. 'owner', cid)
  if owner then route_add(p, name, owner, -1) end
  return 1
end

-- ARGV: prefix, server id, client id.
local function destroy(keys, args)
  local p, me, cid = args[1], args[2], args[3]
  if redis.call('ZREM', p .. 'clients', cid) == 0 then return false end
  local subs = p .. 'subs:' .. cid
  local names = redis.call('HKEYS', subs)
  local owner = redis.call('HGET', p .. 'owner', cid)
  if owner then for _, name in ipairs(names) do route_add(p, name, owner, -1) end end
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
  local subs = redis.call('HGETALL', p .. 'subs:' .. cid)
  if prev ~= me then
    for k = 1, #subs, 2 do
      route_add(p, subs[k], me, 1)
      if prev then route_add(p, subs[k], prev, -1) end
    end
    if prev then redis.call('PUBLISH', p .. 'ctl:' .. prev, 'm ' .. cid) end
  end
  local record = redis.call('HGET', p .. 'cursors', cid)
  -- '<acked>/<handed>/<server>': a live holder's handed-out batch counts as written
  -- (the client polled again); a dead holder's does not (at-least-once).
  local cursor = 0
  if record then
    local acked, handed = string.match(record, '^(%d+)/(%d+)/')
    cursor = tonumber(handed) or 0
    if mode == 'd' then cursor = tonumber(acked) or 0 end
  end
  local got, seen = {}, {}
  for k = 1, #subs, 2 do
    local from = math.max(cursor, tonumber(subs[k + 1]))
    -- From the tail back: 2 entries, then 16, 128, the newest max_queue, until the
    -- oldest read is at or before the cursor (a client is usually little behind).
    local log, want = p .. 'log:' .. subs[k], 2
    local entries
    while true do
      entries = redis.call('LRANGE', log, -want, -1)
      if #entries < want or want >= maxq then break end
      if tonumber(string.match(entries[1], '^%d+')) <= from then break end
      want = math.min(want * 8, maxq)
    end
    for _, e in ipairs(entries) do
      local seq, msg = string.match(e, '^(%d+) (.*)$')
      seq = tonumber(seq)
      if seq > from and not seen[seq] and seq >= cutoff * 1000 then
        seen[seq] = true
        got[#got + 1] = {seq, msg}
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
  redis.call('HSET', p .. 'cursors', cid, string.format('%d/%d/', cursor, last) .. me)
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

-- Cursor writes that also cut single-subscriber logs (the point-to-point case) back to
-- what their one subscriber has not acknowledged, so that such a log holds only
-- unacknowledged messages, like today's queues. ARGV: prefix, server id, then per
-- client: id, record, acknowledged seq, names to cut ('' or comma-separated). A log is
-- cut only once it holds more than 32 entries (so a write usually costs one LLEN per
-- name), and only while its route is this server alone, with one client.
local function cursors_trim(keys, args)
  local p, me = args[1], args[2]
  local pairs = {}
  for i = 3, #args, 4 do
    pairs[#pairs + 1] = args[i]
    pairs[#pairs + 1] = args[i + 1]
    local acked = tonumber(args[i + 2])
    for name in string.gmatch(args[i + 3], '[^,]+') do
      local route, log = p .. 'route:' .. name, p .. 'log:' .. name
      if redis.call('LLEN', log) > 32 and redis.call('HLEN', route) == 1
          and redis.call('HGET', route, me) == '1' then
        local head, n = redis.call('LRANGE', log, 0, -1), 0
        for _, e in ipairs(head) do
          if tonumber(string.match(e, '^%d+')) > acked then break end
          n = n + 1
        end
        if n > 0 then redis.call('LTRIM', log, n, -1) end
      end
    end
  end
  if #pairs > 0 then redis.call('HSET', p .. 'cursors', unpack(pairs)) end
  return 1
end

redis.register_function('loglist_publish', publish)
redis.register_function('loglist_cursors_trim', cursors_trim)
redis.register_function('loglist_subscribe', subscribe)
redis.register_function('loglist_unsubscribe', unsubscribe)
redis.register_function('loglist_destroy', destroy)
redis.register_function('loglist_claim', claim)
redis.register_function('loglist_cursors', cursors)
