-- A customer's active bookings starting after ARGV[1], soonest first, at most ARGV[2].
-- KEYS: the customer index, then (while upgrading) the earlier release's index.
-- ARGV[3] booking key prefix, ARGV[4] the earlier release's booking key prefix (or '').
local refs = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')
if KEYS[2] then
  local older = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'WITHSCORES')
  for i = 1, #older do table.insert(refs, older[i]) end
end
local found, seen = {}, {}
for i = 1, #refs, 2 do
  if not seen[refs[i]] then
    seen[refs[i]] = true
    table.insert(found, {tonumber(refs[i + 1]), refs[i]})
  end
end
table.sort(found, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[2] < y[2]) end)
local out = {}
for i = 1, math.min(#found, tonumber(ARGV[2])) do
  local ref = found[i][2]
  local record = redis.call('HGETALL', ARGV[3] .. ref)
  if #record == 0 and ARGV[4] ~= '' then record = redis.call('HGETALL', ARGV[4] .. ref) end
  table.insert(out, record)
end
return out
