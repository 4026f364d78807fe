-- _prelude.lua: helpers every script shares. auction/redis/scripts.py puts it in front of each
-- script when it loads them, after two lines it writes itself: `local KEY_WIDTH = <n>`, with n
-- taken from auction/ranking.py (the only place that number is written), and
-- `local PUBLISH = 'PUBLISH'` (a single Redis: classic pub/sub, Redis 6.2 has no other) or
-- `'SPUBLISH'` (a Redis Cluster: sharded pub/sub; a round's channel carries its keys' hash tag,
-- so the script still touches one slot). Scripts publish with redis.call(PUBLISH, ...).
--
-- rank_member and member_ref mirror auction.ranking.rank_member / member_ref: the book's
-- sorted-set members order byte-wise exactly by (apr, annual_rate, seq). may_bid and is_due
-- mirror auction.rules.may_bid / is_due, decided here atomically by the Redis server's clock,
-- the only clock of a live book. The book contract suite (tests/contract) proves they agree.
local RANK_FORMAT = string.rep('%0' .. KEY_WIDTH .. 'd', 3) .. ':%s'

local function rank_member(apr, rate, seq, ref)
  return string.format(RANK_FORMAT, apr, rate, seq, ref)
end

local function member_ref(member)
  return string.sub(member, 3 * KEY_WIDTH + 2)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function may_bid(state, closes_at_ms, now)
  return state == 'open' and now < tonumber(closes_at_ms)
end

local function is_due(state, closes_at_ms, now)
  return state == 'open' and now >= tonumber(closes_at_ms)
end

-- the rank of an offer record (JSON decoded) in the book, 1 = best; 0 if absent
local function rank_of(book, rec)
  local r = redis.call('ZRANK', book, rank_member(rec.p, rec.r, rec.s, rec.f))
  if r then return r + 1 end
  return 0
end

-- a quote event (auction/redis/envelope.py): the offer's record, its rank and the book's size
local function quote_event(round_id, seq, rec, rank, size)
  return '{"r":"' .. round_id .. '","s":' .. seq .. ',"k":"q","o":' .. rec .. ',"n":' .. rank ..
    ',"z":' .. size .. '}'
end

-- the current offer records of a round (JSON), best first: the book's members mapped to the
-- offers hash (keyed by offer_id) through the ref each record carries
local function book_records(book, offers)
  local out = {}
  local members = redis.call('ZRANGE', book, 0, -1)
  if #members == 0 then return out end
  local byref = {}
  for _, r in ipairs(redis.call('HVALS', offers)) do
    byref[string.match(r, '"f":"([^"]*)"')] = r
  end
  for _, m in ipairs(members) do out[#out + 1] = byref[member_ref(m)] end
  return out
end

-- an earlier answer to the same Idempotency-Key: {4, seq, t, version, rank, label, offer_id, ref}
-- or {5} when the key came with another request; nil when the key is new. The first answer
-- again, rank included (API.md: "returns the first response again"), never the current rank.
-- The record is "<hash>|<seq>|<t>|<version>|<label>|<ref>|<offer_id>|<rank>"; one written
-- before the rank was kept in it (no "|<rank>") answers with the offer's current rank.
local function replay(idem_key, body_hash, offers, book)
  local prev = redis.call('GET', idem_key)
  if not prev then return nil end
  local h, rest = string.match(prev, '^([^|]*)|(.*)$')
  if h ~= body_hash then return {5} end
  local s, t, v, l, f, o, n = string.match(rest,
    '^(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|([^|]*)|(%d+)$')
  local rank
  if s then
    rank = tonumber(n)
  else
    s, t, v, l, f, o = string.match(rest, '^(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
    local cur = redis.call('HGET', offers, o)
    rank = 0
    if cur then rank = rank_of(book, cjson.decode(cur)) end
  end
  return {4, tonumber(s), tonumber(t), tonumber(v), rank, l, o, f}
end
