-- Rotor: read a channel's stream position and (part of) its history.
--
-- KEYS[1]  history stream
-- KEYS[2]  stream metadata hash ("s" = top offset, "e" = epoch)
-- ARGV[1]  since offset, exclusive ("" = from the start, or from the end when reverse)
-- ARGV[2]  epoch the since offset belongs to ("" = unknown). An offset of another epoch says
--          nothing about this stream, so it then reads as "from the start".
-- ARGV[3]  limit: -1 = all, 0 = position only
-- ARGV[4]  "1" = newest first (publications before since), "0" = oldest first (after since)
-- ARGV[5]  epoch to use if the stream does not exist yet (so the epoch is stable from the
--          first read on)
-- ARGV[6]  metadata TTL in seconds for a stream created here, 0 = keep forever
-- ARGV[7]  optional, "1" = Redis Cluster: a stream last written by another master starts a
--          new epoch here (see publish.lua, ARGV[12])
-- Returns {top offset, epoch, offset1, body1, offset2, body2, ...}.

-- Redis Cluster (ARGV[7]): as publish.lua's failed_over().
local function failed_over()
  local me = redis.call("cluster", "myid")
  local w = redis.call("hmget", KEYS[2], "m", "r")
  if w[1] == me then
    return false
  end
  local info = redis.call("info", "replication")
  local replid = string.match(info, "master_replid:(%w+)")
  local replid2 = string.match(info, "master_replid2:(%w+)")
  redis.call("hset", KEYS[2], "m", me, "r", replid)
  return w[1] ~= false and w[2] == replid2
end

local meta = redis.call("hmget", KEYS[2], "s", "e")
local top = meta[1] or "0"
local epoch = meta[2]
if epoch and ARGV[7] == "1" and failed_over() then
  epoch = ARGV[5]
  redis.call("hset", KEYS[2], "e", epoch)
end
if not epoch then
  epoch = ARGV[5]
  top = "0"
  redis.call("hset", KEYS[2], "e", epoch)
  if ARGV[7] == "1" then
    failed_over()
  end
  local ttl = tonumber(ARGV[6])
  if ttl > 0 then
    redis.call("expire", KEYS[2], ttl)
  end
  redis.call("del", KEYS[1])
end

local out = {top, epoch}
local limit = tonumber(ARGV[3])
if limit == 0 then
  return out
end

local since = ARGV[1]
if since ~= "" and ARGV[2] ~= "" and ARGV[2] ~= epoch then
  since = ""
end

local entries
if ARGV[4] == "1" then
  local hi = "+"
  if since ~= "" then
    local s = tonumber(since)
    if s <= 1 then
      return out
    end
    hi = string.format("%d", s - 1)
  end
  if limit > 0 then
    entries = redis.call("xrevrange", KEYS[1], hi, "-", "count", limit)
  else
    entries = redis.call("xrevrange", KEYS[1], hi, "-")
  end
else
  local lo = "-"
  if since ~= "" then
    lo = string.format("%d", tonumber(since) + 1)
  end
  if limit > 0 then
    entries = redis.call("xrange", KEYS[1], lo, "+", "count", limit)
  else
    entries = redis.call("xrange", KEYS[1], lo, "+")
  end
end

for _, entry in ipairs(entries) do
  local id = entry[1]
  out[#out + 1] = string.sub(id, 1, string.find(id, "-", 1, true) - 1)
  out[#out + 1] = entry[2][2]
end
return out
