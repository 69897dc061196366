-- Bookings and holds: the rules every write re-checks, shared by the tap script and the owner's
-- cancel. An occupancy day hash maps an entry id to "start,end,expires_ms[,n]": a hold (expires_ms
-- > 0, by the Redis clock), the n bookings of one interval (id "=start,end", expires_ms 0), or one
-- booking of an early release (id REF). Operations are tables decoded from JSON; their keys are
-- given as indexes into KEYS, so every key a script touches is declared (Redis Cluster).

local purged = 0

local function parse(v)
  local s, e, x, n = string.match(v, '^(%d+),(%d+),(%d+),?(%d*)$')
  return tonumber(s), tonumber(e), tonumber(x), tonumber(n) or 1
end

local function redis_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- live entries {start, end, weight} of the day keys overlapping [a, b), less what skip says (a
-- hold token or an early booking: not at all; "=s,e": once per mention); purges expired holds
local function overlapping(keys, a, b, now_ms, skip)
  local found = {}
  for _, key in ipairs(keys) do
    local flat = redis.call('HGETALL', key)
    for j = 1, #flat, 2 do
      local id = flat[j]
      local s, e, x, n = parse(flat[j + 1])
      if x > 0 and x <= now_ms then
        redis.call('HDEL', key, id)
        purged = purged + 1
      else
        local k = skip[id]
        if k == true then n = 0 elseif k then n = n - k end
        if n > 0 and s < b and a < e then table.insert(found, {math.max(s, a), math.min(e, b), n}) end
      end
    end
  end
  return found
end

-- the most entries overlapping any instant of [a, ...): reached at a or at some entry's start
local function max_concurrency(intervals, a)
  local best = 0
  local points = {a}
  for _, iv in ipairs(intervals) do table.insert(points, iv[1]) end
  for _, p in ipairs(points) do
    local n = 0
    for _, iv in ipairs(intervals) do
      if iv[1] <= p and p < iv[2] then n = n + iv[3] end
    end
    if n > best then best = n end
  end
  return best
end

-- bookings are counted per interval, so a day's hash stays small however many share a time
local function add_booked(key, a, b, delta)
  local field = '=' .. a .. ',' .. b
  local n = delta
  local v = redis.call('HGET', key, field)
  if v then
    local _, _, _, m = parse(v)
    n = m + delta
  end
  if n > 0 then redis.call('HSET', key, field, a .. ',' .. b .. ',0,' .. n) else redis.call('HDEL', key, field) end
end

-- give back a booking's place: its interval (field "occ"), or its own entry (early releases)
local function release_booking(day_key, booking_key, ref)
  local occ = redis.call('HGET', booking_key, 'occ')
  if occ then
    local a, b = string.match(occ, '^(%d+),(%d+)$')
    add_booked(day_key, a, b, -1)
  else
    redis.call('HDEL', day_key, ref)
  end
end

