-- Rotor: append a publication to a channel's history stream and broadcast it, atomically, so
-- the offset a subscriber sees is the offset stored in history.
--
-- KEYS[1]  history stream (entry IDs are "<offset>-0", field "d" holds the body)
-- KEYS[2]  stream metadata hash: "s" = top offset, "e" = epoch
-- ARGV[1]  publication body (see wire.rs)
-- ARGV[2]  history size (entries kept)
-- ARGV[3]  history lifetime in seconds (the whole stream expires this long after the last publish)
-- ARGV[4]  metadata TTL in seconds, 0 = keep forever (never shorter than the history lifetime)
-- ARGV[5]  epoch to use if the stream does not exist yet
-- ARGV[6]  broadcast command: "publish" or "spublish" (sharded PUB/SUB)
-- ARGV[7]  PUB/SUB channel
-- Returns {offset, epoch} (strings).

local epoch = redis.call("hget", KEYS[2], "e")
if not epoch then
  epoch = ARGV[5]
  redis.call("hset", KEYS[2], "e", epoch)
  -- A new stream restarts at offset 1: drop entries a lost stream may have left behind.
  redis.call("del", KEYS[1])
end

local offset = string.format("%d", redis.call("hincrby", KEYS[2], "s", 1))
redis.call("xadd", KEYS[1], "maxlen", ARGV[2], offset .. "-0", "d", ARGV[1])
redis.call("expire", KEYS[1], ARGV[3])

local meta_ttl = tonumber(ARGV[4])
if meta_ttl > 0 then
  local lifetime = tonumber(ARGV[3])
  if lifetime > meta_ttl then
    meta_ttl = lifetime
  end
  redis.call("expire", KEYS[2], meta_ttl)
end

redis.call(ARGV[6], ARGV[7], "p" .. offset .. ":" .. epoch .. ":" .. ARGV[1])
return {offset, epoch}
