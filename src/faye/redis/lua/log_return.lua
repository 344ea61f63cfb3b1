-- A server gives back what it recorded as handed out to a client and never wrote (the
-- connect asking for it went away, its reply failed, or Redis failed under the claim).
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, client id, '<acked>/<handed>' (what this server knows
--       written and handed out), the sequence numbers not written (comma-separated).
-- Still held here: its cursor is put right. Held elsewhere: the holder is told
-- ('r <cid> <seqs>'), and sends again those its take-over skipped. Returns 1 (put
-- right), 2 (holder told) or 0 (the client is gone).
local function main(KEYS, ARGV)
  local p, me, cid, record, seqs = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local owner = redis.call('HGET', p .. 'owner', cid)
  if not owner then return 0 end
  if owner == me then
    redis.call('HSET', p .. 'cursors', cid, record .. '/' .. me)
    return 1
  end
  if seqs ~= '' then redis.call(NOTIFY, p .. 'w:' .. owner, 'r ' .. cid .. ' ' .. seqs) end
  return 2
end
