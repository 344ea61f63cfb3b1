-- A batch of per-client queue operations for one server, in order, in one partition.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, now (ms), dead-server cutoff (ms), subscription ttl (ms, 0 = none),
--       message ttl (ms), then operations, each either
--         code, client id, argument count, arguments...   (any operation), or
--         '#' .. lines '<code><digits>[+<digits>]:<client id>' (a run of C, H, W and A)
--   C (connect): in the client's record partition: ping, take ownership, and return the
--                client's homes; then, as for H, drain its queue here.
--   H (home):    take ownership of the client's queue in this home, recover in-flight
--                messages of dead servers, drain the queue.
--                C and H arguments: '1' to resend this server's own in-flight list first;
--                then, optionally, N: first acknowledge N written messages (as A does).
--   W (wake):    drain the queue if this server owns the client here. Arguments as for C.
--   A (ack):     the first N in-flight messages were written. Argument: N.
--   R (requeue): these in-flight messages were not written. Arguments: the messages.
--   D (discard): drop these (corrupt) messages from the in-flight list.
--   P (partition): the operations after it concern partition <prefix> (given in place of
--                the client id, with no argument): one call serves every partition of a
--                master. If one of them is not on this node (a Cluster resharded), the
--                call does nothing and returns {-1}: the caller sends them one by one.
-- A drained message stays where it is, in the client's queue, counted in flight by the
-- queue's header (see lib.lua) until it is acknowledged or requeued; only while another
-- server holds the queue do a server's in-flight messages wait in a list of its own,
-- <prefix>flight:<cid>:<server id>.
-- Returns {{result per operation}, {bad keys}}; a drain result is {status, homes,
-- message...} with status 0 (unknown client or not the owner), 1, or 2 (another live
-- server still has in-flight messages for the client), and homes the client's other
-- homes, comma-separated (C only, else '').

-- The call's arguments and state, set by main (a function library keeps these between
-- calls: each call sets them all before use).
local prefix, me, now, dead_cutoff, sub_ttl, msg_ttl, clients, owners, bad

local function queue_of(cid) return prefix .. 'queue:' .. cid end
-- This server's own list of in-flight messages, used only while another server holds
-- the client's queue (the client moved; these wait for their write or requeue here).
local function mine_key(cid) return prefix .. 'flight:' .. cid .. ':' .. me end

local function forget_if_empty(cid, mine)
  if redis.call('LLEN', mine) == 0 then
    redis.call('SREM', prefix .. 'flights:' .. cid, me)
    redis.call('SREM', prefix .. 'flying:' .. me, cid)
  end
end

local function refresh_subscriptions(cid)
  local subs = prefix .. 'subs:' .. cid
  local channels = read_set(subs, bad)
  if #channels > 0 then
    redis.call('PEXPIRE', subs, sub_ttl)
    for _, channel in ipairs(channels) do
      redis.call('PEXPIRE', prefix .. 'chan:' .. channel, sub_ttl)
    end
  end
end

