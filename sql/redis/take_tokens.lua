-- One capture request's rate-limit check, atomic across every capture process (workers/capture/limits.py
-- holds the same steps in Python for the per-process fallback; keep the two alike).
--
-- KEYS[1] the project's bucket "<tokens> <seconds>"; KEYS[1 + i] the i-th distinct id's two buckets, its
-- own and its hot-key bucket, "<tokens> <hot-key tokens> <seconds>". A missing bucket is full; a key
-- expires once its buckets are full again (at most a day).
-- ARGV: project rate, burst; distinct id rate, burst; hot-key rate, burst; whole (1: all events or none);
-- ARGV[8] the event counts of the distinct ids, space-separated.
-- Returns "<retry_after_ms> <refused_by_project>" then per distinct id " <granted> <overflow> <refused_by_it>"
-- (one string: cheaper for the client than a long array); a whole request refused for a distinct id alone
-- counts its other events under no bucket.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local p_rate, p_burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local d_rate, d_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local o_rate, o_burst = tonumber(ARGV[5]), tonumber(ARGV[6])
local whole = ARGV[7] == '1'
local stamp = tostring(now)

local function refill(tokens, since, rate, burst)
  return math.min(burst, tokens + math.max(0, now - since) * rate)
end

local function full_in_ms(tokens, rate, burst)
  return math.ceil((burst - tokens) / rate * 1000) + 1000
end

local function wait(refused, left, rate, burst)  -- seconds until the bucket holds what was refused
  return (math.min(refused, burst) - left) / rate
end

local n = #KEYS - 1
local counts, levels, hot, granted, refused = {}, {}, {}, {}, {}
for count in string.gmatch(ARGV[8], '%d+') do counts[#counts + 1] = tonumber(count) end
local total = 0
for i = 1, n do
  total = total + counts[i]
  local held = redis.call('GET', KEYS[1 + i])
  if held then
    local t, o, at = string.match(held, '(%S+) (%S+) (%S+)')
    levels[i] = refill(tonumber(t), tonumber(at), d_rate, d_burst)
    hot[i] = refill(tonumber(o), tonumber(at), o_rate, o_burst)
  else
    levels[i], hot[i] = d_burst, o_burst
  end
end
local project = p_burst
local held = redis.call('GET', KEYS[1])
if held then
  local t, at = string.match(held, '(%S+) (%S+)')
  project = refill(tonumber(t), tonumber(at), p_rate, p_burst)
end
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

local result = {string.format('%d', math.ceil(retry * 1000)), by_project}
for i = 1, n do
  local overflow = 0
  if granted[i] > 0 then
    overflow = granted[i] - math.min(granted[i], math.max(0, math.floor(hot[i])))
    local t, o = levels[i] - granted[i], math.max(0, hot[i] - granted[i])
    local expiry = math.min(math.max(full_in_ms(t, d_rate, d_burst), full_in_ms(o, o_rate, o_burst)), 86400000)
    redis.call('SET', KEYS[1 + i], tostring(t) .. ' ' .. tostring(o) .. ' ' .. stamp,
               'PX', string.format('%d', expiry))
    project = project - granted[i]
  end
  result[#result + 1] = granted[i]
  result[#result + 1] = overflow
  result[#result + 1] = refused[i]
end
local expiry = math.min(full_in_ms(project, p_rate, p_burst), 86400000)
redis.call('SET', KEYS[1], tostring(project) .. ' ' .. stamp, 'PX', string.format('%d', expiry))
return table.concat(result, ' ')
