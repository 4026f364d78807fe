-- close.lua: close a round once its deadline has passed (by the Redis server's clock).
--
-- KEYS[1] meta  KEYS[2] events
-- ARGV[1] round_id   ARGV[2] pub/sub channel
-- Returns {code, seq, closed_at_ms}
--   code: 0 OK (closed by this call), 2 ROUND_UNKNOWN, 6 ALREADY_CLOSED, 7 NOT_DUE
-- Exactly once: only the call that finds the round due (is_due: open, past the deadline) flips
-- it and appends the round_closed event; every later call reports ALREADY_CLOSED with the same
-- seq and time.
local meta = redis.call('HMGET', KEYS[1], 'state', 'closes_at', 'seq', 'closed_at')
if not meta[1] then return {2} end
if meta[1] ~= 'open' then return {6, tonumber(meta[3]), tonumber(meta[4])} end
local now = now_ms()
if not is_due(meta[1], meta[2], now) then return {7, tonumber(meta[3]), 0} end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', now)
local ev = '{"r":"' .. ARGV[1] .. '","s":' .. seq .. ',"k":"c","t":' .. now .. '}'
redis.call('XADD', KEYS[2], seq .. '-0', 'd', ev)
redis.call('PUBLISH', ARGV[2], ev)
return {0, seq, now}
