-- Telling a publish call sent again from a new one. A server numbers its publish calls
-- and has one in flight at a time, so one key per server, holding the number of its
-- latest call Redis ran, is enough: a call whose number is not above it ran already
-- (its answer was lost with the connection) and must do nothing. The key expires
-- `ttl` ms after the server's last call: a retry never comes later than that.
-- number: '' (not to be retried: nothing recorded) or the call's number.
local function replayed(key, number, ttl)
  if number == '' then return false end
  local n = tonumber(number)
  local last = tonumber(redis.call('SET', key, number, 'PX', ttl, 'GET') or '0')
  if last and last >= n then
    -- A call abandoned after its bound may run after a later one: keep the later.
    if last > n then redis.call('SET', key, string.format('%d', last), 'PX', ttl) end
    return true
  end
  return false
end
