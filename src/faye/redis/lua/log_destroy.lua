-- Forget a client: its record, subscriptions (and their routes), holder and cursor;
-- every server is told to close its connection.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, client id, cutoff (ms; '' = unconditional: with one, the
-- GC's, a client that pinged after it is left alone).
-- Returns {names it was subscribed to}, or false (unknown, or alive for the GC).
local function main(KEYS, ARGV)
  local p, me, cid, cutoff = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  local score = redis.call('ZSCORE', KEYS[1], cid)
  if not score then return false end
  if cutoff ~= '' and tonumber(score) > tonumber(cutoff) then return false end
  redis.call('ZREM', KEYS[1], cid)
  local subs = p .. 'subs:' .. cid
  local names = redis.call('HKEYS', subs)
  local owner = redis.call('HGET', p .. 'owner', cid)
  if owner then
    for _, name in ipairs(names) do route_add(p, name, owner, -1) end
  end
  redis.call('DEL', subs)
  redis.call('HDEL', p .. 'owner', cid)
  redis.call('HDEL', p .. 'cursors', cid)
  redis.call(NOTIFY, p .. 'close', me .. ' ' .. cid)
  return {names}
end
