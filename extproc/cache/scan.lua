-- The vectors of a frame's newest entries (one round trip).
-- KEYS[1] frame list. ARGV: limit, vector prefix.
-- Returns {key1, vector1, key2, vector2, ...} for the entries whose vector is still live.
local keys = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local out = {}
for _, key in ipairs(keys) do
  local vec = redis.call('GET', ARGV[2] .. key)
  if vec then
    out[#out + 1] = key
    out[#out + 1] = vec
  end
end
return out