-- the booking being moved does not count against its new time: its own place, if it is among the
-- entries of day_key's resource (one recorded on another resource, before a catalog edit, frees
-- nothing here)
local function skip_booking(skip, booking_key, ref, day_key)
  skip[ref] = true
  local bk = redis.call('HMGET', booking_key, 'occ', 'resource')
  local occ, res = bk[1], bk[2]
  if res and string.sub(day_key, -(#res + 14)) ~= ':occ:' .. res .. ':' .. string.sub(day_key, -8) then return end
  if occ then skip['=' .. occ] = (skip['=' .. occ] or 0) + 1 end
end

-- a key of an earlier release becomes its key of this release (same hash tag, so same slot):
-- renamed when the new one does not exist yet, else merged into it
local function adopt(new, old)
  local kind = redis.call('TYPE', old)
  if type(kind) == 'table' then kind = kind['ok'] end
  if kind == 'none' then return 0 end
  if redis.call('EXISTS', new) == 0 then
    redis.call('RENAME', old, new)
    return 1
  end
  if kind == 'hash' then
    local flat = redis.call('HGETALL', old)
    for j = 1, #flat, 2 do
      local id, v = flat[j], flat[j + 1]
      local mine = redis.call('HGET', new, id)
      if string.sub(id, 1, 1) == '=' and mine then
        local s, e, _, n = parse(v)
        local _, _, _, m = parse(mine)
        redis.call('HSET', new, id, s .. ',' .. e .. ',0,' .. (n + m))
      elseif not mine then
        redis.call('HSET', new, id, v)
      end
    end
  elseif kind == 'zset' then
    redis.call('ZUNIONSTORE', new, 2, new, old, 'AGGREGATE', 'MAX')
  end
  redis.call('DEL', old)
  return 1
end

-- a booking's reminders leave the due set (their members are "REF:offset", the offsets on the booking)
local function drop_reminders(reminders_key, booking_key, ref)
  local offsets = redis.call('HGET', booking_key, 'reminders')
  if not offsets or offsets == '' then return end
  for label in string.gmatch(offsets, '[^,]+') do redis.call('ZREM', reminders_key, ref .. ':' .. label) end
end

-- messages the business starts, queued with the step that causes them (an owner's alert, a
-- customer's notice): each {k = its outbox stream's index, phone, m}; the phone made due, the
-- workers woken. KEYS[due] the business's doorbell.
local function queue_notices(notices, due, now_ms, bell, business)
  for _, n in ipairs(notices or {}) do
    redis.call('XADD', KEYS[n.k], '*', 'm', n.m)
    redis.call('ZADD', KEYS[due], 'NX', now_ms, n.phone)
  end
  if #(notices or {}) > 0 and bell ~= '' then redis.call('PUBLISH', bell, business) end
end

local function around(op)
  return {KEYS[op.k.day], KEYS[op.k.before], KEYS[op.k.after]}
end

-- each check returns the status the operation would have now (and a value), writing nothing but
-- the purge of lapsed holds; each apply writes it
local checks, applies = {}, {}

function checks.hold(op, now_ms)
  if op.expires <= now_ms then return 'lapsed', '' end
  local skip = {[op.token] = true}
  for _, token in ipairs(op.skip) do skip[token] = true end
  if op.moving ~= '' then skip_booking(skip, KEYS[op.k.moving], op.moving, KEYS[op.k.day]) end
  local found = overlapping(around(op), op.a, op.b, now_ms, skip)
  if max_concurrency(found, op.a) >= op.capacity then return 'taken', '' end
  return 'held', tostring(op.expires)
end

function applies.hold(op)
  redis.call('HSET', KEYS[op.k.day], op.token, op.a .. ',' .. op.b .. ',' .. op.expires)
end

function checks.book(op, now_ms)
  local done = redis.call('GET', KEYS[op.k.from_hold])
  if done then return 'booked', done, true end  -- booked from this hold already: nothing to write
  if redis.call('EXISTS', KEYS[op.k.booking]) == 1 then return 'ref_taken', op.ref end
  if op.moving ~= '' then
    local o = redis.call('HMGET', KEYS[op.k.moving], 'phone', 'status', 'start')
    if o[1] ~= op.phone then return 'unknown', '' end
    if o[2] ~= 'confirmed' then return 'not_active', o[2] end
    if tonumber(o[3]) - op.now < op.cutoff then return 'too_late_to_change', '' end
  elseif redis.call('ZCOUNT', KEYS[op.k.customer], '(' .. op.now, '+inf') >= op.max_active then
    return 'limit', ''
  end
  if tonumber(op.fields.start) < op.now + op.notice then return 'too_late', '' end
  -- a live hold vouches for exactly the interval it holds, nothing else
  local mine = redis.call('HGET', KEYS[op.k.day], op.token)
  if mine then
    local s, e, x = parse(mine)
    if x > now_ms and s == op.a and e == op.b then return 'booked', op.ref end
  end
  local skip = {[op.token] = true}
  if op.moving ~= '' then skip_booking(skip, KEYS[op.k.moving], op.moving, KEYS[op.k.day]) end
  local found = overlapping(around(op), op.a, op.b, now_ms, skip)
  if max_concurrency(found, op.a) >= op.capacity then return 'taken', '' end
  return 'booked', op.ref
end

function applies.book(op)
  local booking = KEYS[op.k.booking]
  redis.call('HDEL', KEYS[op.k.day], op.token)
  add_booked(KEYS[op.k.day], op.a, op.b, 1)
  for name, value in pairs(op.fields) do redis.call('HSET', booking, name, value) end
  redis.call('HSET', booking, 'occ', op.a .. ',' .. op.b)
  if op.k.reminders then
    local labels = {}
    for _, r in ipairs(op.reminders) do
      redis.call('ZADD', KEYS[op.k.reminders], r[2], op.ref .. ':' .. r[1])
      table.insert(labels, r[1])
    end
    if #labels > 0 then redis.call('HSET', booking, 'reminders', table.concat(labels, ',')) end
  end
  if op.moving ~= '' then
    local old = KEYS[op.k.moving]
    if op.k.reminders then drop_reminders(KEYS[op.k.reminders], old, op.moving) end
    redis.call('HSET', booking, 'rescheduled_from', op.moving)
    release_booking(KEYS[op.k.moving_day], old, op.moving)
    redis.call('HSET', old, 'status', 'rescheduled', 'rescheduled_to', op.ref, 'changed_at', op.now)
    redis.call('ZREM', KEYS[op.k.customer], op.moving)
  end
  redis.call('ZADD', KEYS[op.k.customer], op.fields.start, op.ref)
  redis.call('ZADD', KEYS[op.k.bookings], op.fields.start, op.ref)
  redis.call('SET', KEYS[op.k.from_hold], op.ref, 'EX', 172800)
end

function checks.cancel(op, now_ms)
  local b = redis.call('HMGET', KEYS[op.k.booking], 'phone', 'status', 'start')
  if not b[2] or b[1] ~= op.phone then return 'unknown', '' end
  if b[2] ~= 'confirmed' then return b[2], '' end
  if tonumber(b[3]) - op.now < op.cutoff then return 'too_late', '' end
  return 'ok', ''
end

function applies.cancel(op)
  release_booking(KEYS[op.k.day], KEYS[op.k.booking], op.ref)
  if op.k.reminders then drop_reminders(KEYS[op.k.reminders], KEYS[op.k.booking], op.ref) end
  redis.call('HSET', KEYS[op.k.booking], 'status', 'cancelled', 'changed_at', op.now)
  redis.call('ZREM', KEYS[op.k.customer], op.ref)
end

-- the customer confirms they will come (a reminder's button): their own booking, still confirmed
-- and at the time the reminder named (its version: the start)
function checks.confirm(op, now_ms)
  local b = redis.call('HMGET', KEYS[op.k.booking], 'phone', 'status', 'start', 'customer_confirmed_at')
  if not b[2] or b[1] ~= op.phone then return 'unknown', '' end
  if b[2] ~= 'confirmed' then return b[2], '' end
  if b[3] ~= op.version then return 'moved', '' end
  if b[4] then return 'ok', '', true end  -- confirmed already: nothing to write
  return 'ok', ''
end

function applies.confirm(op)
  redis.call('HSET', KEYS[op.k.booking], 'customer_confirmed_at', op.now)
  redis.call('HINCRBY', KEYS[op.k.counts], 'confirmed', 1)
end

-- the owner marks a booking that has started: attended or a no-show
function checks.mark(op, now_ms)
  local b = redis.call('HMGET', KEYS[op.k.booking], 'status', 'start')
  if not b[1] then return 'unknown', '' end
  if b[1] ~= 'confirmed' then return b[1], '' end
  if tonumber(b[2]) > op.now then return 'not_started', '' end
  return 'ok', ''
end

function applies.mark(op)
  redis.call('HSET', KEYS[op.k.booking], 'attendance', op.attendance, 'attendance_at', op.now)
end

function checks.release(op, now_ms)
  return 'ok', ''
end

function applies.release(op)
  redis.call('HDEL', KEYS[op.k.day], op.token)
end

-- adopt the earlier release's keys the operations name, then check every operation: the first
-- whose status is not the expected one is returned (nothing else written); else apply them all
-- (but those already done). ``first`` (optional) runs once every check passed, before any apply:
-- the messages the write queues go first, so a refused XADD (an ACL, memory) leaves nothing
-- written (Redis does not undo a script's earlier writes when a later command fails).
local function run_ops(ops, adopt_pairs, first)
  for _, pair in ipairs(adopt_pairs) do adopt(KEYS[pair[1]], KEYS[pair[2]]) end
  local now_ms = redis_ms()
  local results, todo = {}, {}
  for i, op in ipairs(ops) do
    local status, value, done = checks[op.op](op, now_ms)
    if status ~= op.expect[1] or (op.expect[2] ~= '' and value ~= op.expect[2]) then
      return false, {'refused', i, status, value or '', purged}
    end
    table.insert(results, value or '')
    if not done then table.insert(todo, op) end
  end
  if first then first() end
  for _, op in ipairs(todo) do applies[op.op](op) end
  return true, results
end
