-- crew.lua: the roll of a group of processes (the workers): join or renew, or leave.
--
-- KEYS[1] the roll (sorted set: a member's token scored by its last heartbeat, ms)
-- ARGV[1] the member's token   ARGV[2] how long a heartbeat counts, ms
-- ARGV[3] '1': here (join or renew), '0': leaving
-- Returns how many members are present (heartbeat within ARGV[2] ms, by the Redis clock).
local now = now_ms()
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
