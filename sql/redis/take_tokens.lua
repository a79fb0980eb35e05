-- One capture request's rate-limit check, atomic across every capture process (workers/capture/limits.py
-- holds the same steps in Python for the per-process fallback; keep the two alike).
--
-- KEYS[1] the project's bucket; for the i-th distinct id KEYS[2i] its bucket and KEYS[2i+1] its hot-key
-- bucket. A bucket is a hash {t = tokens, ts = seconds}; a missing one is full.
-- ARGV: project rate, burst; distinct id rate, burst; hot-key rate, burst; whole (1: all events or none);
-- then the event count of each distinct id.
-- Returns {retry_after_ms, refused_by_project, then per distinct id: granted, overflow, refused_by_it}; a
-- whole request refused for a distinct id alone counts its other events under no bucket.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local p_rate, p_burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local d_rate, d_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local o_rate, o_burst = tonumber(ARGV[5]), tonumber(ARGV[6])
local whole = ARGV[7] == '1'

local function level(key, rate, burst)
  local v = redis.call('HMGET', key, 't', 'ts')
  if not v[1] then return burst end
  return math.min(burst, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * rate)
end

local function save(key, tokens, rate, burst)
  redis.call('HSET', key, 't', tostring(tokens), 'ts', tostring(now))
  local full_in = math.min(math.ceil((burst - tokens) / rate * 1000) + 1000, 86400000)
  redis.call('PEXPIRE', key, string.format('%d', full_in))  -- gone once full again (at most a day)
end

local function wait(refused, left, rate, burst)  -- seconds until the bucket holds what was refused
  return (math.min(refused, burst) - left) / rate
end

local n = #ARGV - 7
local counts, levels, granted, refused = {}, {}, {}, {}
local total = 0
for i = 1, n do
  counts[i] = tonumber(ARGV[7 + i])
  levels[i] = level(KEYS[2 * i], d_rate, d_burst)
  total = total + counts[i]
end
local project = level(KEYS[1], p_rate, p_burst)
local by_project, retry = 0, 0

if whole then
  local ok = true
  for i = 1, n do
    refused[i] = 0
    if levels[i] < math.min(counts[i], d_burst) then
      ok = false
      refused[i] = counts[i]
      retry = math.max(retry, wait(counts[i], levels[i], d_rate, d_burst))
    end
  end
  if project < math.min(total, p_burst) then
    ok = false
    retry = math.max(retry, wait(total, project, p_rate, p_burst))
    by_project = total
    for i = 1, n do by_project = by_project - refused[i] end
  end
  for i = 1, n do granted[i] = ok and counts[i] or 0 end
else
  local room = math.max(0, math.floor(project))
  for i = 1, n do
    local fits = math.min(counts[i], math.max(0, math.floor(levels[i])))
    refused[i] = counts[i] - fits
    if refused[i] > 0 then retry = math.max(retry, wait(refused[i], levels[i] - fits, d_rate, d_burst)) end
    granted[i] = math.min(fits, room)
    room = room - granted[i]
    by_project = by_project + fits - granted[i]
  end
  if by_project > 0 then
    local left = project
    for i = 1, n do left = left - granted[i] end
    retry = math.max(retry, wait(by_project, left, p_rate, p_burst))
  end
end

local result = {math.ceil(retry * 1000), by_project}
for i = 1, n do
  local overflow = 0
  if granted[i] > 0 then
    save(KEYS[2 * i], levels[i] - granted[i], d_rate, d_burst)
    project = project - granted[i]
    local hot = level(KEYS[2 * i + 1], o_rate, o_burst)
    overflow = granted[i] - math.min(granted[i], math.max(0, math.floor(hot)))
    save(KEYS[2 * i + 1], math.max(0, hot - granted[i]), o_rate, o_burst)
  end
  result[#result + 1] = granted[i]
  result[#result + 1] = overflow
  result[#result + 1] = refused[i]
end
save(KEYS[1], project, p_rate, p_burst)
return result
