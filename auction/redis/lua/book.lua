-- book.lua: a consistent read of a round's book.
--
-- KEYS[1] meta  KEYS[2] book  KEYS[3] offers  KEYS[4] labels
-- ARGV[1] bank_id of the viewer ("" = operator / system view, no bid needed)
-- ARGV[2] "head": the header only, no records (a read whose cost does not grow with the book)
-- Returns {code, state, seq, closes_at_ms, closed_at_ms, my_label, epoch, records...}
--   records are the current offer versions (JSON) in rank order, best first.
--   epoch: the round's live state's incarnation (open.lua writes a new one at each open and
--   rebuild; "" for a round opened before it was kept): with seq, it names the offers.
--   code: 0 OK, 2 ROUND_UNKNOWN
local meta = redis.call('HMGET', KEYS[1], 'state', 'seq', 'closes_at', 'closed_at', 'epoch')
if not meta[1] then return {2} end
local label = ''
if ARGV[1] ~= '' then label = redis.call('HGET', KEYS[4], ARGV[1]) or '' end
local out = {0, meta[1], tonumber(meta[2]), tonumber(meta[3]), tonumber(meta[4] or 0), label,
  meta[5] or ''}
if ARGV[2] == 'head' then return out end
for _, r in ipairs(book_records(KEYS[2], KEYS[3])) do out[#out + 1] = r end
return out
