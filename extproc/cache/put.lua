-- Store one answer of a tenant and keep the tenant within its limits (one round trip).
-- KEYS[1] entry hash, KEYS[2] vector string ("" none), KEYS[3] frame list ("" none),
-- KEYS[4] the tenant's index (zset: key -> stored ms).
-- ARGV: body, meta, vector, key, ttl_ms, max_entries, scan_limit, entry prefix, vector prefix.
-- Returns the number of entries evicted to stay within max_entries.
local ttl = tonumber(ARGV[5])
local max_entries = tonumber(ARGV[6])
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'b', ARGV[1], 'm', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
end
if KEYS[3] ~= '' then
  redis.call('LREM', KEYS[3], 0, ARGV[4])
  redis.call('LPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
redis.call('ZADD', KEYS[4], now, ARGV[4])
-- Entries past their TTL have expired on their own: forget them without counting.
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[4], ttl)
local over = redis.call('ZCARD', KEYS[4]) - max_entries
if over <= 0 then
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[4], 0, over - 1)
for _, key in ipairs(oldest) do
  redis.call('DEL', ARGV[8] .. key, ARGV[9] .. key)
end
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, over - 1)
return #oldest
