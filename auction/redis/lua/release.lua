-- release.lua: let go of a lock, a claim or a lease, only if the caller still holds it.
--
-- KEYS[1] the lock
-- ARGV[1] the holder's token
-- Returns 1 if it was released, 0 if it had expired or another holder has it (left alone).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
