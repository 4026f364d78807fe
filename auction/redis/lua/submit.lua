-- submit.lua: accept a NEW offer into a round's live book, atomically.
--
-- KEYS[1] meta   hash   (state, closes_at ms, seq, ...)        see auction/redis/keys.py
-- KEYS[2] book   zset   (score 0, member = rank member, see _prelude.lua)
-- KEYS[3] offers hash   (offer_id -> current version record, JSON; auction/redis/envelope.py)
-- KEYS[4] labels hash   (bank_id -> masked label)
-- KEYS[5] pool   list   (shuffled unused labels)
-- KEYS[6] events stream (entry id = "<seq>-0", field d = event JSON)
-- KEYS[7] idem   string (the Idempotency-Key record; any key of the round's tag if unused)
-- KEYS[8] dirty  set    (the bucket's rounds with events not yet in SQL: the persister's)
-- ARGV[1] round_id   ARGV[2] bank_id   ARGV[3] offer_id   ARGV[4] ref
-- ARGV[5] apr_e4     ARGV[6] annual_rate_e4
-- ARGV[7] record tail: the offer terms as JSON object members, without braces
-- ARGV[8] idempotency body hash ("" = no Idempotency-Key)   ARGV[9] idempotency ttl seconds
-- ARGV[10] the round's pub/sub channel
-- ARGV[11] live offers one bank may keep in the round (0: no limit); counted in meta "n:<bank>"
-- ARGV[12] "1": replica acks are on (auction/redis/acks.py): a replay refreshes the
--          Idempotency-Key record's expiry, a write, so the WAIT after it covers the first one
--          even where WAIT counts only the connection's own writes
-- Returns {code, seq, accepted_at_ms, version, rank, label, offer_id, ref}
--   code (auction.model.Outcome): 0 OK, 1 ROUND_CLOSED, 2 ROUND_UNKNOWN,
--   4 IDEMPOTENCY_REPLAY, 5 IDEMPOTENCY_MISMATCH, 8 OFFER_LIMIT
-- O(log n) in the book's size: the event carries the offer's rank and the book's size, never
-- the other offers' ranks (clients keep the order themselves from the ranking key).
if ARGV[8] ~= '' then
  local earlier = replay(KEYS[7], ARGV[8], KEYS[3], KEYS[2])
  if earlier then
    if earlier[1] == 4 and ARGV[12] == '1' then redis.call('EXPIRE', KEYS[7], tonumber(ARGV[9])) end
    return earlier
  end
end
local meta = redis.call('HMGET', KEYS[1], 'state', 'closes_at')
if not meta[1] then return {2} end
local now = now_ms()
if not may_bid(meta[1], meta[2], now) then return {1} end
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return {2} end
local limit = tonumber(ARGV[11])
if limit > 0 and tonumber(redis.call('HGET', KEYS[1], 'n:' .. ARGV[2]) or 0) >= limit then
  return {8}
end
local label = redis.call('HGET', KEYS[4], ARGV[2])
if not label then
  label = redis.call('LPOP', KEYS[5])
  if not label then label = 'Banka ' .. tostring(redis.call('HLEN', KEYS[4]) + 1) end
  redis.call('HSET', KEYS[4], ARGV[2], label)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[2], 1)
local rec = '{"o":"' .. ARGV[3] .. '","f":"' .. ARGV[4] .. '","b":"' .. ARGV[2] .. '","l":"' .. label ..
  '","v":1,"s":' .. seq .. ',"t":' .. now .. ',' .. ARGV[7] .. '}'
redis.call('HSET', KEYS[3], ARGV[3], rec)
local member = rank_member(ARGV[5], ARGV[6], seq, ARGV[4])
redis.call('ZADD', KEYS[2], 0, member)
local rank = redis.call('ZRANK', KEYS[2], member) + 1
local ev = quote_event(ARGV[1], seq, rec, rank, redis.call('ZCARD', KEYS[2]))
redis.call('XADD', KEYS[6], seq .. '-0', 'd', ev)
redis.call('SADD', KEYS[8], ARGV[1])
redis.call(PUBLISH, ARGV[10], ev)
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[7], ARGV[8] .. '|' .. seq .. '|' .. now .. '|1|' .. label .. '|' .. ARGV[4] .. '|' .. ARGV[3] ..
    '|' .. rank, 'EX', tonumber(ARGV[9]))
end
return {0, seq, now, 1, rank, label, ARGV[3], ARGV[4]}
