-- open.lua: create (or rebuild) a round's live state, once.
--
-- KEYS[1] meta  KEYS[2] book  KEYS[3] offers  KEYS[4] labels  KEYS[5] pool  KEYS[6] events
-- KEYS[7] the bucket's deadline index (sorted set: round_id scored by closes_at_ms)
-- ARGV[1] meta fields as JSON object {field: value} (state, seq, closes_at, ...)
-- ARGV[2] unused labels as JSON array
-- ARGV[3] labels in use as JSON object {bank_id: label}
-- ARGV[4] current offer records as JSON array of JSON strings (rebuild only)
-- ARGV[5] events as JSON array of [seq, event JSON] (rebuild only)
-- ARGV[6] round_id
-- Returns 1 if created, 0 if the round already existed (nothing is changed then).
-- An open round goes on its bucket's deadline index in the same step (one slot: the bucket's).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local meta = cjson.decode(ARGV[1])
for k, v in pairs(meta) do redis.call('HSET', KEYS[1], k, v) end
local pool = cjson.decode(ARGV[2])
if #pool > 0 then redis.call('RPUSH', KEYS[5], unpack(pool)) end
for bank, label in pairs(cjson.decode(ARGV[3])) do redis.call('HSET', KEYS[4], bank, label) end
for _, r in ipairs(cjson.decode(ARGV[4])) do
  local rec = cjson.decode(r)
  redis.call('HSET', KEYS[3], rec.o, r)
  redis.call('ZADD', KEYS[2], 0, rank_member(rec.p, rec.r, rec.s, rec.f))
end
for _, e in ipairs(cjson.decode(ARGV[5])) do
  redis.call('XADD', KEYS[6], e[1] .. '-0', 'd', e[2])
end
if meta.state == 'open' then redis.call('ZADD', KEYS[7], meta.closes_at, ARGV[6]) end
return 1
