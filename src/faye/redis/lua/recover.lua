-- A dead server's in-flight messages are queued again, first, and the servers now
-- holding those clients are woken.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, dead server id, dead-server cutoff (ms), message ttl (ms).
-- Returns {messages queued again (-1 if the server is alive after all), {bad keys}}.
local function main(KEYS, ARGV)
  local prefix, sid = ARGV[1], ARGV[2]
  local dead_cutoff, msg_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
  local bad = {}
  if server_alive(prefix, sid, dead_cutoff) then return {-1, bad} end
  local flying, owners = prefix .. 'flying:' .. sid, prefix .. 'owner'
  local moved = 0
  for _, cid in ipairs(read_set(flying, bad)) do
    local queue = prefix .. 'queue:' .. cid
    local back = 0
    local holder, n, h = read_head(queue, bad)
    if holder == sid then
      -- Its queue: the in-flight part just ends, where it is. The index keeps naming the
      -- client until another server takes the queue over (if this one was only presumed
      -- dead, its next messages in flight there must still be found).
      if n > 0 then
        redis.call('LSET', queue, 0, header(sid, 0))
        back, n = n, 0
      end
    else
      redis.call('SREM', flying, cid)
    end
    -- A list of its own (the queue had been taken over by another server).
    local theirs = prefix .. 'flight:' .. cid .. ':' .. sid
    local items = read_list(theirs, bad)
    redis.call('DEL', theirs)
    redis.call('SREM', prefix .. 'flights:' .. cid, sid)
    if #items > 0 and redis.call('HEXISTS', owners, cid) == 1 then
      if insert_queued(queue, items, h + n, msg_ttl) then
        back = back + #items
      else
        bad[#bad + 1] = queue
      end
    end
    if back > 0 then
      moved = moved + back
      local owner = redis.call('HGET', owners, cid)
      if owner and owner ~= sid and server_alive(prefix, owner, dead_cutoff) then
        redis.call(NOTIFY, prefix .. 'notify:' .. owner, cid)
      end
    end
  end
  redis.call('ZREM', prefix .. 'servers', sid)
  return {moved, bad}
end
