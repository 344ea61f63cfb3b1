-- Subscribe a client to a channel or pattern; it receives what is published from now.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, client id, name, subscription ttl (ms; 0: none).
-- A client nobody holds yet is held by the subscribing server. The holder is told
-- ('s <cid> <seq> <name>' on its w: channel), in order with the messages it receives.
-- Returns 1 new, 0 existed, -1 unknown client.
local function main(KEYS, ARGV)
  local p, me, cid, name, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
  if not redis.call('ZSCORE', KEYS[1], cid) then return -1 end
  local start = string.format('%d', current_seq(p))
  local subs = p .. 'subs:' .. cid
  local added = redis.call('HSETNX', subs, name, start)
  if ttl > 0 then redis.call('PEXPIRE', subs, ttl) end
  if added == 0 then return 0 end
  local owner = redis.call('HGET', p .. 'owner', cid)
  if not owner then
    owner = me
    redis.call('HSET', p .. 'owner', cid, me)
  end
  route_add(p, name, owner, 1)
  redis.call(NOTIFY, p .. 'w:' .. owner, 's ' .. cid .. ' ' .. start .. ' ' .. name)
  return 1
end
