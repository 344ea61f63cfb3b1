-- A dead server's in-flight messages go back to the head of their clients' queues,
-- and the servers now holding those clients are woken.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, dead server id, dead-server cutoff (ms), message ttl (ms).
-- Returns {messages moved back (-1 if the server is alive after all), {bad keys}}.
local prefix, sid = ARGV[1], ARGV[2]
local dead_cutoff, msg_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local bad = {}
if server_alive(prefix, sid, dead_cutoff) then return {-1, bad} end
local flying = prefix .. 'flying:' .. sid
local moved = 0
for _, cid in ipairs(read_set(flying, bad)) do
  local theirs = prefix .. 'flight:' .. cid .. ':' .. sid
  local items = read_list(theirs, bad)
  redis.call('DEL', theirs)
  redis.call('SREM', prefix .. 'flights:' .. cid, sid)
  if #items > 0 and redis.call('HEXISTS', prefix .. 'owner', cid) == 1 then
    local queue = prefix .. 'queue:' .. cid
    if prepend_all(queue, items) then
      redis.call('PEXPIRE', queue, msg_ttl)
      moved = moved + #items
      local owner = redis.call('HGET', prefix .. 'owner', cid)
      if owner and owner ~= sid and server_alive(prefix, owner, dead_cutoff) then
        redis.call(NOTIFY, prefix .. 'notify:' .. owner, cid)
      end
    else
      bad[#bad + 1] = queue
    end
  end
end
redis.call('DEL', flying)
redis.call('ZREM', prefix .. 'servers', sid)
return {moved, bad}