-- LTRIM the first `count` messages off a list; returns the list's key.
local function trim_list(key, count)
  if failed(redis.pcall('LTRIM', key, count, -1)) then
    bad[#bad + 1] = key
    redis.call('DEL', key)
  end
  return key
end

-- Drop the first `count` elements after the header and write the header (this server,
-- `left` in flight) in place of the last of them. A list shorter than the header says
-- (not made by these scripts) holds nothing worth keeping: it goes.
local function cut(queue, count, left)
  if failed(redis.pcall('LSET', queue, count, header(me, left))) then
    redis.call('DEL', queue)
    return
  end
  redis.call('LTRIM', queue, count, -1)
end

-- Make this server the queue's holder. Another live server's in-flight messages move to
-- a list of their own (they await its write or requeue there: status 2); a dead one's
-- are queued again where they are. Returns status, n, h for the queue now.
local function take_over(cid, queue, holder, n, h)
  local status = 1
  if holder then
    local flights = prefix .. 'flights:' .. cid
    if n > 0 and server_alive(prefix, holder, dead_cutoff) then
      local theirs = prefix .. 'flight:' .. cid .. ':' .. holder
      rpush_all(theirs, redis.call('LRANGE', queue, 1, n))
      redis.call('PEXPIRE', theirs, msg_ttl)
      redis.call('SADD', flights, holder)
      redis.call('SADD', prefix .. 'flying:' .. holder, cid)
      cut(queue, n, 0)
      status = 2
    else
      redis.call('LSET', queue, 0, header(me, 0))
      if redis.call('SISMEMBER', flights, holder) == 0 then
        redis.call('SREM', prefix .. 'flying:' .. holder, cid)
      end
    end
    redis.call('SADD', prefix .. 'flying:' .. me, cid)
    return status, 0, 1
  end
  return status, 0, 0
end

-- On a claim: messages left in flight on other servers (their own lists) come back if
-- those servers are dead; this server's own such list becomes its in-flight part again.
local function gather(cid, queue, n, h)
  local status = 1
  local flights = prefix .. 'flights:' .. cid
  for _, sid in ipairs(read_set(flights, bad)) do
    local theirs = prefix .. 'flight:' .. cid .. ':' .. sid
    if sid == me or not server_alive(prefix, sid, dead_cutoff) then
      local items = read_list(theirs, bad)
      redis.call('DEL', theirs)
      redis.call('SREM', flights, sid)
      if sid ~= me then redis.call('SREM', prefix .. 'flying:' .. sid, cid) end
      if #items > 0 then
        if sid == me then
          -- Handed out before any message now in flight: first in the in-flight part.
          if h == 1 then redis.call('LPOP', queue) end
          prepend_all(queue, items)
          n = n + #items
          redis.call('LPUSH', queue, header(me, n))
          h = 1
          redis.call('SADD', prefix .. 'flying:' .. me, cid)
        else
          insert_queued(queue, items, h + n, msg_ttl)
        end
      end
    else
      status = 2
    end
  end
  return status, n, h
end

-- Hand out what follows the in-flight part of a queue read whole (`items`; h, n as
-- read_head gives them), after cutting the first `acked` in-flight messages (written);
-- with `resend`, the rest of those in flight are sent again first.
local function hand_out(cid, queue, items, n, h, acked, resend, status, homes)
  if acked > n then acked = n end
  local out = {status, homes}
  if resend then
    for i = h + acked + 1, h + n do out[#out + 1] = items[i] end
  end
  local new = #items - h - n
  for i = h + n + 1, #items do out[#out + 1] = items[i] end
  if new < 0 then new = 0 end
  local left = n - acked + new
  if h == 1 then
    if acked > 0 then
      cut(queue, acked, left)
    elseif new > 0 then
      redis.call('LSET', queue, 0, header(me, left))
    end
  elseif new > 0 then
    redis.call('LPUSH', queue, header(me, left))
    redis.call('SADD', prefix .. 'flying:' .. me, cid)
  end
  return out
end

-- Drain the client's queue here (C, H or W; see the top of this file). `acked` of the
-- messages in flight here were written and go first.
local function drain(cid, mode, resend, acked)
  local queue = queue_of(cid)
  if mode == 'W' then
    -- The usual wake-up: this server holds the queue (a claim by another server would
    -- have taken its header, so it is still the owner too): one read, one write.
    local items = read_list(queue, bad)
    local holder, n, h = parse_head(items[1])
    if holder == me then return hand_out(cid, queue, items, n, h, acked, resend, 1, '') end
  end
  local claim, homes = mode ~= 'W', ''
  if mode == 'C' then
    if not redis.call('ZSCORE', clients, cid) then return {0, homes} end
    redis.call('ZADD', clients, 'XX', now, cid)
    local key = prefix .. 'homes:' .. cid
    homes = table.concat(read_set(key, bad), ',')
    if sub_ttl > 0 and homes ~= '' then redis.call('PEXPIRE', key, sub_ttl) end
  elseif mode == 'H' then
    -- Nothing of the client here (it was destroyed meanwhile): leave no owner entry.
    local subs = prefix .. 'subs:' .. cid
    if redis.call('EXISTS', subs, queue, prefix .. 'flights:' .. cid) == 0 then
      return {1, homes}
    end
  elseif redis.call('HGET', owners, cid) ~= me then
    return {0, homes}
  end
  if claim then
    redis.call('HSET', owners, cid, me)
    if sub_ttl > 0 then refresh_subscriptions(cid) end
  end
  local holder, n, h = read_head(queue, bad)
  local status = 1
  if holder ~= me then
    if acked > 0 then
      -- Written from this server's own list (the queue was taken over meanwhile).
      forget_if_empty(cid, trim_list(mine_key(cid), acked))
      acked = 0
    end
    status, n, h = take_over(cid, queue, holder, n, h)
  end
  if claim then
    local gathered
    gathered, n, h = gather(cid, queue, n, h)
    if gathered == 2 then status = 2 end
  end
  local items = read_list(queue, bad)
  if #items == 0 then h, n = 0, 0 end
  return hand_out(cid, queue, items, n, h, acked, resend, status, homes)
end

-- The first `count` messages in flight here were written: drop them.
local function ack(cid, count)
  local queue = queue_of(cid)
  local holder, n = read_head(queue, bad)
  if holder ~= me then
    forget_if_empty(cid, trim_list(mine_key(cid), count))
  elseif n > 0 then
    if count > n then count = n end
    cut(queue, count, n - count)
  end
  return 1
end

-- Drop these (corrupt) messages from those in flight here.
local function discard(cid, messages)
  local queue = queue_of(cid)
  local holder, n = read_head(queue, bad)
  if holder ~= me then
    local mine = mine_key(cid)
    for _, message in ipairs(messages) do redis.pcall('LREM', mine, 1, message) end
    forget_if_empty(cid, mine)
    return 1
  end
  for _, message in ipairs(messages) do
    n = n - redis.call('LREM', queue, 1, message)
  end
  if n < 0 then n = 0 end
  redis.call('LSET', queue, 0, header(me, n))
  return 1
end

-- These messages, the last handed out here, were not written: queued again, first.
-- Returns 1 if this server holds the client (it drains again), else 0.
local function requeue(cid, messages)
  local queue = queue_of(cid)
  local holder, n, h = read_head(queue, bad)
  if holder == me then
    -- They are the end of the in-flight part: it just ends before them.
    n = n - #messages
    if n < 0 then n = 0 end
    redis.call('LSET', queue, 0, header(me, n))
    redis.call('PEXPIRE', queue, msg_ttl)
  else
    discard(cid, messages)
    if redis.call('HEXISTS', owners, cid) == 0 then return 0 end
    if not insert_queued(queue, messages, h + n, msg_ttl) then
      bad[#bad + 1] = queue
      return 0
    end
  end
  local owner = redis.call('HGET', owners, cid)
  if owner == me then return 1 end
  if owner and worth_waking(prefix, owner, dead_cutoff) then
    redis.call(NOTIFY, prefix .. 'notify:' .. owner, cid)
  end
  return 0
end

local function run(code, cid, args)
  if code == 'C' or code == 'H' or code == 'W' then
    return drain(cid, code, args[1] == '1', tonumber(args[2] or '0'))
  elseif code == 'A' then
    return ack(cid, tonumber(args[1]))
  elseif code == 'R' then
    return requeue(cid, args)
  elseif code == 'D' then
    return discard(cid, args)
  end
  return nil
end

local function main(KEYS, ARGV)
  prefix, me, now = ARGV[1], ARGV[2], ARGV[3]
  dead_cutoff = tonumber(ARGV[4])
  sub_ttl, msg_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
  clients, owners = KEYS[1], prefix .. 'owner'
  bad = {}

  -- The partitions after the first are checked before anything is done.
  local k = 7
  while k <= #ARGV do
    local item = ARGV[k]
    if string.byte(item, 1) == 35 then
      k = k + 1
    else
      if item == 'P' and not served_here(ARGV[k + 1]) then return {-1} end
      k = k + 3 + tonumber(ARGV[k + 2])
    end
  end

  local results = {}
  local i = 7
  while i <= #ARGV do
    local item = ARGV[i]
    if string.byte(item, 1) == 35 then
      -- '#' then lines '<code><arguments>:<client id>': a run of C, H, W and A
      -- operations in one argument, so that a burst of them costs the caller one
      -- argument to encode. Arguments are digits joined by '+' (a drain's resend flag,
      -- then what it acknowledges).
      for code, arg, cid in string.gmatch(item, '(%u)([%d+]*):([^\n]+)') do
        local args = {}
        for part in string.gmatch(arg, '%d+') do args[#args + 1] = part end
        local result = run(code, cid, args)
        if result == nil then return redis.error_reply('unknown operation ' .. code) end
        results[#results + 1] = result
      end
      i = i + 1
    else
      local cid, count = ARGV[i + 1], tonumber(ARGV[i + 2])
      local args = {}
      for a = 1, count do args[a] = ARGV[i + 2 + a] end
      i = i + 3 + count
      if item == 'P' then
        prefix = cid
        clients, owners = prefix .. 'clients', prefix .. 'owner'
      else
        local result = run(item, cid, args)
        if result == nil then
          return redis.error_reply('unknown operation ' .. tostring(item))
        end
        results[#results + 1] = result
      end
    end
  end
  return {results, bad}
end
