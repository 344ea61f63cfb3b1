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
-- A drained message moves to the in-flight list <prefix>flight:<cid>:<server id> until
-- it is acknowledged or requeued.
-- Returns {{result per operation}, {bad keys}}; a drain result is {status, homes,
-- message...} with status 0 (unknown client or not the owner), 1, or 2 (another live
-- server still has in-flight messages for the client), and homes the client's other
-- homes, comma-separated (C only, else '').
local prefix, me, now = ARGV[1], ARGV[2], ARGV[3]
local dead_cutoff = tonumber(ARGV[4])
local sub_ttl, msg_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local clients, owners = KEYS[1], prefix .. 'owner'
local bad = {}

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

local function drain(cid, mode, resend)
  local claim, homes = mode ~= 'W', ''
  if mode == 'C' then
    if not redis.call('ZSCORE', clients, cid) then return {0, homes} end
    redis.call('ZADD', clients, 'XX', now, cid)
    local key = prefix .. 'homes:' .. cid
    homes = table.concat(read_set(key, bad), ',')
    if sub_ttl > 0 and homes ~= '' then redis.call('PEXPIRE', key, sub_ttl) end
  elseif mode == 'H' then
    -- Nothing of the client here (it was destroyed meanwhile): leave no owner entry.
    local subs, queue = prefix .. 'subs:' .. cid, prefix .. 'queue:' .. cid
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
  local mine = mine_key(cid)
  local out = {}
  if resend then out = read_list(mine, bad) end
  local kept = #out
  local status = 1
  if claim then
    local flights = prefix .. 'flights:' .. cid
    for _, sid in ipairs(read_set(flights, bad)) do
      if sid ~= me then
        if server_alive(prefix, sid, dead_cutoff) then
          status = 2
        else
          local theirs = prefix .. 'flight:' .. cid .. ':' .. sid
          append(out, read_list(theirs, bad))
          redis.call('DEL', theirs)
          redis.call('SREM', flights, sid)
          redis.call('SREM', prefix .. 'flying:' .. sid, cid)
        end
      end
    end
  end
  local queue = prefix .. 'queue:' .. cid
  if #out == 0 then
    -- Nothing in flight here (the usual case): the queue becomes the in-flight list
    -- whole, with the TTL it has, instead of being copied, deleted and expired.
    if redis.pcall('RENAMENX', queue, mine) == 1 then
      redis.call('SADD', prefix .. 'flights:' .. cid, me)
      redis.call('SADD', prefix .. 'flying:' .. me, cid)
      return append({status, homes}, read_list(mine, bad))
    end
  end
  append(out, read_list(queue, bad))
  redis.call('DEL', queue)
  if #out > kept then
    if rpush_all(mine, out, kept + 1) == #out - kept then
      -- A new in-flight list: index it (an existing one is indexed already).
      redis.call('SADD', prefix .. 'flights:' .. cid, me)
      redis.call('SADD', prefix .. 'flying:' .. me, cid)
    end
    redis.call('PEXPIRE', mine, msg_ttl)
  end
  return append({status, homes}, out)
end

-- Drop the first `count` in-flight messages (written); returns the list's key.
local function trim(cid, count)
  local mine = mine_key(cid)
  if failed(redis.pcall('LTRIM', mine, count, -1)) then
    bad[#bad + 1] = mine
    redis.call('DEL', mine)
  end
  return mine
end

local function ack(cid, count)
  forget_if_empty(cid, trim(cid, count))
  return 1
end

-- A drain carrying the acknowledgement of the client's previous messages: trim first,
-- and keep the in-flight index unless the drain leaves the list empty (a drain that
-- moves messages in would only add it back).
local function ack_and_drain(cid, mode, resend, acked)
  if acked > 0 then trim(cid, acked) end
  local result = drain(cid, mode, resend)
  if acked > 0 and #result == 2 then forget_if_empty(cid, mine_key(cid)) end
  return result
end

local function discard(cid, messages)
  local mine = mine_key(cid)
  for _, message in ipairs(messages) do redis.pcall('LREM', mine, 1, message) end
  forget_if_empty(cid, mine)
  return 1
end

local function requeue(cid, messages)
  discard(cid, messages)
  if redis.call('HEXISTS', owners, cid) == 0 then return 0 end
  local queue = prefix .. 'queue:' .. cid
  if not prepend_all(queue, messages) then
    bad[#bad + 1] = queue
    return 0
  end
  redis.call('PEXPIRE', queue, msg_ttl)
  local owner = redis.call('HGET', owners, cid)
  if owner == me then return 1 end
  if owner and server_alive(prefix, owner, dead_cutoff) then
    redis.call(NOTIFY, prefix .. 'notify:' .. owner, cid)
  end
  return 0
end

local function run(code, cid, args)
  if code == 'C' or code == 'H' or code == 'W' then
    return ack_and_drain(cid, code, args[1] == '1', tonumber(args[2] or '0'))
  elseif code == 'A' then
    return ack(cid, tonumber(args[1]))
  elseif code == 'R' then
    return requeue(cid, args)
  elseif code == 'D' then
    return discard(cid, args)
  end
  return nil
end

local results = {}
local i = 7
while i <= #ARGV do
  local item = ARGV[i]
  if string.byte(item, 1) == 35 then
    -- '#' then lines '<code><arguments>:<client id>': a run of C, H, W and A operations in
    -- one argument, so that a burst of them costs the caller one argument to encode.
    -- Arguments are digits joined by '+' (a drain's resend flag, then what it acknowledges).
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
    for k = 1, count do args[k] = ARGV[i + 2 + k] end
    i = i + 3 + count
    local result = run(item, cid, args)
    if result == nil then return redis.error_reply('unknown operation ' .. tostring(item)) end
    results[#results + 1] = result
  end
end
return {results, bad}
