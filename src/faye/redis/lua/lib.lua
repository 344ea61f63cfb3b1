-- Helpers prepended to every script of the faye Redis engine (one slot per script:
-- every key is built from the partition prefix passed as ARGV[1]).
--
-- A partition is either a client's *record* partition (its liveness entry, owner and
-- the set of its homes) or one of its *homes*: the partitions of the channels it is
-- subscribed to, which hold its subscriptions there, its queue of messages published
-- on those channels, its in-flight lists and a copy of its owner. A publish runs in
-- the home of its channel only; wildcard subscriptions are kept in every partition.

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

-- A multi-member read (ZMSCORE, HMGET) of `members` of `key`, in chunks small enough
-- for unpack(); returns the answers in order (false where there is none).
local function read_all(command, key, members)
  local out, i = {}, 1
  while i <= #members do
    local j = math.min(i + 999, #members)
    local got = redis.call(command, key, unpack(members, i, j))
    for k = 1, #got do out[#out + 1] = got[k] end
    i = j + 1
  end
  return out
end

-- Put items back at the head of a list, keeping their order. Returns false on a bad key.
local function prepend_all(key, items)
  for i = #items, 1, -1 do
    if failed(redis.pcall('LPUSH', key, items[i])) then return false end
  end
  return true
end

-- Whether this node serves the partition `prefix` (a call serving several partitions
-- checks before it does anything: a key of a slot served elsewhere fails to read).
-- Off Cluster every key is local.
local function served_here(prefix)
  return NOTIFY ~= 'SPUBLISH' or not failed(redis.pcall('EXISTS', prefix .. 'clients'))
end

local function server_alive(prefix, sid, dead_cutoff)
  local beat = redis.call('ZSCORE', prefix .. 'servers', sid)
  return beat and tonumber(beat) > dead_cutoff
end

-- Whether a notification to `sid` may be of use: not for a server known to be dead. A
-- server with no heartbeat entry at all is woken too: after Redis lost its data, the
-- owners it names were written since, by live servers, and their next heartbeat may be
-- a couple of seconds away.
local function worth_waking(prefix, sid, dead_cutoff)
  local beat = redis.call('ZSCORE', prefix .. 'servers', sid)
  return not beat or tonumber(beat) > dead_cutoff
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


-- SADD members to a set, replacing a key of another type (reported in `bad`).
-- Returns how many were added.
local function add_to_set(key, members, bad)
  local added = redis.pcall('SADD', key, unpack(members))
  if failed(added) then
    bad[#bad + 1] = key
    redis.call('DEL', key)
    added = redis.call('SADD', key, unpack(members))
  end
  return added
end

-- A client's queue in a home holds, in order: an optional header '|<server id>|<n>'
-- naming the server that holds the next n messages in flight, those n messages, then
-- the messages not handed out yet. The list outlives its deliveries (a header is left
-- when everything is acknowledged), so that a delivery creates and deletes no key.

local HEADER = 124 -- '|': messages are JSON objects, so they never start with it

local function header(sid, n) return '|' .. sid .. '|' .. n end

-- The holder, in-flight count and 1 if `first` (a queue's first element) is a header;
-- else nil, 0, 0.
local function parse_head(first)
  if first and string.byte(first, 1) == HEADER then
    local sid, n = string.match(first, '^|(.+)|(%d+)$')
    if sid then return sid, tonumber(n), 1 end
  end
  return nil, 0, 0
end

-- parse_head of a queue's first element. A key of another type is reported in `bad`
-- and deleted.
local function read_head(queue, bad)
  local first = redis.pcall('LINDEX', queue, 0)
  if failed(first) then
    bad[#bad + 1] = queue
    redis.call('DEL', queue)
    return nil, 0, 0
  end
  return parse_head(first)
end

-- Put items at the start of the queued part, behind the header and the in-flight
-- messages (`before` = how many elements those are). Returns false on a bad key.
local function insert_queued(queue, items, before, ttl)
  local head = {}
  if before > 0 then
    head = redis.call('LPOP', queue, before)
    if not head then head = {} end
  end
  if not prepend_all(queue, items) or not prepend_all(queue, head) then return false end
  redis.call('PEXPIRE', queue, ttl)
  return true
end

-- Forget a client in one of its homes: its subscriptions there, its queue, in-flight
-- lists and index entries, and its owner entry. Returns the channels it was subscribed
-- to there.
local function drop_home(prefix, cid, bad)
  local subs = prefix .. 'subs:' .. cid
  local channels = read_set(subs, bad)
  for _, channel in ipairs(channels) do
    local members = prefix .. 'chan:' .. channel
    if failed(redis.pcall('SREM', members, cid)) then bad[#bad + 1] = members end
  end
  local queue = prefix .. 'queue:' .. cid
  local holder = read_head(queue, bad)
  if holder then redis.call('SREM', prefix .. 'flying:' .. holder, cid) end
  local flights = prefix .. 'flights:' .. cid
  for _, sid in ipairs(read_set(flights, bad)) do
    redis.call('DEL', prefix .. 'flight:' .. cid .. ':' .. sid)
    redis.call('SREM', prefix .. 'flying:' .. sid, cid)
  end
  redis.call('DEL', subs, queue, flights)
  redis.call('HDEL', prefix .. 'owner', cid)
  return channels
end
