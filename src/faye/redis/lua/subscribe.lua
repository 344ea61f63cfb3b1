-- KEYS[1] = <prefix>clients; ARGV: prefix, client id, channel, ttl (ms, 0 = none).
-- Returns {1 if newly subscribed else 0, {bad keys}}; unknown clients subscribe to nothing.
local prefix, cid, channel, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local bad = {}
if not redis.call('ZSCORE', KEYS[1], cid) then return {0, bad} end
local subs, members = prefix .. 'subs:' .. cid, prefix .. 'chan:' .. channel
local added = redis.pcall('SADD', subs, channel)
if failed(added) then
  bad[#bad + 1] = subs
  redis.call('DEL', subs)
  added = redis.call('SADD', subs, channel)
end
if failed(redis.pcall('SADD', members, cid)) then
  bad[#bad + 1] = members
  redis.call('DEL', members)
  redis.call('SADD', members, cid)
end
if ttl > 0 then
  redis.call('PEXPIRE', subs, ttl)
  redis.call('PEXPIRE', members, ttl)
end
return {added, bad}
