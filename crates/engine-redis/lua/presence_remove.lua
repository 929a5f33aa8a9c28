-- Rotor: remove a client's presence from a channel.
--
-- KEYS[1]  presence expiry sorted set
-- KEYS[2]  presence data hash
-- ARGV[1]  client ID

redis.call("zrem", KEYS[1], ARGV[1])
redis.call("hdel", KEYS[2], ARGV[1])
return 1
