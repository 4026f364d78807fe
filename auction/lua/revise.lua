-- revise.lua: replace the terms of an existing offer with a new version, atomically.
--
-- KEYS[1] meta  KEYS[2] book  KEYS[3] offers  KEYS[4] events  KEYS[5] idem   (as in submit.lua)
-- ARGV[1] round_id   ARGV[2] bank_id   ARGV[3] offer_id
-- ARGV[4] rank prefix (apr_e4 .. annual_rate_e4, 24 chars)   ARGV[5] record tail (terms JSON members)
-- ARGV[6] idempotency body hash ("" = none)   ARGV[7] idempotency ttl   ARGV[8] pub/sub channel
-- Returns {code, seq, accepted_at_ms, version, rank, label, offer_id, ref}
--   code: 0 OK, 1 ROUND_CLOSED, 2 ROUND_UNKNOWN, 3 OFFER_UNKNOWN (absent or another bank's),
--         4 IDEMPOTENCY_REPLAY, 5 IDEMPOTENCY_MISMATCH
-- The revised offer takes the new version's seq as its tie-breaker: a revision loses time priority.
local function rank_of(rec)
  local r = redis.call('ZRANK', KEYS[2], string.format('%012d%012d%012d:%s', rec.p, rec.r, rec.s, rec.f))
  if r then return r + 1 end
  return 0
end
if ARGV[6] ~= '' then
  local prev = redis.call('GET', KEYS[5])
  if prev then
    local h, rest = string.match(prev, '^([^|]*)|(.*)$')
    if h ~= ARGV[6] then return {5} end
    local s, t, v, l, f, o = string.match(rest, '^(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
    local cur = redis.call('HGET', KEYS[3], o)
    local rank = 0
    if cur then rank = rank_of(cjson.decode(cur)) end
    return {4, tonumber(s), tonumber(t), tonumber(v), rank, l, o, f}
  end
end
local meta = redis.call('HMGET', KEYS[1], 'state', 'closes_at')
if not meta[1] then return {2} end
local cur = redis.call('HGET', KEYS[3], ARGV[3])
if not cur then return {3} end
local old = cjson.decode(cur)
if old.b ~= ARGV[2] then return {3} end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if meta[1] ~= 'open' or now_ms >= tonumber(meta[2]) then return {1} end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local version = old.v + 1
local rec = '{"o":"' .. ARGV[3] .. '","f":"' .. old.f .. '","b":"' .. ARGV[2] .. '","l":"' .. old.l ..
  '","v":' .. version .. ',"s":' .. seq .. ',"t":' .. now_ms .. ',' .. ARGV[5] .. '}'
redis.call('HSET', KEYS[3], ARGV[3], rec)
redis.call('ZREM', KEYS[2], string.format('%012d%012d%012d:%s', old.p, old.r, old.s, old.f))
local member = ARGV[4] .. string.format('%012d', seq) .. ':' .. old.f
redis.call('ZADD', KEYS[2], 0, member)
local ev = '{"r":"' .. ARGV[1] .. '","s":' .. seq .. ',"k":"q","o":' .. rec .. '}'
redis.call('XADD', KEYS[4], seq .. '-0', 'd', ev)
local rank = redis.call('ZRANK', KEYS[2], member) + 1
local order = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('PUBLISH', ARGV[8], string.sub(ev, 1, -2) .. ',"n":["' .. table.concat(order, '","') .. '"]}')
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[5], ARGV[6] .. '|' .. seq .. '|' .. now_ms .. '|' .. version .. '|' .. old.l ..
    '|' .. old.f .. '|' .. ARGV[3], 'EX', tonumber(ARGV[7]))
end
return {0, seq, now_ms, version, rank, old.l, ARGV[3], old.f}
