-- Rotor: broadcast a message that keeps no history (a publication on a channel without
-- history, a join, a leave, a control message). A script only so that Redis Cluster routes it
-- by KEYS[1] to the node owning the (sharded) PUB/SUB channel.
--
-- KEYS[1]  the PUB/SUB channel (used for routing; no key is touched)
-- ARGV[1]  "publish" or "spublish"
-- ARGV[2]  the message
-- Returns the number of receivers Redis reports.

return redis.call(ARGV[1], KEYS[1], ARGV[2])
