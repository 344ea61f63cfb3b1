-- Connects of a batch of clients: ping each, and take over the ones this server does
-- not hold (first connect here, moved, or their holder died or forgot them).
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, now (ms), dead-server cutoff (ms), max queue, oldest
--       message kept (ms), subscription ttl (ms; 0: none), then per client:
--       client id, mode ('w': held here, in memory; 'c': take it over), from ('' or
--       the sequence number it was written up to, when this server knows better).
-- Taking over moves the client's routes here, tells the previous holder
-- ('m <cid> <seq>': forget it, unless you claimed it after seq) and reads the logs of
-- its subscriptions back to its cursor: what the previous holder handed out if it is
-- alive (the client connecting again means it was written), else what it knew written.
-- Returns per client {0} unknown, {1} still held here, or
-- {2, seq now, n, n x (name, subscribed at), then (seq, message) pairs, oldest first}.

local function read_back(log, from, maxq)
  -- From the tail back: 2 entries, then 16, 128, ... up to max queue, until the oldest
  -- read is at or before `from` (a client is usually little behind).
  local want, entries = 2, {}
  while true do
    entries = redis.call('LRANGE', log, -want, -1)
    if #entries < want or want >= maxq then return entries end
    if tonumber(string.match(entries[1], '^%d+')) <= from then return entries end
    want = math.min(want * 8, maxq)
  end
end

local function claim_one(p, me, now, dead, maxq, oldest, ttl, cid, mode, from)
  if not redis.call('ZSCORE', p .. 'clients', cid) then return {0} end
  redis.call('ZADD', p .. 'clients', 'XX', now, cid)
  local subs = p .. 'subs:' .. cid
  if ttl > 0 then redis.call('PEXPIRE', subs, ttl) end
  local prev = redis.call('HGET', p .. 'owner', cid)
  if mode == 'w' and prev == me then return {1} end
  -- A number of its own: a later claim elsewhere always tells this one apart.
  local now_seq = next_seq(p, 1)
  local list = redis.call('HGETALL', subs)
  if prev ~= me then
    redis.call('HSET', p .. 'owner', cid, me)
    for k = 1, #list, 2 do
      route_add(p, list[k], me, 1)
      if prev then route_add(p, list[k], prev, -1) end
    end
    if prev then
      redis.call(NOTIFY, p .. 'w:' .. prev, 'm ' .. cid .. ' ' .. string.format('%d', now_seq))
    end
  end
  local cursor = 0
  if from ~= '' then
    cursor = tonumber(from)
  else
    local record = redis.call('HGET', p .. 'cursors', cid)
    if record then
      local acked, handed, holder = string.match(record, '^(%d+)/(%d+)/(.*)$')
      cursor = tonumber(acked) or 0
      local beat = holder and redis.call('ZSCORE', p .. 'servers', holder)
      if beat and tonumber(beat) > dead then cursor = tonumber(handed) or cursor end
    end
  end
  local got, seen = {}, {}
  for k = 1, #list, 2 do
    local after = math.max(cursor, tonumber(list[k + 1]) or 0)
    for _, e in ipairs(read_back(p .. 'log:' .. list[k], after, maxq)) do
      local seq, msg = string.match(e, '^(%d+) (.*)$')
      seq = tonumber(seq)
      if seq and seq > after and not seen[seq] and seq >= oldest * 1000 then
        seen[seq] = true
        got[#got + 1] = {seq, msg}
      end
    end
  end
  table.sort(got, function(a, b) return a[1] < b[1] end)
  local written = string.format('%d', cursor)
  redis.call('HSET', p .. 'cursors', cid, written .. '/' .. written .. '/' .. me)
  local out = {2, now_seq, #list / 2}
  for k = 1, #list do out[#out + 1] = list[k] end
  for k = math.max(1, #got - maxq + 1), #got do
    out[#out + 1] = got[k][1]
    out[#out + 1] = got[k][2]
  end
  return out
end

local function main(KEYS, ARGV)
  local p, me, now, dead = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
  local maxq, oldest, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local out = {}
  for i = 8, #ARGV, 3 do
    out[#out + 1] = claim_one(p, me, now, dead, maxq, oldest, ttl, ARGV[i], ARGV[i + 1], ARGV[i + 2])
  end
  return out
end
