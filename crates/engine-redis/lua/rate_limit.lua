-- Rotor: one token from every bucket of one limiter, all or nothing (redis_user_command).
-- Clock: the Redis server's (every node sees the same time). Per bucket i the hash holds
-- "t<i>" (level; one token = interval_ms units, capacity = rate * interval_ms) and "l<i>" (ms
-- of the last look). A bucket never seen is full. The key expires when every bucket would be
-- full again, so an idle user leaves nothing behind.
--
-- KEYS[1]  the limiter's hash
-- ARGV[1]  number of buckets n, then n pairs: interval_ms, rate
-- Returns 1 (taken) or 0 (refused; nothing taken).

local t = redis.call("time")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local levels = {}
local ok = 1
local longest = 0
for i = 1, n do
  local interval = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  if interval > longest then
    longest = interval
  end
  local cap = rate * interval
  local state = redis.call("hmget", KEYS[1], "t" .. i, "l" .. i)
  local level = tonumber(state[1])
  local last = tonumber(state[2])
  if level == nil or last == nil then
    level = cap
  else
    local elapsed = now - last
    if elapsed < 0 then
      elapsed = 0
    end
    level = math.min(cap, level + elapsed * rate)
  end
  if level < interval then
    ok = 0
  end
  levels[i] = {level, interval}
end
for i = 1, n do
  local level = levels[i][1]
  if ok == 1 then
    level = level - levels[i][2]
  end
  redis.call("hset", KEYS[1], "t" .. i, string.format("%.0f", level), "l" .. i, now)
end
redis.call("pexpire", KEYS[1], longest)
return ok
