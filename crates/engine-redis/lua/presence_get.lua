-- Rotor: the live presence of a channel, after dropping expired entries.
--
-- KEYS[1]  presence expiry sorted set (client ID scored by expiry, unix seconds)
-- KEYS[2]  presence data hash (client ID -> encoded info)
-- Returns {client1, info1, client2, info2, ...}.

local now = tonumber(redis.call("time")[1])
local expired = redis.call("zrangebyscore", KEYS[1], "-inf", now)
for _, id in ipairs(expired) do
  redis.call("hdel", KEYS[2], id)
end
if #expired > 0 then
  redis.call("zremrangebyscore", KEYS[1], "-inf", now)
end
return redis.call("hgetall", KEYS[2])
