-- Record how far clients held here were handed out and written.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, then client id, '<acked>/<handed>/<server id>' pairs.
-- Only clients this server still holds are written (one that moved meanwhile has its
-- new holder's cursor). Returns how many were written.
local function main(KEYS, ARGV)
  local p, me = ARGV[1], ARGV[2]
  local cids = {}
  for i = 3, #ARGV, 2 do cids[#cids + 1] = ARGV[i] end
  if #cids == 0 then return 0 end
  local owners = redis.call('HMGET', p .. 'owner', unpack(cids))
  local out = {}
  for k, cid in ipairs(cids) do
    if owners[k] == me then
      out[#out + 1] = cid
      out[#out + 1] = ARGV[2 + 2 * k]
    end
  end
  if #out > 0 then redis.call('HSET', p .. 'cursors', unpack(out)) end
  return #out / 2
end
