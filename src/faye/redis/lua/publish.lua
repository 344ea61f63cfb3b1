-- Queue one message for every subscriber of any of the given channels, in the home
-- partition of the published channel (where wildcard subscriptions are kept too), and
-- wake the servers holding their connections (one PUBLISH per server).
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, alive cutoff (ms), dead-server cutoff (ms), max queue,
--       message ttl (ms), records, message, channel...
-- records '1': every client's record lives here (a single partition): clients idle past
-- the cutoff or unknown get nothing. Otherwise records live elsewhere and only clients
-- whose record is here are checked; the GC removes the others' subscriptions.
-- Returns {queued, {clients held by the calling server}, {bad keys}}.
local prefix, me = ARGV[1], ARGV[2]
local alive_cutoff, dead_cutoff = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_queue, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local records, message = ARGV[7] == '1', ARGV[8]
local bad = {}

-- The union of the channel sets: each client once, however many channels match. One
-- SUNION (most of the sets are usually missing); a key of another type makes it fail,
-- and then each set is read on its own so that only the bad key is skipped.
local names = {}
for i = 9, #ARGV do names[#names + 1] = prefix .. 'chan:' .. ARGV[i] end
local recipients = redis.pcall('SUNION', unpack(names))
if failed(recipients) then
  local seen = {}
  recipients = {}
  for _, name in ipairs(names) do
    for _, cid in ipairs(read_set(name, bad)) do
      if not seen[cid] then
        seen[cid] = true
        recipients[#recipients + 1] = cid
      end
    end
  end
end

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

local clients, owners = KEYS[1], prefix .. 'owner'
local queued, mine = 0, {}
local woken, servers = {}, {}
-- Liveness and owners of all recipients in two commands, not two per recipient.
local scores = read_all('ZMSCORE', clients, recipients)
local holders = read_all('HMGET', owners, recipients)
for i, cid in ipairs(recipients) do
  local score = scores[i]
  local alive
  if score then alive = tonumber(score) > alive_cutoff else alive = not records end
  if alive then
    local queue = prefix .. 'queue:' .. cid
    local length = redis.pcall('RPUSH', queue, message)
    if failed(length) then
      bad[#bad + 1] = queue
    else
      queued = queued + 1
      if length > max_queue then trim_queued(queue, length) end
      redis.call('PEXPIRE', queue, ttl)
      local owner = holders[i]
      if owner == me then
        mine[#mine + 1] = cid
      elseif owner then
        local list = woken[owner]
        if not list then
          list = {}
          woken[owner] = list
          servers[#servers + 1] = owner
        end
        list[#list + 1] = cid
      end
    end
  end
end

for _, sid in ipairs(servers) do
  if server_alive(prefix, sid, dead_cutoff) then
    redis.call(NOTIFY, prefix .. 'notify:' .. sid, table.concat(woken[sid], ','))
  end
end

return {queued, mine, bad}
