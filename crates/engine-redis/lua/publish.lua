-- Rotor: publish a publication in one atomic step: the idempotency check, the version check,
-- the offset, the history append and the broadcast, so the offset a subscriber sees is the
-- offset stored in history and a repeated or outdated publish reaches nobody.
--
-- KEYS[1]  history stream (entry IDs are "<offset>-0", field "d" holds the body)
-- KEYS[2]  stream metadata hash: "s" = top offset, "e" = epoch, "v" = version of the last
--          publish that had one, "ve" = its version epoch
-- KEYS[3]  optional: the idempotency result of this publish's key ("<offset>:<epoch>")
-- ARGV[1]  publication body (see wire.rs)
-- ARGV[2]  history size (entries kept); "0" = the channel keeps no history: only broadcast
--          (offset 0, empty epoch), KEYS[1] and KEYS[2] untouched
-- ARGV[3]  history lifetime in seconds (the whole stream expires this long after the last publish)
-- ARGV[4]  metadata TTL in seconds, 0 = keep forever (never shorter than the history lifetime)
-- ARGV[5]  epoch to use if the stream does not exist yet
-- ARGV[6]  broadcast command: "publish" or "spublish" (sharded PUB/SUB)
-- ARGV[7]  PUB/SUB channel
-- ARGV[8]  idempotency window in milliseconds (used with KEYS[3])
-- ARGV[9]  publish version, "0" = none (checked with history only)
-- ARGV[10] version epoch; "" matches any stored one
-- ARGV[11] optional, "1" = marked for delta delivery: when the stream already holds the
--          previous publication, it is read here, before the append, and broadcast with the
--          new one as "d<offset>:<epoch>:<previous body length>:<previous body><body>"
--          instead of "p<offset>:<epoch>:<body>" (absent: the plain message, no extra read)
-- ARGV[12] optional, "1" = Redis Cluster: the metadata hash keeps "m", the node ID of the
--          master that last wrote it, and "r", that master's replication ID. A stream whose
--          "m" names another node and whose "r" is the replication ID this node was promoted
--          from (master_replid2) is served by a promoted replica, which may lack the last
--          entries (asynchronous replication): it starts a new epoch, so no client is told it
--          recovered across the failover. Another "m" without that link is a slot that moved
--          with its keys intact (MIGRATE): only "m" and "r" are updated. Either way it happens
--          once per change of master, so it cannot flap.
-- Returns {offset, epoch, outcome} (strings); outcome "p" = published, "i" = a repeat of an
-- idempotent publish (the first publish's result), "v" = dropped as outdated (the stream top).

local result_key = KEYS[3]
if result_key then
  local first = redis.call("get", result_key)
  if first then
    local sep = string.find(first, ":", 1, true)
    if sep then
      return {string.sub(first, 1, sep - 1), string.sub(first, sep + 1), "i"}
    end
  end
end

local function remember(offset, epoch)
  if result_key then
    redis.call("set", result_key, offset .. ":" .. epoch, "px", ARGV[8])
  end
end

if ARGV[2] == "0" then
  redis.call(ARGV[6], ARGV[7], "p0::" .. ARGV[1])
  remember("0", "")
  return {"0", "", "p"}
end

-- Versions are decimal strings without leading zeros: compared as such, they stay exact
-- beyond 2^53 (Lua numbers are doubles).
local function above(a, b)
  return #a > #b or (#a == #b and a > b)
end

-- Redis Cluster (ARGV[12]): records this master as the stream's writer; true when the
-- previous writer is the master this node was promoted from (see above).
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

local version = ARGV[9]
local epoch = redis.call("hget", KEYS[2], "e")
if epoch and ARGV[12] == "1" and failed_over() then
  epoch = ARGV[5]
  redis.call("hset", KEYS[2], "e", epoch)
end
if not epoch then
  epoch = ARGV[5]
  redis.call("hset", KEYS[2], "e", epoch)
  if ARGV[12] == "1" then
    failed_over()
  end
  -- A new stream restarts at offset 1: drop entries a lost stream may have left behind.
  redis.call("del", KEYS[1])
elseif version ~= "0" then
  local last = redis.call("hmget", KEYS[2], "v", "ve", "s")
  if last[1] and (ARGV[10] == "" or ARGV[10] == last[2]) and not above(version, last[1]) then
    return {last[3] or "0", epoch, "v"}
  end
end

local top = redis.call("hincrby", KEYS[2], "s", 1)
local offset = string.format("%d", top)
-- The delta base: the stream's last entry, if it is this publication's predecessor (not after
-- the history expired or was removed, nor for the first publication of an epoch).
local prev
if ARGV[11] == "1" and top > 1 then
  local last = redis.call("xrevrange", KEYS[1], "+", "-", "count", 1)[1]
  if last and last[1] == string.format("%d", top - 1) .. "-0" then
    prev = last[2][2]
  end
end
redis.call("xadd", KEYS[1], "maxlen", ARGV[2], offset .. "-0", "d", ARGV[1])
redis.call("expire", KEYS[1], ARGV[3])
if version ~= "0" then
  redis.call("hset", KEYS[2], "v", version, "ve", ARGV[10])
end

local meta_ttl = tonumber(ARGV[4])
if meta_ttl > 0 then
  local lifetime = tonumber(ARGV[3])
  if lifetime > meta_ttl then
    meta_ttl = lifetime
  end
  redis.call("expire", KEYS[2], meta_ttl)
end

if prev then
  redis.call(ARGV[6], ARGV[7], "d" .. offset .. ":" .. epoch .. ":" .. #prev .. ":" .. prev .. ARGV[1])
else
  redis.call(ARGV[6], ARGV[7], "p" .. offset .. ":" .. epoch .. ":" .. ARGV[1])
end
remember(offset, epoch)
return {offset, epoch, "p"}
