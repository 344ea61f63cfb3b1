-- Forget a client: its subscriptions, queue, in-flight lists, owner entry and liveness,
-- then tell every server to close its connection.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, client id, cutoff (ms; '' = unconditional). With a cutoff
-- (the GC) a client that pinged after the cutoff is left alone.
-- Returns false if nothing was destroyed, else {{channels}, {bad keys}}.
local prefix, me, cid, cutoff = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local score = redis.call('ZSCORE', KEYS[1], cid)
if not score then return false end
if cutoff ~= '' and tonumber(score) > tonumber(cutoff) then return false end
local bad = {}
local subs = prefix .. 'subs:' .. cid
local channels = read_set(subs, bad)
for _, channel in ipairs(channels) do
  local members = prefix .. 'chan:' .. channel
  if failed(redis.pcall('SREM', members, cid)) then bad[#bad + 1] = members end
end
local flights = prefix .. 'flights:' .. cid
for _, sid in ipairs(read_set(flights, bad)) do
  redis.call('DEL', prefix .. 'flight:' .. cid .. ':' .. sid)
  redis.call('SREM', prefix .. 'flying:' .. sid, cid)
end
redis.call('DEL', subs, prefix .. 'queue:' .. cid, flights)
redis.call('HDEL', prefix .. 'owner', cid)
redis.call('ZREM', KEYS[1], cid)
redis.call(NOTIFY, prefix .. 'close', me .. ' ' .. cid)
return {channels, bad}
