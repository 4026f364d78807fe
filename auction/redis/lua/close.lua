-- close.lua: close a round once its deadline has passed (by the Redis server's clock).
--
-- KEYS[1] meta  KEYS[2] events  KEYS[3] book  KEYS[4] offers
-- ARGV[1] round_id   ARGV[2] the round's pub/sub channel
-- Returns {code, seq, closed_at_ms, records...}
--   code: 0 OK (closed by this call), 2 ROUND_UNKNOWN, 6 ALREADY_CLOSED, 7 NOT_DUE
--   records (OK and ALREADY_CLOSED): the final offer versions (JSON), best first: what binds
-- Exactly once: only the call that finds the round due (is_due: open, past the deadline) flips
-- it and appends the round_closed event; every later call reports ALREADY_CLOSED with the same
-- seq, time and book (a closed book never changes).
local meta = redis.call('HMGET', KEYS[1], 'state', 'closes_at', 'seq', 'closed_at')
if not meta[1] then return {2} end
local out
if meta[1] ~= 'open' then
  out = {6, tonumber(meta[3]), tonumber(meta[4])}
else
  local now = now_ms()
  if not is_due(meta[1], meta[2], now) then return {7, tonumber(meta[3]), 0} end
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', now)
  local ev = '{"r":"' .. ARGV[1] .. '","s":' .. seq .. ',"k":"c","t":' .. now .. '}'
  redis.call('XADD', KEYS[2], seq .. '-0', 'd', ev)
  redis.call(PUBLISH, ARGV[2], ev)
  out = {0, seq, now}
end
for _, r in ipairs(book_records(KEYS[3], KEYS[4])) do out[#out + 1] = r end
return out
