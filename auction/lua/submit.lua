-- submit.lua: accept a NEW offer into a round's live book, atomically.
--
-- KEYS[1] meta   hash   ige:{rid}:m  (state, closes_at ms, seq, ...)
-- KEYS[2] book   zset   ige:{rid}:b  (score 0, member = rank key, see auction/rules.py)
-- KEYS[3] offers hash   ige:{rid}:o  (offer_id -> current version record, JSON)
-- KEYS[4] labels hash   ige:{rid}:l  (bank_id -> masked label)
-- KEYS[5] pool   list   ige:{rid}:p  (shuffled unused labels)
-- KEYS[6] events stream ige:{rid}:e  (entry id = "<seq>-0", field d = event JSON)
-- KEYS[7] idem   string ige:{rid}:i:<caller>:<key>  (idempotency record; any key of the tag if unused)
-- ARGV[1] round_id      ARGV[2] bank_id    ARGV[3] offer_id   ARGV[4] ref
-- ARGV[5] rank prefix: zero-padded apr_e4 .. annual_rate_e4 (24 chars)
-- ARGV[6] record tail: the offer terms as JSON object members, without braces
-- ARGV[7] idempotency body hash ("" = no Idempotency-Key)   ARGV[8] idempotency ttl seconds
-- ARGV[9] pub/sub channel
-- Returns {code, seq, accepted_at_ms, version, rank, label, offer_id, ref}
--   code: 0 OK, 1 ROUND_CLOSED, 2 ROUND_UNKNOWN, 4 IDEMPOTENCY_REPLAY, 5 IDEMPOTENCY_MISMATCH
--   (numbers match auction.model.Outcome)
if ARGV[7] ~= '' then
  local prev = redis.call('GET', KEYS[7])
  if prev then
    local h, rest = string.match(prev, '^([^|]*)|(.*)$')
    if h ~= ARGV[7] then return {5} end
    local s, t, v, l, f, o = string.match(rest, '^(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
    local cur = redis.call('HGET', KEYS[3], o)
    local rank = 0
    if cur then
      local rec = cjson.decode(cur)
      local r = redis.call('ZRANK', KEYS[2], string.format('%012d%012d%012d:%s', rec.p, rec.r, rec.s, rec.f))
      if r then rank = r + 1 end
    end
    return {4, tonumber(s), tonumber(t), tonumber(v), rank, l, o, f}
  end
end
local meta = redis.call('HMGET', KEYS[1], 'state', 'closes_at')
if not meta[1] then return {2} end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if meta[1] ~= 'open' or now_ms >= tonumber(meta[2]) then return {1} end
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return {2} end
local label = redis.call('HGET', KEYS[4], ARGV[2])
if not label then
  label = redis.call('LPOP', KEYS[5])
  if not label then label = 'Banka ' .. tostring(redis.call('HLEN', KEYS[4]) + 1) end
  redis.call('HSET', KEYS[4], ARGV[2], label)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local rec = '{"o":"' .. ARGV[3] .. '","f":"' .. ARGV[4] .. '","b":"' .. ARGV[2] .. '","l":"' .. label ..
  '","v":1,"s":' .. seq .. ',"t":' .. now_ms .. ',' .. ARGV[6] .. '}'
redis.call('HSET', KEYS[3], ARGV[3], rec)
local member = ARGV[5] .. string.format('%012d', seq) .. ':' .. ARGV[4]
redis.call('ZADD', KEYS[2], 0, member)
local ev = '{"r":"' .. ARGV[1] .. '","s":' .. seq .. ',"k":"q","o":' .. rec .. '}'
redis.call('XADD', KEYS[6], seq .. '-0', 'd', ev)
local rank = redis.call('ZRANK', KEYS[2], member) + 1
local order = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('PUBLISH', ARGV[9], string.sub(ev, 1, -2) .. ',"n":["' .. table.concat(order, '","') .. '"]}')
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[7], ARGV[7] .. '|' .. seq .. '|' .. now_ms .. '|1|' .. label .. '|' .. ARGV[4] .. '|' .. ARGV[3],
    'EX', tonumber(ARGV[8]))
end
return {0, seq, now_ms, 1, rank, label, ARGV[3], ARGV[4]}
