-- lease.lua: take or renew a lease that only one holder has at a time.
--
-- KEYS[1] the lease
-- ARGV[1] the holder's token   ARGV[2] lease time, ms
-- Returns 1 if the caller holds the lease now (renewed, or taken because it was free), else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
