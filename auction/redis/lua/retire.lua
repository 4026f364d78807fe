-- retire.lua: a round's close is complete (SQL holds everything): it leaves the deadline
-- index and its live state expires after a while (late readers still find it meanwhile).
--
-- KEYS[1] deadline index  KEYS[2..] the round's keys
-- ARGV[1] round_id  ARGV[2] seconds its keys live on
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
return 1
