-- Queue messages for every subscriber of any of their channels, each in the home
-- partition of its published channel (where wildcard subscriptions are kept too), and
-- wake the servers holding those subscribers: one PUBLISH per server for the whole call,
-- on the first partition's notify channel, naming every client to drain: '<cid>' for
-- the first partition, '<partition>/<cid>' for the others.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, alive cutoff (ms), dead-server cutoff (ms), max queue,
--       message ttl (ms), records, token, token ttl (ms), then items, each either
--         'M', message, channel count, channel...   (a message, in the current partition)
--         'P', prefix, number                        (the next messages' partition)
-- records '1': every client's record lives here (a single partition): clients idle past
-- the cutoff or unknown get nothing. Otherwise most records live elsewhere (1 in
-- `partitions` here): liveness is not read at all, and the GC removes dead clients'
-- subscriptions.
-- token: '' or the call's number among the server's publish calls; a call Redis ran
-- before (see replay.lua) does nothing and returns {-2}: the caller sent it again after
-- a failure without knowing whether Redis had run it, and it had.
-- Returns {{{queued, {clients held by the calling server}} per message}, {bad keys}},
-- or {-1} when a partition named by P is not on this node (a Cluster resharded): then
-- nothing was done, and the caller sends each partition's messages on its own.

-- The call's arguments and state, set by main (a function library keeps these between
-- calls: each call sets them all before use).
local prefix, me, alive_cutoff, dead_cutoff, max_queue, ttl, records, bad
-- Clients to wake, per server holding them (each once), as the notification names them.
local woken, servers, seen, tag

-- Keep the newest max_queue messages not handed out yet (the header and the messages
-- in flight stay).
local function trim_queued(queue, length)
  local _, n, h = read_head(queue, bad)
  local drop = length - h - n - max_queue
  if drop <= 0 then return end
  local head = {}
  if h + n > 0 then head = redis.call('LPOP', queue, h + n) end
  redis.call('LTRIM', queue, drop, -1)
  prepend_all(queue, head)
end

local function publish(message, channels)
  -- The union of the channel sets: each client once, however many channels match. One
  -- SUNION (most of the sets are usually missing); a key of another type makes it fail,
  -- and then each set is read on its own so that only the bad key is skipped.
  local names = {}
  for k, channel in ipairs(channels) do names[k] = prefix .. 'chan:' .. channel end
  local recipients = redis.pcall('SUNION', unpack(names))
  if failed(recipients) then
    local once = {}
    recipients = {}
    for _, name in ipairs(names) do
      for _, cid in ipairs(read_set(name, bad)) do
        if not once[cid] then
          once[cid] = true
          recipients[#recipients + 1] = cid
        end
      end
    end
  end
  local queued, mine = 0, {}
  -- Liveness and owners of all recipients in two commands, not two per recipient.
  local scores = {}
  if records then scores = read_all('ZMSCORE', prefix .. 'clients', recipients) end
  local holders = read_all('HMGET', prefix .. 'owner', recipients)
  for k, cid in ipairs(recipients) do
    local score = scores[k]
    local alive
    if not records then
      alive = true
    elseif score then
      alive = tonumber(score) > alive_cutoff
    end
    if alive then
      local queue = prefix .. 'queue:' .. cid
      local length = redis.pcall('RPUSH', queue, message)
      if failed(length) then
        bad[#bad + 1] = queue
      else
        queued = queued + 1
        if length > max_queue then trim_queued(queue, length) end
        redis.call('PEXPIRE', queue, ttl)
        local owner = holders[k]
        if owner == me then
          mine[#mine + 1] = cid
        elseif owner then
          local list = woken[owner]
          if not list then
            list = {}
            woken[owner] = list
            servers[#servers + 1] = owner
            seen[owner] = {}
          end
          local entry = tag .. cid
          if not seen[owner][entry] then
            seen[owner][entry] = true
            list[#list + 1] = entry
          end
        end
      end
    end
  end
  return {queued, mine}
end

local function main(KEYS, ARGV)
  prefix, me = ARGV[1], ARGV[2]
  alive_cutoff, dead_cutoff = tonumber(ARGV[3]), tonumber(ARGV[4])
  max_queue, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
  records = ARGV[7] == '1'
  bad = {}
  local i = 10
  while i <= #ARGV do
    if ARGV[i] == 'P' then
      if not served_here(ARGV[i + 1]) then return {-1} end
      i = i + 3
    else
      i = i + 3 + tonumber(ARGV[i + 2])
    end
  end
  if replayed(prefix .. 'published:' .. me, ARGV[8], ARGV[9]) then return {-2} end

  woken, servers, seen, tag = {}, {}, {}, ''
  local first, results = prefix, {}
  i = 10
  while i <= #ARGV do
    if ARGV[i] == 'P' then
      prefix, tag = ARGV[i + 1], ARGV[i + 2] .. '/'
      i = i + 3
    else
      local count = tonumber(ARGV[i + 2])
      results[#results + 1] = publish(ARGV[i + 1], {unpack(ARGV, i + 3, i + 2 + count)})
      i = i + 3 + count
    end
  end
  for _, sid in ipairs(servers) do
    if worth_waking(first, sid, dead_cutoff) then
      redis.call(NOTIFY, first .. 'notify:' .. sid, table.concat(woken[sid], ','))
    end
  end
  return {results, bad}
end
