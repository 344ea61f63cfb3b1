-- KEYS[1] = <prefix>clients; ARGV: prefix, server id, client id, name.
-- The holder is told ('u <cid> <name>'). Returns 1 if the subscription existed.
local function main(KEYS, ARGV)
  local p, cid, name = ARGV[1], ARGV[3], ARGV[4]
  if redis.call('HDEL', p .. 'subs:' .. cid, name) == 0 then return 0 end
  local owner = redis.call('HGET', p .. 'owner', cid)
  if owner then
    route_add(p, name, owner, -1)
    redis.call(NOTIFY, p .. 'w:' .. owner, 'u ' .. cid .. ' ' .. name)
  end
  return 1
end
