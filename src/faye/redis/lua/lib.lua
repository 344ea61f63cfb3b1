-- Helpers prepended to every script of the faye Redis engine (one slot per script:
-- every key is built from the partition prefix passed as ARGV[1]).

-- How servers are woken: PUBLISH, or SPUBLISH (sharded pub/sub) on a Redis Cluster,
-- where the notify and close channels carry the partition's hash tag like the keys.
local NOTIFY = 'PUBLISH'

local function failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

local function append(dst, src)
  for i = 1, #src do dst[#dst + 1] = src[i] end
  return dst
end

-- RPUSH items[from..] in chunks small enough for unpack(); returns the new length.
local function rpush_all(key, items, from)
  local i, length = from or 1, 0
  while i <= #items do
    local j = math.min(i + 999, #items)
    length = redis.call('RPUSH', key, unpack(items, i, j))
    i = j + 1
  end
  return length
end

-- Put items back at the head of a list, keeping their order. Returns false on a bad key.
local function prepend_all(key, items)
  for i = #items, 1, -1 do
    if failed(redis.pcall('LPUSH', key, items[i])) then return false end
  end
  return true
end

local function server_alive(prefix, sid, dead_cutoff)
  local beat = redis.call('ZSCORE', prefix .. 'servers', sid)
  return beat and tonumber(beat) > dead_cutoff
end

-- LRANGE a list; a key of another type is reported in `bad` and deleted.
local function read_list(key, bad)
  local got = redis.pcall('LRANGE', key, 0, -1)
  if failed(got) then
    bad[#bad + 1] = key
    redis.call('DEL', key)
    return {}
  end
  return got
end

-- SMEMBERS a set; a key of another type is reported in `bad` (and left alone).
local function read_set(key, bad)
  local got = redis.pcall('SMEMBERS', key)
  if failed(got) then
    bad[#bad + 1] = key
    return {}
  end
  return got
end

