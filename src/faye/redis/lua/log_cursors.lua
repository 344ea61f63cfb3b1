-- Record how far clients held here were handed out and written, and cut the logs only
-- they read back to what they have not written.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, then per client: client id, '<acked>/<handed>/<server id>',
--       acked (the sequence number written up to), its subscribed names (comma-
--       separated, or '').
-- Only clients this server still holds are written (one that moved meanwhile has its
-- new holder's cursor). A log whose only subscriber is the client (its route: this
-- server, one client) holds nothing another client or server will read before acked:
-- once it is longer than 32 entries, up to 256 of those are cut per call, so that a
-- point-to-point channel's log holds about what its subscriber has not written, as a
-- queue would. Returns how many clients were written.
local function main(KEYS, ARGV)
  local p, me = ARGV[1], ARGV[2]
  local cids = {}
  for i = 3, #ARGV, 4 do cids[#cids + 1] = ARGV[i] end
  if #cids == 0 then return 0 end
  local owners = redis.call('HMGET', p .. 'owner', unpack(cids))
  local out = {}
  for k, cid in ipairs(cids) do
    local i = 3 + 4 * (k - 1)
    if owners[k] == me then
      out[#out + 1] = cid
      out[#out + 1] = ARGV[i + 1]
      local acked = tonumber(ARGV[i + 2]) or 0
      for name in string.gmatch(ARGV[i + 3], '[^,]+') do
        local log = p .. 'log:' .. name
        if redis.call('LLEN', log) > 32 then
          local route = redis.call('HGETALL', p .. 'route:' .. name)
          if #route == 2 and route[1] == me and route[2] == '1' then
            local n = 0
            for _, e in ipairs(redis.call('LRANGE', log, 0, 255)) do
              if tonumber(string.match(e, '^%d+')) > acked then break end
              n = n + 1
            end
            if n > 0 then redis.call('LTRIM', log, n, -1) end
          end
        end
      end
    end
  end
  if #out > 0 then redis.call('HSET', p .. 'cursors', unpack(out)) end
  return #out / 2
end
