-- Rotor: add or refresh a client's presence in a channel.
--
-- KEYS[1]  presence expiry sorted set: client ID scored by expiry (unix seconds)
-- KEYS[2]  presence data hash: client ID -> encoded client info
-- ARGV[1]  seconds until the entry expires
-- ARGV[2]  client ID
-- ARGV[3]  encoded client info
-- Both keys expire with their longest-lived entry, so a channel whose nodes all died leaves nothing.

local now = tonumber(redis.call("time")[1])
local ttl = tonumber(ARGV[1])
redis.call("zadd", KEYS[1], now + ttl, ARGV[2])
redis.call("hset", KEYS[2], ARGV[2], ARGV[3])
-- Never shorten the keys' life: other entries may expire later than this one.
for _, key in ipairs(KEYS) do
  if redis.call("ttl", key) < ttl then
    redis.call("expire", key, ttl)
  end
end
return 1
