-- revise.lua: replace the terms of an existing offer with a new version, atomically.
--
-- KEYS[1] meta  KEYS[2] book  KEYS[3] offers  KEYS[4] events  KEYS[5] idem  KEYS[6] dirty
--   (as in submit.lua)
-- ARGV[1] round_id   ARGV[2] bank_id   ARGV[3] offer_id
-- ARGV[4] apr_e4     ARGV[5] annual_rate_e4   ARGV[6] record tail (terms JSON members)
-- ARGV[7] idempotency body hash ("" = none)   ARGV[8] idempotency ttl
-- ARGV[9] the round's pub/sub channel
-- ARGV[10] "1": replica acks are on: a replay refreshes the record's expiry (as in submit.lua)
-- Returns {code, seq, accepted_at_ms, version, rank, label, offer_id, ref}
--   code: 0 OK, 1 ROUND_CLOSED, 2 ROUND_UNKNOWN, 3 OFFER_UNKNOWN (absent or another bank's),
--         4 IDEMPOTENCY_REPLAY, 5 IDEMPOTENCY_MISMATCH
-- The revised offer takes the new version's seq as its tie-breaker: a revision loses time priority.
if ARGV[7] ~= '' then
  local earlier = replay(KEYS[5], ARGV[7], KEYS[3], KEYS[2])
  if earlier then
    if earlier[1] == 4 and ARGV[10] == '1' then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[8])) end
    return earlier
  end
end
local meta = redis.call('HMGET', KEYS[1], 'state', 'closes_at')
if not meta[1] then return {2} end
local cur = redis.call('HGET', KEYS[3], ARGV[3])
if not cur then return {3} end
local old = cjson.decode(cur)
if old.b ~= ARGV[2] then return {3} end
local now = now_ms()
if not may_bid(meta[1], meta[2], now) then return {1} end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local version = old.v + 1
local rec = '{"o":"' .. ARGV[3] .. '","f":"' .. old.f .. '","b":"' .. ARGV[2] .. '","l":"' .. old.l ..
  '","v":' .. version .. ',"s":' .. seq .. ',"t":' .. now .. ',' .. ARGV[6] .. '}'
redis.call('HSET', KEYS[3], ARGV[3], rec)
redis.call('ZREM', KEYS[2], rank_member(old.p, old.r, old.s, old.f))
local member = rank_member(ARGV[4], ARGV[5], seq, old.f)
redis.call('ZADD', KEYS[2], 0, member)
local rank = redis.call('ZRANK', KEYS[2], member) + 1
local ev = quote_event(ARGV[1], seq, rec, rank, redis.call('ZCARD', KEYS[2]))
redis.call('XADD', KEYS[4], seq .. '-0', 'd', ev)
redis.call('SADD', KEYS[6], ARGV[1])
redis.call(PUBLISH, ARGV[9], ev)
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[5], ARGV[7] .. '|' .. seq .. '|' .. now .. '|' .. version .. '|' .. old.l ..
    '|' .. old.f .. '|' .. ARGV[3] .. '|' .. rank, 'EX', tonumber(ARGV[8]))
end
return {0, seq, now, version, rank, old.l, ARGV[3], old.f}
