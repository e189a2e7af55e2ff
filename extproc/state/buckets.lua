-- Token buckets for budgets and rate limits, all-or-nothing over several buckets.
--
-- KEYS[i]   one hash per bucket: r (request level), t (token level), ts (ms, server time)
-- ARGV[1]   op: "c" check-and-consume, "s" status (read only), "r" reconcile
-- ARGV[2]   tokens to consume (c), ignored (s), token delta to charge, may be < 0 (r)
-- ARGV[3+3(i-1)..] per bucket: request capacity, token capacity (-1 = unlimited), window ms
--
-- Capacity refills continuously at capacity/window, so an idle bucket is full after one
-- window. Time is Redis server TIME, so replicas with skewed clocks agree. A refusal
-- writes nothing. Reconcile may leave a token level below zero (debt, floored at
-- -capacity) so later requests wait for it. Keys expire once the bucket would be full.
--
-- Reply (c, s): {allowed, retry_ms (-1 = can never fit), then per bucket:
--   requests_remaining, tokens_remaining (-1 = unlimited), reset_requests_ms,
--   reset_tokens_ms, refused}. Reply (r): 1.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local cost = tonumber(ARGV[2])
local n = #KEYS

local function refill(level, cap, elapsed, window)
  if cap < 0 then return nil end
  if level == nil then return cap end
  local v = level + elapsed * cap / window
  if v > cap then v = cap end
  return v
end

local function to_full(level, cap, window)
  if level == nil then return 0 end
  local v = (cap - level) * window / cap
  if v < 0 then return 0 end
  return math.ceil(v)
end

local req, tok, rcap, tcap, win = {}, {}, {}, {}, {}
for i = 1, n do
  local b = 3 + (i - 1) * 3
  rcap[i] = tonumber(ARGV[b]); tcap[i] = tonumber(ARGV[b + 1]); win[i] = tonumber(ARGV[b + 2])
  local h = redis.call('HMGET', KEYS[i], 'r', 't', 'ts')
  local ts = tonumber(h[3]) or now
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  req[i] = refill(tonumber(h[1]), rcap[i], elapsed, win[i])
  tok[i] = refill(tonumber(h[2]), tcap[i], elapsed, win[i])
end

local function save(i)
  local args = {'ts', now}
  if req[i] ~= nil then table.insert(args, 'r'); table.insert(args, tostring(req[i])) end
  if tok[i] ~= nil then table.insert(args, 't'); table.insert(args, tostring(tok[i])) end
  redis.call('HSET', KEYS[i], unpack(args))
  local ttl = math.max(to_full(req[i], rcap[i], win[i]), to_full(tok[i], tcap[i], win[i]))
  redis.call('PEXPIRE', KEYS[i], ttl + 1000)
end

if op == 'r' then
  for i = 1, n do
    if tok[i] ~= nil then
      local v = tok[i] - cost
      if v > tcap[i] then v = tcap[i] end
      if v < -tcap[i] then v = -tcap[i] end
      tok[i] = v
      save(i)
    end
  end
  return 1
end

local refused = {}
local allowed = 1
local wait = 0
local impossible = false
if op == 'c' then
  for i = 1, n do
    refused[i] = 0
    if req[i] ~= nil and req[i] < 1 then
      refused[i] = 1
      wait = math.max(wait, (1 - req[i]) * win[i] / rcap[i])
    end
    if tok[i] ~= nil and tok[i] < cost then
      refused[i] = 1
      if cost > tcap[i] then
        impossible = true
      else
        wait = math.max(wait, (cost - tok[i]) * win[i] / tcap[i])
      end
    end
    if refused[i] == 1 then allowed = 0 end
  end
  if allowed == 1 then
    for i = 1, n do
      if req[i] ~= nil then req[i] = req[i] - 1 end
      if tok[i] ~= nil then tok[i] = tok[i] - cost end
      save(i)
    end
  end
else
  for i = 1, n do refused[i] = 0 end
end

local retry = math.ceil(wait)
if impossible then retry = -1 end
local out = {allowed, retry}
for i = 1, n do
  local r, k = -1, -1
  if req[i] ~= nil then r = math.max(0, math.floor(req[i])) end
  if tok[i] ~= nil then k = math.max(0, math.floor(tok[i])) end
  table.insert(out, r)
  table.insert(out, k)
  table.insert(out, to_full(req[i], rcap[i], win[i]))
  table.insert(out, to_full(tok[i], tcap[i], win[i]))
  table.insert(out, refused[i])
end
return out
