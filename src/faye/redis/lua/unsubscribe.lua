-- KEYS[1] = <prefix>clients; ARGV: prefix, client id, channel.
-- Returns {1 if the subscription existed else 0, {bad keys}}.
local function main(KEYS, ARGV)
  local prefix, cid, channel = ARGV[1], ARGV[2], ARGV[3]
  local bad = {}
  local subs, members = prefix .. 'subs:' .. cid, prefix .. 'chan:' .. channel
  local removed = redis.pcall('SREM', subs, channel)
  if failed(removed) then
    bad[#bad + 1] = subs
    removed = 0
  end
  if failed(redis.pcall('SREM', members, cid)) then bad[#bad + 1] = members end
  return {removed, bad}
end
