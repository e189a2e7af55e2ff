-- Passive backend health, shared by every replica. Time is Redis server TIME.
--
-- op "f" (record a failure): KEYS[1] failure list of the backend, KEYS[2] cooldown hash
--   ARGV: op, backend, threshold, window_ms, cooldown_ms
--   Keeps the last `threshold` failure times; when there are `threshold` of them within
--   `window_ms`, the backend cools down until now + cooldown_ms and its list is reset.
--   Failures reported while it cools are ignored (in-flight requests finishing late).
--   Reply: 1 when this call started a cooldown, else 0.
-- op "l" (list cooling backends): KEYS[1] cooldown hash. Drops ended cooldowns.
--   Reply: flat {backend, remaining_ms, ...}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]

if op == 'f' then
  local backend = ARGV[2]
  local threshold = tonumber(ARGV[3])
  local window = tonumber(ARGV[4])
  local cooldown = tonumber(ARGV[5])
  local cool_end = tonumber(redis.call('HGET', KEYS[2], backend))
  if cool_end ~= nil and cool_end > now then return 0 end
  redis.call('RPUSH', KEYS[1], now)
  redis.call('LTRIM', KEYS[1], -threshold, -1)
  redis.call('PEXPIRE', KEYS[1], window)
  if redis.call('LLEN', KEYS[1]) >= threshold then
    local oldest = tonumber(redis.call('LINDEX', KEYS[1], 0))
    if now - oldest <= window then
      redis.call('DEL', KEYS[1])
      redis.call('HSET', KEYS[2], backend, now + cooldown)
      return 1
    end
  end
  return 0
end

local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local remaining = tonumber(all[i + 1]) - now
  if remaining > 0 then
    table.insert(out, all[i])
    table.insert(out, remaining)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
