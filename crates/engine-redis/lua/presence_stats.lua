-- Rotor: how many clients and distinct users are present in a channel, after dropping expired
-- entries. An encoded info starts with the user as "<length>:<bytes>".
--
-- KEYS[1]  presence expiry sorted set
-- KEYS[2]  presence data hash
-- Returns {num_clients, num_users}.

local now = tonumber(redis.call("time")[1])
local expired = redis.call("zrangebyscore", KEYS[1], "-inf", now)
for _, id in ipairs(expired) do
  redis.call("hdel", KEYS[2], id)
end
if #expired > 0 then
  redis.call("zremrangebyscore", KEYS[1], "-inf", now)
end

local users = {}
local num_users = 0
local values = redis.call("hvals", KEYS[2])
for _, v in ipairs(values) do
  local colon = string.find(v, ":", 1, true)
  if colon then
    local len = tonumber(string.sub(v, 1, colon - 1)) or 0
    local user = string.sub(v, colon + 1, colon + len)
    if not users[user] then
      users[user] = true
      num_users = num_users + 1
    end
  end
end
return {#values, num_users}
