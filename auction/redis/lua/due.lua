-- due.lua: the rounds of a bucket whose deadline has passed by the Redis server's clock,
-- earliest first.
--
-- KEYS[1] the bucket's deadline index (sorted set: round_id scored by closes_at_ms)
-- ARGV[1] at most this many
-- Returns {round_id, closes_at_ms, ...}. Only candidates: close.lua decides, by the same clock.
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[1]))
