-- submit.lua: accept a NEW offer into a round's live book, atomically.
--
-- KEYS[1] meta   hash   (state, closes_at ms, seq, ...)        see auction/redis/keys.py
-- KEYS[2] book   zset   (score 0, member = rank member, see _prelude.lua)
-- KEYS[3] offers hash   (offer_id -> current version record, JSON; auction/redis/envelope.py)
-- KEYS[4] labels hash   (bank_id -> masked label)
-- KEYS[5] pool   list   (shuffled unused labels)
-- KEYS[6] events stream (entry id = "<seq>-0", field d = event JSON)
-- KEYS[7] idem   string (the Idempotency-Key record; any key of the round's tag if unused)
-- ARGV[1] round_id   ARGV[2] bank_id   ARGV[3] offer_id   ARGV[4] ref
-- ARGV[5] apr_e4     ARGV[6] annual_rate_e4
-- ARGV[7] record tail: the offer terms as JSON object members, without braces
-- ARGV[8] idempotency body hash ("" = no Idempotency-Key)   ARGV[9] idempotency ttl seconds
-- ARGV[10] pub/sub channel
-- Returns {code, seq, accepted_at_ms, version, rank, label, offer_id, ref}
--   code (auction.model.Outcome): 0 OK, 1 ROUND_CLOSED, 2 ROUND_UNKNOWN,
--   4 IDEMPOTENCY_REPLAY, 5 IDEMPOTENCY_MISMATCH
if ARGV[8] ~= '' then
  local earlier = replay(KEYS[7], ARGV[8], KEYS[3], KEYS[2])
  if earlier then return earlier end
end
local meta = redis.call('HMGET', KEYS[1], 'state', 'closes_at')
if not meta[1] then return {2} end
local now = now_ms()
if not may_bid(meta[1], meta[2], now) then return {1} end
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return {2} end
local label = redis.call('HGET', KEYS[4], ARGV[2])
if not label then
  label = redis.call('LPOP', KEYS[5])
  if not label then label = 'Banka ' .. tostring(redis.call('HLEN', KEYS[4]) + 1) end
  redis.call('HSET', KEYS[4], ARGV[2], label)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local rec = '{"o":"' .. ARGV[3] .. '","f":"' .. ARGV[4] .. '","b":"' .. ARGV[2] .. '","l":"' .. label ..
  '","v":1,"s":' .. seq .. ',"t":' .. now .. ',' .. ARGV[7] .. '}'
redis.call('HSET', KEYS[3], ARGV[3], rec)
local member = rank_member(ARGV[5], ARGV[6], seq, ARGV[4])
redis.call('ZADD', KEYS[2], 0, member)
local ev = '{"r":"' .. ARGV[1] .. '","s":' .. seq .. ',"k":"q","o":' .. rec .. '}'
redis.call('XADD', KEYS[6], seq .. '-0', 'd', ev)
local rank = redis.call('ZRANK', KEYS[2], member) + 1
local order = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('PUBLISH', ARGV[10], string.sub(ev, 1, -2) .. ',"n":["' .. table.concat(order, '","') .. '"]}')
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[7], ARGV[8] .. '|' .. seq .. '|' .. now .. '|1|' .. label .. '|' .. ARGV[4] .. '|' .. ARGV[3],
    'EX', tonumber(ARGV[9]))
end
return {0, seq, now, 1, rank, label, ARGV[3], ARGV[4]}
