-- Forget a client in one partition.
-- KEYS[1] = <prefix>clients
-- ARGV: prefix, server id, client id, cutoff (ms; '' = unconditional), record,
--       this partition's number.
-- record '1': the partition holds the client's record. Unknown clients, and with a
-- cutoff (the GC) clients that pinged after it, are left alone (returns false); else the
-- record goes, every server is told to close the client's connection, and the other
-- homes are returned for the caller to clean; until it reports them clean they stay in
-- the `dying` hash, where the GC finds them if the caller fails. Without it, the
-- partition is one of the client's homes and is cleaned unconditionally.
-- Returns {{channels subscribed here}, {other homes}, {bad keys}}.
local function main(KEYS, ARGV)
  local prefix, me, cid, cutoff, record = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
  local bad, homes = {}, {}
  if record then
    local score = redis.call('ZSCORE', KEYS[1], cid)
    if not score then return false end
    if cutoff ~= '' and tonumber(score) > tonumber(cutoff) then return false end
    local key = prefix .. 'homes:' .. cid
    homes = read_set(key, bad)
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], cid)
    for _, home in ipairs(homes) do
      if home ~= ARGV[6] then
        redis.call('HSET', prefix .. 'dying', cid, table.concat(homes, ','))
        break
      end
    end
  end
  local channels = drop_home(prefix, cid, bad)
  if record then redis.call(NOTIFY, prefix .. 'close', me .. ' ' .. cid) end
  return {channels, homes, bad}
end
