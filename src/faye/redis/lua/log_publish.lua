-- Append messages to the logs of the names that have subscribers and send each server
-- holding recipients one line per message: '<seq> <channel> <message>'.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, max queue, message ttl (ms), server id, token, token ttl (ms), then per
--       message: message, channel, n, n names (the channel's expansion: itself and the
--       patterns that may match it).
-- token: '' or the call's number among the server's publish calls; a call Redis ran
-- before (see replay.lua) does nothing and returns {-2} (the caller sent it again
-- without knowing that it had run).
-- Returns {messages that had recipients}.
local function main(KEYS, ARGV)
  local p, maxq, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
  if replayed(p .. 'token:' .. ARGV[4], ARGV[5], ARGV[6]) then return {-2} end
  local msgs, wanted, index = {}, {}, {}
  local i = 7
  while i <= #ARGV do
    local n = tonumber(ARGV[i + 2])
    local names = {}
    for k = 1, n do
      local name = ARGV[i + 2 + k]
      names[k] = name
      if not index[name] then
        wanted[#wanted + 1] = name
        index[name] = #wanted
      end
    end
    msgs[#msgs + 1] = {ARGV[i], ARGV[i + 1], names}
    i = i + 3 + n
  end
  if #wanted == 0 then return {0} end
  local routes = redis.call('HMGET', p .. 'servers_of', unpack(wanted))
  local lines, servers, seq, sent = {}, {}, nil, 0
  local cap = maxq + math.floor(maxq / 8)
  for k, m in ipairs(msgs) do
    local id = false
    for _, name in ipairs(m[3]) do
      local route = routes[index[name]]
      if route then
        if not id then
          if not seq then seq = next_seq(p, #msgs) - 1 end
          seq = seq + 1
          id = string.format('%d', seq)
          sent = sent + 1
        end
        local log = p .. 'log:' .. name
        if redis.call('RPUSH', log, id .. ' ' .. m[1]) > cap then
          redis.call('LTRIM', log, -maxq, -1)
        end
        redis.call('PEXPIRE', log, ttl)
        for sid in string.gmatch(route, '[^,]+') do
          local mine = lines[sid]
          if not mine then
            mine = {}
            lines[sid] = mine
            servers[#servers + 1] = sid
          end
          if mine[#mine] ~= k then mine[#mine + 1] = k end
        end
      end
    end
    m[4] = id
  end
  for _, sid in ipairs(servers) do
    local text = {}
    for _, k in ipairs(lines[sid]) do
      local m = msgs[k]
      text[#text + 1] = m[4] .. ' ' .. m[2] .. ' ' .. m[1]
    end
    redis.call(NOTIFY, p .. 'w:' .. sid, table.concat(text, '\n'))
  end
  return {sent}
end
