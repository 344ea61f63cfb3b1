-- Subscribe a client to a channel, in one partition.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, client id, channel, ttl (ms, 0 = none), record, here, owner, homes...
--   record '1': the partition holds the client's record: an unknown client subscribes to
--               nothing; the homes (partition numbers) join the client's set of homes,
--               and its owner is returned for the other homes.
--   here '1':   the channel lives (also) in this partition: the subscription is added.
--   owner:      for a home that is not the record partition, the server holding the
--               client's connection ('' = none), kept unless the home knows one already.
-- Returns {1 if newly subscribed here else 0 (-1: unknown client), owner or false,
-- {bad keys}}.
local function main(KEYS, ARGV)
  local prefix, cid, channel, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
  local record, here, owner = ARGV[5] == '1', ARGV[6] == '1', ARGV[7]
  local bad = {}
  if record then
    if not redis.call('ZSCORE', KEYS[1], cid) then return {-1, false, bad} end
    if #ARGV > 7 then
      local homes = prefix .. 'homes:' .. cid
      add_to_set(homes, {unpack(ARGV, 8)}, bad)
      if ttl > 0 then redis.call('PEXPIRE', homes, ttl) end
    end
    owner = redis.call('HGET', prefix .. 'owner', cid)
  elseif owner ~= '' then
    redis.call('HSETNX', prefix .. 'owner', cid, owner)
  end
  local added = 0
  if here then
    local subs, members = prefix .. 'subs:' .. cid, prefix .. 'chan:' .. channel
    added = add_to_set(subs, {channel}, bad)
    add_to_set(members, {cid}, bad)
    if ttl > 0 then
      redis.call('PEXPIRE', subs, ttl)
      redis.call('PEXPIRE', members, ttl)
    end
  end
  return {added, owner, bad}
end
