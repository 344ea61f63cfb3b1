-- Connects of a batch of clients: ping each, and take over the ones this server does
-- not hold (first connect here, moved, or their holder died or forgot them).
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, now (ms), dead-server cutoff (ms), max queue, oldest
--       message kept (ms), subscription ttl (ms; 0: none), then per client:
--       client id, mode ('w': held here, in memory; 'c': take it over), from ('' or
--       the sequence number it was written up to, when this server knows better),
--       record ('' or, with 'w', the cursor to write for a client still held here:
--       what it is about to be handed, recorded before it is; with 'c' and a from,
--       the sequence number this server knows written).
-- Taking over moves the client's routes here, tells the previous holder
-- ('m <cid> <seq>': forget it, unless you claimed it after seq) and reads the logs of
-- its subscriptions back to its cursor: what the previous holder handed out if it is
-- alive (the client connecting again means it was written), else what it knew written.
-- Returns per client {0} unknown, {1} still held here, or
-- {2, seq now, n, n x (name, subscribed at), holder, acked, handed, then (seq, message)
-- pairs, oldest first}: holder is '' or the live server whose `handed` was used while
-- it knew only up to `acked` written (if it turns out dying, those go again).

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

local function claim_one(p, me, now, dead, maxq, oldest, ttl, cid, mode, from, record)
  if not redis.call('ZSCORE', p .. 'clients', cid) then return {0} end
  redis.call('ZADD', p .. 'clients', 'XX', now, cid)
  local subs = p .. 'subs:' .. cid
  if ttl > 0 then redis.call('PEXPIRE', subs, ttl) end
  local prev = redis.call('HGET', p .. 'owner', cid)
  if mode == 'w' and prev == me then
    if record ~= '' then redis.call('HSET', p .. 'cursors', cid, record) end
    return {1}
  end
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
  local cursor, unsure = 0, false
  if from ~= '' then
    cursor = tonumber(from)
  else
    local record = redis.call('HGET', p .. 'cursors', cid)
    if record then
      local acked, handed, holder = string.match(record, '^(%d+)/(%d+)/(.*)$')
      cursor = tonumber(acked) or 0
      local beat = holder and redis.call('ZSCORE', p .. 'servers', holder)
      if beat and tonumber(beat) > dead then
        cursor = tonumber(handed) or cursor
        -- Handed out there and not known written: lost if that server is dying.
        if holder ~= me and cursor > (tonumber(acked) or 0) then
          unsure = {holder, acked, handed}
        end
      end
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
  local out = {2, now_seq, #list / 2}
  for k = 1, #list do out[#out + 1] = list[k] end
  if unsure then
    out[#out + 1] = unsure[1]
    out[#out + 1] = unsure[2]
    out[#out + 1] = unsure[3]
  else
    out[#out + 1] = ''
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
  local last = cursor
  for k = math.max(1, #got - maxq + 1), #got do
    out[#out + 1] = got[k][1]
    out[#out + 1] = got[k][2]
    last = got[k][1]
  end
  -- What it read back is handed out as soon as this answer arrives.
  local acked = cursor
  if mode == 'c' and record ~= '' then acked = tonumber(record) or cursor end
  redis.call('HSET', p .. 'cursors', cid,
    string.format('%d', acked) .. '/' .. string.format('%d', last) .. '/' .. me)
  return out
end

local function main(KEYS, ARGV)
  local p, me, now, dead = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
  local maxq, oldest, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local out = {}
  for i = 8, #ARGV, 4 do
    out[#out + 1] = claim_one(p, me, now, dead, maxq, oldest, ttl,
      ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  end
  return out
end
